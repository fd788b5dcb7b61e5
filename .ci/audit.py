"""Dependency audits for CI (`make audit`, part of `make test`): docs/security.md, "Audits".

- python: the locked dependency set (`uv export` of uv.lock, every group, without the workspace's
  own packages) through pip-audit, against PyPI's vulnerability data (or an OSV-API endpoint named
  by AUDIT_OSV_URL). A known vulnerability fails the run, naming the package, the advisory and the
  fixed version. A service that cannot be reached, or that answers for none of a package's
  versions, is a warning: CI stays deterministic offline.
- web: web/package-lock.json through `npm audit --package-lock-only`, with the same rule: an
  advisory fails, a refused or unreachable audit endpoint warns.

Exit status: 0 clean (warnings included), 1 a known vulnerability, 2 the audit itself broke.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYPI_PROBE_URL = "https://pypi.org/pypi/pip/json"
SERVICE_TIMEOUT_SECONDS = 15
# pip-audit's skip reason when PyPI has no vulnerability data for a name and version.
NOT_FOUND = "not found on PyPI"

OK, VULNERABLE, BROKEN = 0, 1, 2


@dataclass
class Finding:
    package: str
    version: str
    advisory: str
    aliases: list[str]
    fixed_in: list[str]
    summary: str

    def __str__(self) -> str:
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fixed = f"fixed in {', '.join(self.fixed_in)}" if self.fixed_in else "no fixed version yet"
        summary = self.summary if len(self.summary) <= 160 else self.summary[:157] + "..."
        return f"{self.package} {self.version}: {self.advisory}{aliases}, {fixed}\n    {summary}"


@dataclass
class Outcome:
    """What one audit found: vulnerabilities fail, warnings do not."""

    audited: int = 0
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def status(self) -> int:
        if self.error is not None:
            return BROKEN
        return VULNERABLE if self.findings else OK


# -- python ----------------------------------------------------------------------------------


def python_outcome(report: dict[str, Any]) -> Outcome:
    """The outcome of a pip-audit JSON report (`pip-audit -f json`)."""
    outcome = Outcome()
    unanswered: list[str] = []
    for dependency in report.get("dependencies", []):
        name = dependency["name"]
        if "skip_reason" in dependency:
            if NOT_FOUND in dependency["skip_reason"]:
                unanswered.append(name)
            else:
                outcome.warnings.append(f"{name} not audited: {dependency['skip_reason']}")
            continue
        outcome.audited += 1
        for vuln in dependency.get("vulns", []):
            outcome.findings.append(
                Finding(
                    package=name,
                    version=dependency["version"],
                    advisory=vuln["id"],
                    aliases=sorted(vuln.get("aliases", [])),  # pip-audit's order varies
                    fixed_in=list(vuln.get("fix_versions", [])),
                    summary=" ".join(str(vuln.get("description") or "").split()),
                )
            )
    if unanswered:
        total = len(unanswered) + outcome.audited
        names = ", ".join(sorted(unanswered)[:5]) + (", ..." if len(unanswered) > 5 else "")
        outcome.warnings.append(
            f"the vulnerability service had no answer for {len(unanswered)} of {total} locked "
            f"packages ({names}): they were not audited"
        )
    return outcome


def reachable(url: str, method: str = "HEAD") -> bool:
    """Whether `url` answers at all (any HTTP status): the service can be reached."""
    request = urllib.request.Request(url, method=method)  # noqa: S310 - https or a configured URL
    try:
        with urllib.request.urlopen(request, timeout=SERVICE_TIMEOUT_SECONDS):  # noqa: S310
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def export_locked_requirements(target: Path) -> None:
    uv = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    subprocess.run(  # noqa: S603 - fixed arguments
        [
            uv,
            "export",
            "--frozen",
            "--format",
            "requirements-txt",
            "--all-groups",
            "--no-emit-workspace",
            "--no-header",
            "--quiet",
            "--output-file",
            str(target),
        ],
        cwd=ROOT,
        check=True,
    )


def audit_python(requirements: Path | None = None) -> Outcome:
    osv_url = os.environ.get("AUDIT_OSV_URL")
    with tempfile.TemporaryDirectory() as work:
        if requirements is None:
            requirements = Path(work) / "requirements.txt"
            export_locked_requirements(requirements)
        report_path = Path(work) / "report.json"
        service = ["--vulnerability-service", "osv", "--osv-url", osv_url] if osv_url else []
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            str(requirements),
            # The export pins every package with its hashes: audit exactly those, install nothing.
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--timeout",
            str(SERVICE_TIMEOUT_SECONDS),
            "--format",
            "json",
            "--output",
            str(report_path),
            *service,
        ]
        ran = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if report_path.exists() and report_path.stat().st_size:
            return python_outcome(json.loads(report_path.read_text()))
    # No report: either the service could not be reached, or pip-audit itself failed.
    up = reachable(osv_url, method="POST") if osv_url else reachable(PYPI_PROBE_URL)
    last_lines = "\n".join(ran.stderr.strip().splitlines()[-5:])
    if not up:
        where = osv_url or "PyPI"
        return Outcome(
            warnings=[f"the vulnerability service ({where}) is unreachable: not audited"]
        )
    return Outcome(error=f"pip-audit failed (exit {ran.returncode}):\n{last_lines}")


# -- web -------------------------------------------------------------------------------------


def web_outcome(report: dict[str, Any]) -> Outcome:
    """The outcome of `npm audit --json`: a report (auditReportVersion 2) or npm's error."""
    if "vulnerabilities" not in report:
        message = report.get("message") or report.get("error", {}).get("summary") or report
        return Outcome(warnings=[f"npm's audit endpoint gave no report ({message}): not audited"])
    outcome = Outcome(
        audited=int(report.get("metadata", {}).get("dependencies", {}).get("total", 0))
    )
    for name, entry in sorted(report["vulnerabilities"].items()):
        for via in entry.get("via", []):
            if not isinstance(via, dict):  # vulnerable only through another package, listed too
                continue
            fix = entry.get("fixAvailable")
            fixed_in = [f"{fix['name']} {fix['version']}"] if isinstance(fix, dict) else []
            if fix is True:
                fixed_in = ["a version `npm audit fix` can install"]
            outcome.findings.append(
                Finding(
                    package=name,
                    version=str(via.get("range", entry.get("range", "?"))),
                    advisory=str(via.get("url") or via.get("source")),
                    aliases=[],
                    fixed_in=fixed_in,
                    summary=f"{via.get('severity', '?')}: {via.get('title', '')}",
                )
            )
    return outcome


