"""CI's dependency audit (.ci/audit.py) running real pip-audit against a local stand-in of the
OSV API (AUDIT_OSV_URL) that knows one real advisory: a vulnerable pin fails the run with the
package, the advisory and the fixed version; a clean pin passes; an unreachable service warns.
Loopback only: the stand-in is a test double, not the public database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chat_devtools.stack import free_port
from tests.support.http_server import serving

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "audit.py"
# PYSEC-2021-66 as the PyPA advisory database publishes it (trimmed to what pip-audit reads).
ADVISORY = {
    "id": "PYSEC-2021-66",
    "summary": "ReDoS in jinja2's urlize filter",
    "aliases": ["CVE-2020-28493", "GHSA-g3rq-g295-4j3m"],
    "affected": [
        {
            "package": {"name": "jinja2", "ecosystem": "PyPI"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.11.3"}]}],
            "versions": ["2.11.0", "2.11.1", "2.11.2"],
        }
    ],
    "published": "2021-02-01T20:15:00Z",
}
HASH = "--hash=sha256:" + "0" * 64  # the export pins hashes; pip-audit only needs them present


def _osv_stand_in() -> Starlette:
    async def query(request: Request) -> JSONResponse:
        asked = await request.json()
        package, version = asked["package"]["name"], asked["version"]
        affected = ADVISORY["affected"][0]  # type: ignore[index]
        if package == affected["package"]["name"] and version in affected["versions"]:
            return JSONResponse({"vulns": [ADVISORY]})
        return JSONResponse({})

    return Starlette(routes=[Route("/v1/query", query, methods=["POST"])])


@pytest.fixture(scope="module")
def osv_url() -> Iterator[str]:
    port = free_port()
    with serving(_osv_stand_in(), port, "the OSV stand-in"):
        yield f"http://127.0.0.1:{port}/v1/query"


def _audit(tmp_path: Path, pins: list[str], osv_url: str) -> subprocess.CompletedProcess[str]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("".join(f"{pin} {HASH}\n" for pin in pins))
    return subprocess.run(
        [sys.executable, str(SCRIPT), "python", "--requirements", str(requirements)],
        env={**os.environ, "AUDIT_OSV_URL": osv_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_known_vulnerable_pin_fails_the_run(tmp_path: Path, osv_url: str) -> None:
    ran = _audit(tmp_path, ["jinja2==2.11.2", "idna==3.10"], osv_url)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert (
        "audit python: VULNERABLE: jinja2 2.11.2: PYSEC-2021-66 "
        "(CVE-2020-28493, GHSA-g3rq-g295-4j3m), fixed in 2.11.3" in ran.stdout
    )


def test_clean_pins_pass(tmp_path: Path, osv_url: str) -> None:
    ran = _audit(tmp_path, ["jinja2==2.11.3", "idna==3.10"], osv_url)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "audit python: 2 packages audited, no known vulnerability" in ran.stdout


def test_an_unreachable_service_only_warns(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1/query"  # nothing listens there
    ran = _audit(tmp_path, ["jinja2==2.11.2"], closed)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"WARNING: the vulnerability service ({closed}) is unreachable" in ran.stdout
    assert "VULNERABLE" not in ran.stdout
