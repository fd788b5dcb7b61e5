"""docker-compose.yml against the Compose specification's JSON schema, and what `docker compose
up` needs to give a working chat with no other step."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from tests.deploy.catalog import ROOT
from tests.deploy.manifests import compose, compose_environment

SCHEMA = json.loads((ROOT / "tests" / "deploy" / "schemas" / "compose-spec.json").read_text())
APP_SERVICES = ("gateway", "orchestrator", "llm-worker", "tools", "history")


def validate(document: dict[str, Any]) -> None:
    # The spec's own root-level `name` (2022) postdates the packaged schema: check the rest.
    rest = {key: value for key, value in document.items() if key != "name"}
    jsonschema.Draft201909Validator(SCHEMA).validate(rest)


def test_compose_file_matches_the_compose_specification() -> None:
    validate(compose())


def test_a_misspelt_key_fails_the_compose_check() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["gateway"]["healthchek"] = broken["services"]["gateway"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError, match="healthchek"):
        validate(broken)


def test_the_whole_product_comes_up_in_order() -> None:
    services = compose()["services"]
    assert {"rabbitmq", "postgres", "jaeger", "migrate", *APP_SERVICES} <= set(services)
    assert services["llm-worker"]["deploy"]["replicas"] == 2
    assert services["migrate"]["restart"] == "no"
    for name in APP_SERVICES:
        service = services[name]
        conditions = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
        assert conditions["rabbitmq"] == "service_healthy", name
        assert "healthcheck" in service, name
    for name in ("history", "gateway"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "8000:8000" in services["gateway"]["ports"]
    for infra in ("rabbitmq", "postgres"):
        assert "healthcheck" in services[infra], infra


def test_our_containers_run_locked_down_and_get_time_to_stop() -> None:
    services = compose()["services"]
    for name in (*APP_SERVICES, "migrate"):
        service = services[name]
        assert service["user"] == "10001:10001" and service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        grace = float(compose_environment(service).get("SHUTDOWN_GRACE_SECONDS") or 15)
        assert int(service["stop_grace_period"].removesuffix("s")) > grace, name