def audit_web() -> Outcome:
    npm = shutil.which("npm")
    if npm is None:
        return Outcome(warnings=["npm is not installed: web/package-lock.json not audited"])
    ran = subprocess.run(  # noqa: S603 - fixed arguments
        [npm, "audit", "--package-lock-only", "--json"],
        cwd=ROOT / "web",
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(ran.stdout)
    except json.JSONDecodeError:
        tail = (ran.stderr.strip().splitlines() or ["no output"])[-1]
        return Outcome(warnings=[f"npm audit gave no report ({tail}): not audited"])
    return web_outcome(report)


# -- report ----------------------------------------------------------------------------------


def report(name: str, outcome: Outcome) -> int:
    for warning in outcome.warnings:
        print(f"audit {name}: WARNING: {warning}")
    if outcome.error is not None:
        print(f"audit {name}: ERROR: {outcome.error}")
    for finding in outcome.findings:
        print(f"audit {name}: VULNERABLE: {finding}")
    if outcome.status == OK and not outcome.audited:
        print(f"audit {name}: nothing audited, nothing failed (see the warnings)")
    elif outcome.status == OK:
        print(f"audit {name}: {outcome.audited} packages audited, no known vulnerability")
    elif outcome.status == VULNERABLE:
        print(f"audit {name}: {len(outcome.findings)} known vulnerabilities: upgrade (uv lock -P)")
    return outcome.status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", nargs="*", help="python, web (default: both)")
    parser.add_argument(
        "--requirements", type=Path, help="audit this pinned requirements file, not uv.lock"
    )
    args = parser.parse_args(argv)
    which = args.which or ["python", "web"]
    if set(which) - {"python", "web"}:
        parser.error(f"nothing to audit called {', '.join(set(which) - {'python', 'web'})}")
    statuses = []
    if "python" in which:
        statuses.append(report("python", audit_python(args.requirements)))
    if "web" in which:
        statuses.append(report("web", audit_web()))
    return max(statuses)


if __name__ == "__main__":
    sys.exit(main())
