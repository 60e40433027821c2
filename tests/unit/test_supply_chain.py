"""The supply-chain check of `make test` (tools/audit_lock.py): a known-vulnerable pin fails it unless
an allow-list entry says why. Against PyPI for real (pycrypto 2.6.1 is its latest release and has
four published advisories, none fixed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tools.audit_lock import (
    AllowlistError,
    load_allowlist,
    main,
    parse_pip_audit_report,
    pins_of,
)

VULNERABLE = "pycrypto==2.6.1\n"
ITS_CVES = ("CVE-2013-7459", "CVE-2018-6594")


def audit(tmp_path: Path, requirements: str, allowlist: str = "") -> int:
    (tmp_path / "requirements.txt").write_text(requirements)
    (tmp_path / "allow.toml").write_text(allowlist)
    return main(
        [
            "--requirements", str(tmp_path / "requirements.txt"),
            "--allowlist", str(tmp_path / "allow.toml"),
            "--source", "project-json",
            "--no-cache",
        ]
    )  # fmt: skip


REASON = "Not reachable: Ancora never imports it."


def entry(vulnerability: str, reason: str = REASON, until: str = "") -> str:
    extra = f"until = {until}\n" if until else ""
    return f'[[allow]]\nid = "{vulnerability}"\nreason = "{reason}"\n{extra}'


def test_a_known_vulnerable_pin_fails_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert audit(tmp_path, VULNERABLE) == 1
    out = capsys.readouterr()
    assert "VULNERABLE: pycrypto==2.6.1 PYSEC-2017-94 (CVE-2013-7459" in out.out
    assert "add an entry with its reason to supply-chain-allowlist.toml" in out.err


def test_an_allow_list_entry_with_its_reason_lets_it_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    allowlist = "\n".join(entry(cve) for cve in ITS_CVES)
    assert audit(tmp_path, VULNERABLE, allowlist) == 0
    assert "allowed: pycrypto==2.6.1 PYSEC-2017-94: Not reachable" in capsys.readouterr().out
    assert audit(tmp_path, VULNERABLE, entry(ITS_CVES[0])) == 1  # the other advisory still fails it


@pytest.mark.parametrize(
    ("allowlist", "message"),
    [
        (entry("CVE-2013-7459", reason=""), "has no reason"),
        (entry("CVE-2013-7459", until="2020-01-01"), "expired on 2020-01-01"),
        ('[[allow]]\nreason = "x"\n', "has no id"),
    ],
)
def test_an_allow_list_entry_without_a_reason_or_past_its_date_is_refused(
    tmp_path: Path, allowlist: str, message: str
) -> None:
    path = tmp_path / "allow.toml"
    path.write_text(allowlist)
    with pytest.raises(AllowlistError, match=message):
        load_allowlist(path, dt.date(2026, 12, 1))
    assert audit(tmp_path, VULNERABLE, allowlist) == 1


def test_the_projects_allow_list_is_valid() -> None:
    load_allowlist(Path(__file__).resolve().parents[2] / "supply-chain-allowlist.toml", dt.date.today())


def test_pins_come_from_uv_exports_lines() -> None:
    exported = "Jinja2==3.1.6 ; python_full_version >= '3.11'\n    # via flask\nzope.interface==8.0\n-e .\n"
    assert pins_of(exported) == {"jinja2": "3.1.6", "zope-interface": "8.0"}


def test_a_pip_audit_report_is_read_with_its_skipped_dependencies() -> None:
    """pip-audit's JSON report format, as pip-audit 2.10 writes it (a skipped dependency is what this
    machine's registry mirror gets for every pin: it serves no per-release JSON)."""
    report = {
        "dependencies": [
            {"name": "jinja2", "version": "2.10", "vulns": [
                {"id": "PYSEC-2019-217", "fix_versions": ["2.10.1"], "aliases": ["CVE-2019-10906"]}
            ]},
            {"name": "idna", "version": "3.11", "vulns": []},
            {"name": "pycrypto", "skip_reason": "Dependency not found on PyPI and could not be audited"},
        ],
        "fixes": [],
    }  # fmt: skip
    audit = parse_pip_audit_report(report)
    assert audit.checked == 2
    assert [(v.package, v.id, v.fixed_in) for v in audit.vulnerabilities] == [
        ("jinja2", "PYSEC-2019-217", ("2.10.1",))
    ]
    assert audit.unchecked[0][0] == "pycrypto"
