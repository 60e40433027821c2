"""Known vulnerabilities in the locked dependencies: `make test` fails on one unless the allow-list
(``supply-chain-allowlist.toml``, reviewed like code) says why it is accepted, and until when.

The pins come from ``uv export --frozen`` (every group and extra). The vulnerability data, best first:

1. **pip-audit** against PyPI's per-release JSON API (``/pypi/<name>/<version>/json``, the PyPA
   advisory database as PyPI publishes it): every pin is checked. Used when that API answers.
2. **PyPI's project JSON** (``/pypi/<name>/json``), whose ``vulnerabilities`` are those of the
   project's latest release: a pin at its latest release is checked exactly; an older pin is listed
   as not checked. Used when only this answers (a registry mirror that serves project pages only,
   as on the project's build machines, where OSV's API is not reachable either). Answers are cached
   for ``CACHE_HOURS`` in the user's cache folder, so a rerun takes a second.

    uv run --frozen python -m tools.audit_lock            # what `make test` runs
    uv run --frozen python -m tools.audit_lock --source project-json --requirements reqs.txt
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import platformdirs

ROOT = Path(__file__).resolve().parent.parent
ALLOWLIST = ROOT / "supply-chain-allowlist.toml"
PYPI = "https://pypi.org/pypi"
CACHE_HOURS = 12
CACHE_FILE = "pypi-vulnerabilities.json"
TIMEOUT_SECONDS = 60.0
CONCURRENCY = 16
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")

Source = Literal["auto", "pip-audit", "project-json"]


@dataclass(frozen=True)
class Vulnerability:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...] = ()
    fixed_in: tuple[str, ...] = ()
    link: str = ""

    @property
    def ids(self) -> set[str]:
        return {self.id, *self.aliases}


@dataclass(frozen=True)
class Allowance:
    id: str
    reason: str
    until: dt.date | None
    package: str | None


@dataclass
class Audit:
    source: str
    checked: int = 0
    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    unchecked: list[tuple[str, str, str]] = field(default_factory=list)
    """(package, pinned version, why it could not be checked)."""


class AllowlistError(ValueError):
    pass


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def export_requirements() -> str:
    """The lock as pinned requirements, every group and extra, without the workspace's own members
    (the project and ``client/``: local code, not releases with advisories)."""
    return subprocess.run(
        ["uv", "export", "--frozen", "--format", "requirements-txt", "--no-emit-workspace",
         "--all-groups", "--all-extras", "--no-hashes", "--no-header", "--no-annotate"],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip


def pins_of(requirements: str) -> dict[str, str]:
    pins = {}
    for line in requirements.splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[normalized(match.group(1))] = match.group(2)
    return pins


def load_allowlist(path: Path, today: dt.date) -> list[Allowance]:
    """Every entry needs an ``id`` and a ``reason``; one past its ``until`` date no longer counts."""
    if not path.exists():
        return []
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    allowances = []
    for index, entry in enumerate(document.get("allow", []), start=1):
        where = f"{path.name}: [[allow]] entry {index}"
        if not isinstance(entry, dict) or not str(entry.get("id", "")).strip():
            raise AllowlistError(f"{where} has no id")
        if not str(entry.get("reason", "")).strip():
            raise AllowlistError(f"{where} ({entry['id']}) has no reason: say why it is accepted")
        until = entry.get("until")
        if until is not None and not isinstance(until, dt.date):
            raise AllowlistError(f"{where} ({entry['id']}): until must be a date (2027-01-31)")
        if until is not None and until < today:
            raise AllowlistError(f"{where} ({entry['id']}) expired on {until}: review it again")
        package = normalized(str(entry["package"])) if entry.get("package") else None
        allowances.append(Allowance(str(entry["id"]), str(entry["reason"]), until, package))
    return allowances


def allowance_for(vulnerability: Vulnerability, allowances: Iterable[Allowance]) -> Allowance | None:
    for allowance in allowances:
        same_package = allowance.package in (None, normalized(vulnerability.package))
        if same_package and allowance.id in vulnerability.ids:
            return allowance
    return None


def per_release_api_answers(client: httpx.Client, pins: dict[str, str]) -> bool:
    name, version = next(iter(pins.items()))
    try:
        return client.get(f"{PYPI}/{name}/{version}/json", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def audit_with_pip_audit(requirements: str) -> Audit:
    """pip-audit on the exported pins (no resolution, no pip), PyPI per-release data, strict."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "requirements.txt"
        report = Path(folder) / "report.json"
        source.write_text(requirements)
        subprocess.run(
            [sys.executable, "-m", "pip_audit", "-r", str(source), "--no-deps", "--disable-pip", "--strict",
             "--vulnerability-service", "pypi", "--progress-spinner", "off", "-f", "json", "-o", str(report)],
            check=False, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if not report.exists():
            raise RuntimeError("pip-audit wrote no report")
        return parse_pip_audit_report(json.loads(report.read_text()))


def parse_pip_audit_report(report: dict[str, Any]) -> Audit:
    """pip-audit's JSON format: ``dependencies[]`` with ``name``, ``version``, ``vulns[]`` (``id``,
    ``aliases``, ``fix_versions``), or ``skip_reason`` for one it could not audit."""
    audit = Audit(source="pip-audit (PyPI per-release vulnerability data)")
    for dependency in report.get("dependencies", []):
        name, version = dependency["name"], dependency.get("version", "?")
        if "skip_reason" in dependency:
            audit.unchecked.append((name, version, dependency["skip_reason"]))
            continue
        audit.checked += 1
        for vuln in dependency.get("vulns", []):
            aliases, fixes = tuple(vuln.get("aliases", [])), tuple(vuln.get("fix_versions", []))
            audit.vulnerabilities.append(Vulnerability(name, version, vuln["id"], aliases, fixes))
    return audit


def audit_with_project_json(pins: dict[str, str], cache: Path | None) -> Audit:
    """The latest release's vulnerabilities of each project; exact for pins at their latest release."""
    projects = asyncio.run(_projects(sorted(pins), cache))
    audit = Audit(source="PyPI project JSON (vulnerabilities of each project's latest release)")
    for name, version in sorted(pins.items()):
        project = projects.get(name)
        if project is None:
            audit.unchecked.append((name, version, "PyPI did not answer for this project"))
            continue
        if project["latest"] != version:
            audit.unchecked.append((name, version, f"older than the latest release {project['latest']}"))
            continue
        audit.checked += 1
        for vuln in project["vulnerabilities"]:
            if vuln.get("withdrawn"):
                continue
            aliases, fixes = tuple(vuln.get("aliases") or ()), tuple(vuln.get("fixed_in") or ())
            link = vuln.get("link") or ""
            audit.vulnerabilities.append(Vulnerability(name, version, vuln["id"], aliases, fixes, link))
    return audit


async def _projects(names: Sequence[str], cache: Path | None) -> dict[str, dict[str, Any]]:
    cached: dict[str, dict[str, Any]] = {}
    if cache is not None and cache.exists():
        try:
            cached = json.loads(cache.read_text())
        except ValueError:
            cached = {}
    fresh_after = time.time() - CACHE_HOURS * 3600
    found = {name: entry for name, entry in cached.items() if entry.get("fetched", 0) > fresh_after}
    missing = [name for name in names if name not in found]
    slots = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:

        async def fetch(name: str) -> None:
            async with slots:
                try:
                    response = await client.get(f"{PYPI}/{name}/json")
                except httpx.HTTPError:
                    return
            if response.status_code == 200:
                body = response.json()
                found[name] = {
                    "latest": body["info"]["version"],
                    "vulnerabilities": body.get("vulnerabilities") or [],
                    "fetched": time.time(),
                }

        await asyncio.gather(*(fetch(name) for name in missing))
    if cache is not None and missing:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(found))
    return found


