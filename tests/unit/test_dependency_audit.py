"""How CI's dependency audit (.ci/audit.py) reads pip-audit's and npm's reports: a known
vulnerability fails with the package, the advisory and the fixed version; a service with no
answer only warns. The script against real pip-audit: tests/integration/test_dependency_audit.py.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "audit.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_audit", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ci_audit"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


audit = _load()

JINJA2_ADVISORY = {
    "id": "PYSEC-2021-66",
    "fix_versions": ["2.11.3"],
    "aliases": ["CVE-2020-28493", "GHSA-g3rq-g295-4j3m"],
    "description": "This affects the package jinja2 from 0.0.0 and before 2.11.3. The ReDoS...",
}


def test_a_known_vulnerability_fails_naming_package_advisory_and_fix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcome = audit.python_outcome(
        {
            "dependencies": [
                {"name": "jinja2", "version": "2.11.2", "vulns": [JINJA2_ADVISORY]},
                {"name": "idna", "version": "3.10", "vulns": []},
            ],
            "fixes": [],
        }
    )
    assert outcome.status == audit.VULNERABLE and outcome.audited == 2
    assert audit.report("python", outcome) == 1
    printed = capsys.readouterr().out
    assert (
        "VULNERABLE: jinja2 2.11.2: PYSEC-2021-66 (CVE-2020-28493, GHSA-g3rq-g295-4j3m), "
        "fixed in 2.11.3" in printed
    )
    assert "1 known vulnerabilities" in printed


def test_packages_the_service_has_no_answer_for_only_warn(
    capsys: pytest.CaptureFixture[str],
) -> None:
    skipped = "Dependency not found on PyPI and could not be audited: {} ({})"
    outcome = audit.python_outcome(
        {
            "dependencies": [
                {"name": name, "skip_reason": skipped.format(name, "1.0")}
                for name in ("anyio", "httpx", "idna")
            ]
        }
    )
    assert outcome.status == audit.OK and outcome.audited == 0
    assert audit.report("python", outcome) == 0
    printed = capsys.readouterr().out
    assert "WARNING: the vulnerability service had no answer for 3 of 3 locked packages" in printed
    assert "nothing audited" in printed


def test_a_clean_report_passes(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = audit.python_outcome({"dependencies": [{"name": "idna", "version": "3.10"}]})
    assert audit.report("python", outcome) == 0
    assert "1 packages audited, no known vulnerability" in capsys.readouterr().out


def test_a_refused_npm_audit_only_warns() -> None:
    refused = {
        "message": "405 Method Not Allowed - POST /-/npm/v1/security/advisories/bulk",
        "statusCode": 405,
    }
    outcome = audit.web_outcome(refused)
    assert outcome.status == audit.OK and not outcome.findings
    assert "405 Method Not Allowed" in outcome.warnings[0]


def test_an_npm_advisory_fails_naming_package_advisory_and_fix() -> None:
    # The shape of `npm audit --json` (auditReportVersion 2), trimmed.
    report = {
        "auditReportVersion": 2,
        "vulnerabilities": {
            "dompurify": {
                "name": "dompurify",
                "severity": "moderate",
                "via": [
                    {
                        "source": 1234,
                        "name": "dompurify",
                        "title": "DOMPurify allows tampering by prototype pollution",
                        "url": "https://github.com/advisories/GHSA-mmhx-hmjr-r674",
                        "severity": "moderate",
                        "range": "<2.5.4",
                    }
                ],
                "range": "<2.5.4",
                "fixAvailable": {"name": "dompurify", "version": "3.4.18", "isSemVerMajor": True},
            },
            "wrapper": {"name": "wrapper", "via": ["dompurify"], "fixAvailable": True},
        },
        "metadata": {"dependencies": {"total": 120}},
    }
    outcome = audit.web_outcome(report)
    assert outcome.status == audit.VULNERABLE and outcome.audited == 120
    (finding,) = outcome.findings
    assert str(finding).startswith(
        "dompurify <2.5.4: https://github.com/advisories/GHSA-mmhx-hmjr-r674, "
        "fixed in dompurify 3.4.18"
    )
