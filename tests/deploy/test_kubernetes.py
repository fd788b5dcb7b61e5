"""Every overlay renders and validates: Kubernetes resources against the Kubernetes schemas
(strict: unknown fields fail), KEDA's against its pydantic models, the operators' against
their schemas (tests/deploy/schemas). Then what the architecture needs of them."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
from pydantic import BaseModel
from referencing import Registry, Resource

from chat_contracts.topology import Topology
from chat_runtime.settings import DEV_JWT_SECRET
from tests.deploy.catalog import ROOT
from tests.deploy.manifests import (
    KUBERNETES_VERSION,
    OVERLAYS,
    Manifest,
    named,
    of_kind,
    pod_templates,
    render,
)

KEDA_MODELS: dict[str, type[BaseModel]] = {
    "ScaledObject": ScaledObject,
    "TriggerAuthentication": TriggerAuthentication,
}
OPERATOR_SCHEMAS = {
    "RabbitmqCluster": "rabbitmqcluster.schema.json",
    "Cluster": "cnpg-cluster.schema.json",
}
SCHEMAS = ROOT / "tests" / "deploy" / "schemas"


def kubernetes_definitions() -> Resource[Any]:
    """The Kubernetes definitions kubernetes-validate ships, for the operators' schemas."""
    folder = kubernetes_validate.utils.major_minor(KUBERNETES_VERSION)
    contents = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{folder}.0-local-strict/_definitions.json", KUBERNETES_VERSION
    )
    return Resource.from_contents(contents)


def validate_operator_resource(manifest: Manifest) -> None:
    schema = json.loads((SCHEMAS / OPERATOR_SCHEMAS[manifest["kind"]]).read_text())
    registry: Registry[Any] = kubernetes_definitions() @ Registry()
    jsonschema.Draft202012Validator(schema, registry=registry).validate(manifest)


def unknown_fields(given: Any, understood: Any, path: str = "") -> list[str]:
    """Keys in `given` that the model dropped: pydantic models ignore what they do not know."""
    if isinstance(given, dict) and isinstance(understood, dict):
        found = [f"{path}.{key}" for key in given if key not in understood]
        for key in given.keys() & understood.keys():
            found += unknown_fields(given[key], understood[key], f"{path}.{key}")
        return found
    if isinstance(given, list) and isinstance(understood, list):
        return [
            f
            for i, (g, u) in enumerate(zip(given, understood, strict=False))
            for f in unknown_fields(g, u, f"{path}[{i}]")
        ]
    return []


def validate_keda_resource(manifest: Manifest) -> None:
    model = KEDA_MODELS[manifest["kind"]].model_validate(manifest)
    understood = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
    unknown = unknown_fields(manifest, understood)
    if unknown:
        raise ValueError(f"{manifest['kind']}: unknown fields {unknown}")


