"""Data tests on stored rows: what must hold for every row the store keeps, checked on the rows themselves.

The collector validates rows before it stores them, but the store outlives any one version of the
collector (and anyone with database access can write to it). These checks read what is stored and
report every row or set that breaks a rule, by id, so `ancora data check` can say exactly what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from ancora.schema import COLUMN_NAMES
from ancora.store.tables import evaluation_set_contents, evaluation_sets, raw_rows
from ancora.validation import ValidRow, validate_row

MAX_LISTED = 20
"""Problems listed per rule; the count says how many there are in all."""


@dataclass
class CheckReport:
    rows_checked: int = 0
    distinct_contents: int = 0
    evaluation_versions: int = 0
    problems: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, rule: str, problem: str) -> None:
        self.counts[rule] = self.counts.get(rule, 0) + 1
        listed = self.problems.setdefault(rule, [])
        if len(listed) < MAX_LISTED:
            listed.append(problem)

    @property
    def ok(self) -> bool:
        return not self.counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows_checked": self.rows_checked,
            "distinct_contents": self.distinct_contents,
            "evaluation_versions": self.evaluation_versions,
            "problem_counts": dict(sorted(self.counts.items())),
            "problems": {rule: listed for rule, listed in sorted(self.problems.items())},
        }


def check_stored_rows(engine: Engine, group_number: int | None = None) -> CheckReport:
    """Every stored row obeys the data contract and carries its own content's hash; every evaluation
    set version holds the contents of the one before and only contents its group stored."""
    report = CheckReport()
    query = select(raw_rows.c.id, raw_rows.c.group_number, raw_rows.c.content_hash, *_value_columns())
    if group_number is not None:
        query = query.where(raw_rows.c.group_number == group_number)
    stored: dict[int, set[str]] = {}
    with engine.connect() as connection:
        for row in connection.execute(query.order_by(raw_rows.c.id)):
            report.rows_checked += 1
            _check_row(report, row)
            stored.setdefault(int(row.group_number), set()).add(str(row.content_hash))
    report.distinct_contents = sum(len(contents) for contents in stored.values())
    _check_evaluation_sets(engine, report, stored, group_number)
    return report


def _value_columns() -> list[Any]:
    return [raw_rows.c[name] for name in COLUMN_NAMES]


def _check_row(report: CheckReport, row: Any) -> None:
    cells = [str(getattr(row, name)) for name in COLUMN_NAMES]
    checked = validate_row(cells)
    if not isinstance(checked, ValidRow):
        report.add("breaks_contract", f"row {row.id}: {checked.reason}")
        return
    if checked.content_hash != row.content_hash:
        report.add(
            "hash_mismatch",
            f"row {row.id}: content_hash {row.content_hash} is not its values' hash {checked.content_hash}",
        )


def _check_evaluation_sets(
    engine: Engine, report: CheckReport, stored: dict[int, set[str]], group_number: int | None
) -> None:
    query = select(evaluation_sets.c.id, evaluation_sets.c.group_number, evaluation_sets.c.version)
    if group_number is not None:
        query = query.where(evaluation_sets.c.group_number == group_number)
    with engine.connect() as connection:
        versions = connection.execute(
            query.where(evaluation_sets.c.membership == "content").order_by(
                evaluation_sets.c.group_number, evaluation_sets.c.version
            )
        ).all()
        members: dict[int, set[str]] = {}
        for set_id, _, _ in versions:
            of_version = select(evaluation_set_contents.c.content_hash).where(
                evaluation_set_contents.c.evaluation_set_id == set_id
            )
            members[int(set_id)] = {str(c) for (c,) in connection.execute(of_version)}
    report.evaluation_versions = len(versions)
    previous: dict[int, tuple[int, set[str]]] = {}
    for set_id, group, version in versions:
        contents = members[int(set_id)]
        if missing := contents - stored.get(int(group), set()):
            report.add(
                "evaluation_content_not_stored",
                f"group {group} v{version}: {len(missing)} contents the group never stored",
            )
        if int(group) in previous:
            earlier_version, earlier = previous[int(group)]
            if dropped := earlier - contents:
                report.add(
                    "evaluation_set_not_frozen",
                    f"group {group} v{version} lacks {len(dropped)} contents of v{earlier_version}",
                )
        previous[int(group)] = (int(version), contents)