def run_audit(requirements: str, allowances: list[Allowance], source: Source, cache: Path | None) -> int:
    pins = pins_of(requirements)
    if not pins:
        print("supply chain: no pinned requirement found", file=sys.stderr)
        return 1
    if source == "auto":
        with httpx.Client() as client:
            source = "pip-audit" if per_release_api_answers(client, pins) else "project-json"
    started = time.monotonic()
    if source == "pip-audit":
        audit = audit_with_pip_audit(requirements)
    else:
        audit = audit_with_project_json(pins, cache)
    seconds = time.monotonic() - started
    accepted = [(v, a) for v in audit.vulnerabilities if (a := allowance_for(v, allowances)) is not None]
    refused = [v for v in audit.vulnerabilities if allowance_for(v, allowances) is None]
    print(f"supply chain: {len(pins)} pinned requirements; source: {audit.source}; {seconds:.1f} s")
    print(f"  checked {audit.checked}, not checked {len(audit.unchecked)}")
    for name, version, why in audit.unchecked:
        print(f"    not checked: {name}=={version} ({why})")
    for vulnerability, allowance in accepted:
        until = f" until {allowance.until}" if allowance.until else ""
        print(f"  allowed: {vulnerability.package}=={vulnerability.version} {vulnerability.id}{until}: "
              f"{allowance.reason}")  # fmt: skip
    for vulnerability in refused:
        fix = f"; fixed in {', '.join(vulnerability.fixed_in)}" if vulnerability.fixed_in else "; no fix yet"
        aliases = f" ({', '.join(vulnerability.aliases)})" if vulnerability.aliases else ""
        print(f"  VULNERABLE: {vulnerability.package}=={vulnerability.version} {vulnerability.id}{aliases}"
              f"{fix} {vulnerability.link}".rstrip())  # fmt: skip
    if refused:
        print(f"supply chain: {len(refused)} known vulnerabilities; upgrade the pins, or add an entry with "
              f"its reason to {ALLOWLIST.name}", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", type=Path, help="Pinned requirements instead of `uv export`.")
    parser.add_argument("--allowlist", type=Path, default=ALLOWLIST)
    parser.add_argument("--source", choices=["auto", "pip-audit", "project-json"], default="auto")
    parser.add_argument("--no-cache", action="store_true", help="Ask PyPI again for every project.")
    args = parser.parse_args(argv)
    try:
        allowances = load_allowlist(args.allowlist, dt.date.today())
    except (AllowlistError, tomllib.TOMLDecodeError) as problem:
        print(f"supply chain: {problem}", file=sys.stderr)
        return 1
    requirements = args.requirements.read_text() if args.requirements else export_requirements()
    cache = None if args.no_cache else Path(platformdirs.user_cache_dir("ancora")) / CACHE_FILE
    return run_audit(requirements, allowances, args.source, cache)


if __name__ == "__main__":
    sys.exit(main())