def validate(manifest: Manifest) -> None:
    kind = manifest["kind"]
    if kind in KEDA_MODELS:
        validate_keda_resource(manifest)
    elif kind in OPERATOR_SCHEMAS:
        validate_operator_resource(manifest)
    else:  # a Kubernetes kind: a missing schema is a failure too
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_of_the_overlay_validates(overlay: str) -> None:
    manifests = render(overlay)
    assert {m["kind"] for m in manifests} >= {
        "Deployment",
        "Job",
        "ConfigMap",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ScaledObject",
        "TriggerAuthentication",
        "NetworkPolicy",
        "Ingress",
        "RabbitmqCluster",
        "Cluster",
    }
    for manifest in manifests:
        validate(manifest)


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("Deployment", ("spec", "template", "spec", "containers", 0)),
        ("ScaledObject", ("spec",)),
        ("TriggerAuthentication", ("spec",)),
        ("RabbitmqCluster", ("spec",)),
        ("Cluster", ("spec", "bootstrap", "initdb")),
    ],
)
def test_a_misspelt_field_fails_validation(kind: str, path: tuple[Any, ...]) -> None:
    """The checks above can fail: the same resources with one unknown field do not pass."""
    manifest = copy.deepcopy(of_kind(render(OVERLAYS[0]), kind)[0])
    target = manifest
    for step in path:
        target = target[step]
    target["replicaz"] = 3
    with pytest.raises(Exception, match=r"replicaz|Additional properties|unknown fields"):
        validate(manifest)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_locked_down_with_resources(overlay: str) -> None:
    for workload, pod in pod_templates(render(overlay)):
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            if workload["kind"] == "Deployment":
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
                assert container["livenessProbe"]["httpGet"]["path"] == "/livez", name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_its_service_account_service_and_disruption_budget(
    overlay: str,
) -> None:
    manifests = render(overlay)
    for deployment in of_kind(manifests, "Deployment"):
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        named(
            manifests,
            "ServiceAccount",
            deployment["spec"]["template"]["spec"]["serviceAccountName"],
        )
        service = named(manifests, "Service", name)
        pdb = named(manifests, "PodDisruptionBudget", name)
        for selector in (service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
            assert selector.items() <= labels.items(), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_llm_worker_scales_on_its_own_queue_and_the_gateway_on_an_hpa(overlay: str) -> None:
    manifests = render(overlay)
    config = of_kind(manifests, "ConfigMap")[0]["data"]
    scaled = named(manifests, "ScaledObject", "agentchat-llm-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "agentchat-llm-worker"
    named(manifests, "Deployment", "agentchat-llm-worker")
    (trigger,) = scaled["spec"]["triggers"]
    queue = Topology(config["BROKER_PREFIX"]).llm_requests.name
    assert trigger["metadata"]["queueName"] == queue
    # KEDA's operator runs in its own namespace: the host must name ours.
    namespace = scaled["metadata"]["namespace"]
    rabbitmq = named(manifests, "RabbitmqCluster", "agentchat-rabbitmq")
    assert trigger["metadata"]["host"].startswith(
        f"http://{rabbitmq['metadata']['name']}.{namespace}.svc:15672/"
    )
    auth = named(manifests, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} == {"username", "password"}
    # Replica counts belong to the autoscalers: the Deployments leave them unset.
    hpa = named(manifests, "HorizontalPodAutoscaler", "agentchat-gateway")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "agentchat-gateway"
    for name in ("agentchat-gateway", "agentchat-llm-worker"):
        assert "replicas" not in named(manifests, "Deployment", name)["spec"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_cover_every_pod_of_ours(overlay: str) -> None:
    manifests = render(overlay)
    ours = {
        w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        for w, _ in pod_templates(manifests)
    }
    deny = named(manifests, "NetworkPolicy", "agentchat-default-deny")
    (expression,) = deny["spec"]["podSelector"]["matchExpressions"]
    assert set(expression["values"]) == ours
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    dns = named(manifests, "NetworkPolicy", "agentchat-dns")
    assert set(dns["spec"]["podSelector"]["matchExpressions"][0]["values"]) == ours


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_stopping_pods_get_longer_than_their_shutdown_grace(overlay: str) -> None:
    manifests = render(overlay)
    config = of_kind(manifests, "ConfigMap")[0]["data"]
    for deployment in of_kind(manifests, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        grace = float(env.get("SHUTDOWN_GRACE_SECONDS") or config["SHUTDOWN_GRACE_SECONDS"] or 15)
        pre_stop = (
            container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        )
        delay = float(pre_stop[-1]) if pre_stop[:1] == ["sleep"] else 0
        assert pod["terminationGracePeriodSeconds"] > grace + delay, deployment["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_committed(overlay: str) -> None:
    secrets = of_kind(render(overlay), "Secret")
    if overlay == "dev":
        # Public development values: the code's JWT placeholder (accepted only with
        # APP_ENV=development) and a throwaway password for the services' database role.
        by_name = {s["metadata"]["name"]: s["data"] for s in secrets}
        jwt = next(name for name in by_name if name.startswith("agentchat-jwt-"))
        assert set(by_name) == {jwt, "agentchat-pg-service"}
        config = of_kind(render(overlay), "ConfigMap")[0]["data"]
        assert config["APP_ENV"] == "development"
        assert base64.b64decode(by_name[jwt]["secret"]).decode() == DEV_JWT_SECRET
        password = base64.b64decode(by_name["agentchat-pg-service"]["password"]).decode()
        assert password.startswith("dev-only-")
    else:
        assert secrets == []


def test_the_websocket_ingress_keeps_long_streams_open() -> None:
    for overlay in OVERLAYS:
        ingress = named(render(overlay), "Ingress", "agentchat")
        annotations = ingress["metadata"]["annotations"]
        for key in ("proxy-read-timeout", "proxy-send-timeout"):
            assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) >= 3600
