"""The configuration drift check: every setting a service reads (derived from the settings
classes, tests/deploy/catalog.py) is provided by docker-compose.yml and by the Kubernetes
ConfigMap/Secrets, nothing is provided that no service reads, nothing is given to a service
that does not read it, and each service starts from what it is given: its settings load and it
listens where its probes and healthchecks look."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from tests.deploy.catalog import Command, all_settings, commands
from tests.deploy.manifests import (
    OVERLAYS,
    compose,
    compose_environment,
    compose_variables,
    env_example,
    of_kind,
    pod_templates,
    render,
)

# What a referenced Secret holds, for loading settings in these tests (never deployed).
SECRET_STAND_INS = {
    ("agentchat-rabbitmq-default-user", "connection_string"): (
        "amqp://user:password@agentchat-rabbitmq.agentchat.svc:5672/"
    ),
    ("agentchat-pg-app", "uri"): "postgresql://agentchat:pw@agentchat-pg-rw:5432/agentchat",
    ("agentchat-pg-service", "uri"): "postgresql://agentchat_app:pw@agentchat-pg-rw:5432/agentchat",
    ("agentchat-jwt", "secret"): "x" * 64,
    ("agentchat-anthropic", "api-key"): "sk-ant-stand-in",
}


def command_of(container: dict[str, Any]) -> Command:
    """The workspace command a container runs (also through `sh -c "a && b"`)."""
    argv = container.get("command") or container.get("args") or []
    words = shlex.split(argv[-1]) if argv[:2] == ["sh", "-c"] else argv
    for word in words:
        if word in commands():
            return commands()[word]
    raise AssertionError(f"{container['name']}: runs none of {sorted(commands())}: {argv}")


def load(settings: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in all_settings():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return settings(_env_file=None)  # type: ignore[call-arg]


# -- Kubernetes ---------------------------------------------------------------------------------


def container_env(
    manifests: tuple[dict[str, Any], ...], container: dict[str, Any]
) -> tuple[dict[str, str], set[str]]:
    """The environment a container gets, and the names it is given one by one (`env`)."""
    config_maps = {c["metadata"]["name"]: c["data"] for c in of_kind(manifests, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    explicit: set[str] = set()
    for item in container.get("env", []):
        explicit.add(item["name"])
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        secret = ref["name"]
        if secret.startswith("agentchat-jwt-"):  # generated with a hash suffix (dev)
            secret = "agentchat-jwt"
        env[item["name"]] = SECRET_STAND_INS[(secret, ref["key"])]
    return env, explicit


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_provides_every_setting_and_nothing_else(overlay: str) -> None:
    manifests = render(overlay)
    (config,) = of_kind(manifests, "ConfigMap")
    provided = set(config["data"])
    for _, pod in pod_templates(manifests):
        for container in pod["containers"]:
            provided |= container_env(manifests, container)[1]
    assert sorted(all_settings() - provided) == [], "read by a service, provided by nobody"
    assert sorted(provided - all_settings()) == [], "provided, read by no service"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_container_starts_from_what_it_is_given(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render(overlay)
    for workload, pod in pod_templates(manifests):
        for container in pod["containers"]:
            command = command_of(container)
            env, explicit = container_env(manifests, container)
            name = f"{workload['metadata']['name']}/{container['name']}"
            assert sorted(explicit - command.env) == [], f"{name}: given what it does not read"
            settings = load(command.settings, env, monkeypatch)
            if workload["kind"] == "Deployment":  # the migrations Job uses no broker
                assert "127.0.0.1" not in settings.amqp_url, name
            if "DATABASE_URL" in explicit:  # the services' role, never the owner
                assert settings.database_url.startswith("postgresql+asyncpg://agentchat_app:"), name
            if "DATABASE_ADMIN_URL" in explicit:
                assert settings.database_admin_url.startswith("postgresql+asyncpg://agentchat:"), (
                    name
                )
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            if command.script == "chat-gateway":
                assert (settings.gateway_host, settings.gateway_port) == (
                    "0.0.0.0",
                    ports["http"],
                ), name
            elif workload["kind"] == "Deployment":
                assert (settings.health_host, settings.health_port) == (
                    "0.0.0.0",
                    ports["health"],
                ), name


# -- Compose ------------------------------------------------------------------------------------


def compose_app_services(
    dotenv: tuple[tuple[str, str], ...] = (),
) -> dict[str, tuple[dict[str, Any], Command]]:
    """The services running our image, with the command each runs (`.env` = `dotenv`)."""
    services = compose(dotenv)["services"]
    return {
        name: (service, command_of({"name": name, "command": service["command"]}))
        for name, service in services.items()
        if "command" in service
    }


def test_compose_provides_every_setting_and_nothing_else() -> None:
    provided: set[str] = set()
    for name, (service, command) in compose_app_services().items():
        env = set(compose_environment(service))
        assert sorted(env - command.env) == [], f"{name}: given what it does not read"
        provided |= env
    assert sorted(all_settings() - provided) == [], "read by a service, provided by nobody"


def test_env_example_names_exactly_what_compose_reads() -> None:
    assert sorted(set(env_example()) ^ compose_variables()) == []


@pytest.mark.parametrize("with_env_example", [False, True])
def test_each_compose_service_starts_from_what_it_is_given(
    with_env_example: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no .env at all, and with every line of .env.example uncommented."""
    dotenv = tuple(sorted(env_example().items())) if with_env_example else ()
    for name, (service, command) in compose_app_services(dotenv).items():
        settings = load(command.settings, compose_environment(service), monkeypatch)
        if command.script == "chatctl":  # the migrations: the owner, and the role to grant
            assert settings.database_admin_url.startswith("postgresql+asyncpg://agentchat:"), name
            assert settings.database_url.startswith("postgresql+asyncpg://agentchat_app:"), name
            continue
        assert "@rabbitmq:5672" in settings.amqp_url, name
        if "DATABASE_URL" in compose_environment(service):  # the services' role
            assert settings.database_url.startswith("postgresql+asyncpg://agentchat_app:"), name
            assert "@postgres:5432/" in settings.database_url, name
        healthcheck = " ".join(service.get("healthcheck", {}).get("test", []))
        if command.script == "chat-gateway":
            assert settings.gateway_host == "0.0.0.0", name
            assert f":{settings.gateway_port}/readyz" in healthcheck, name
            assert any(p.endswith(f":{settings.gateway_port}") for p in service["ports"]), name
        elif command.script.startswith("chat-"):
            assert f"{settings.health_host}:{settings.health_port}/readyz" in healthcheck, name


def test_env_example_shows_the_values_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommenting every line of .env.example changes no setting of any service: the values
    it shows are the ones in force without it. (WEB_DIST_DIR is /app/web/dist in the image,
    and relative to the checkout here.)"""
    bare = compose_app_services()
    documented = compose_app_services(tuple(sorted(env_example().items())))
    for name, (service, command) in bare.items():
        without = load(command.settings, compose_environment(service), monkeypatch)
        with_example = load(command.settings, compose_environment(documented[name][0]), monkeypatch)
        differ = {
            field
            for field in command.settings.model_fields
            if field != "web_dist_dir" and getattr(without, field) != getattr(with_example, field)
        }
        assert sorted(differ) == [], name
