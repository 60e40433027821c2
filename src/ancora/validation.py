"""Parse and validate raw rows from the data API.

The API sends every value as a string; a row that fails any rule is kept aside with the reason
instead of stopping the good rows of the same response.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ancora.schema import CATEGORICAL, COLUMNS, SOIL_TYPE_REGEX, Column

TypedValue = int | str
FIELD_SEPARATOR = "\x1f"
"""Joins a row's values before hashing; no accepted value contains it, so fields cannot run together."""


@dataclass(slots=True)
class ValidRow:
    """A row that passed every rule, kept as the canonical text of its typed values.

    Canonical text (`str` of the typed value) is what the hash covers and what the bulk loaders read,
    so a well-formed row from the API is stored without being converted to numbers and back. Not
    frozen: a frozen dataclass costs a microsecond more per row, a twentieth of the ingest budget.
    """

    cells: tuple[str, ...]
    content_hash: str

    @classmethod
    def of_values(cls, values: Iterable[TypedValue]) -> ValidRow:
        cells = tuple(map(str, values))
        return cls(cells, text_hash(FIELD_SEPARATOR.join(cells)))

    @property
    def values(self) -> dict[str, TypedValue]:
        return {
            column.name: cell if column.kind == CATEGORICAL else int(cell)
            for column, cell in zip(COLUMNS, self.cells, strict=True)
        }


@dataclass(frozen=True)
class QuarantinedRow:
    raw: Any
    reason: str
    content_hash: str


@dataclass
class ValidationReport:
    valid: list[ValidRow] = field(default_factory=list)
    quarantined: list[QuarantinedRow] = field(default_factory=list)


class InvalidValue(ValueError):
    """One field broke the contract; the message names the field and the problem."""


def content_hash(parts: Iterable[object]) -> str:
    """A short, stable digest of a row's values, the dedup key within a group and batch."""
    return text_hash(FIELD_SEPARATOR.join(map(str, parts)))


def text_hash(joined: str) -> str:
    return hashlib.blake2b(joined.encode("utf-8"), digest_size=16).hexdigest()


def raw_hash(raw: Any) -> str:
    """Digest of a rejected row exactly as received, so a retried response is not quarantined twice."""
    return content_hash([json.dumps(raw, sort_keys=True, default=str)])


def parse_integer(name: str, raw: object, minimum: int | None, maximum: int | None) -> int:
    if isinstance(raw, bool) or raw is None:
        raise InvalidValue(f"{name}: expected a number, got {raw!r}")
    if isinstance(raw, int):
        value = raw
    else:
        text = str(raw).strip()
        try:
            value = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise InvalidValue(f"{name}: expected a number, got {raw!r}") from None
            if not number.is_integer():
                raise InvalidValue(f"{name}: expected a whole number, got {raw!r}") from None
            value = int(number)
    if minimum is not None and value < minimum:
        raise InvalidValue(f"{name}: {value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidValue(f"{name}: {value} is above the maximum {maximum}")
    return value


def parse_category(name: str, raw: object, choices: Sequence[str], pattern_check: bool) -> str:
    if not isinstance(raw, str):
        raise InvalidValue(f"{name}: expected text, got {raw!r}")
    value = raw.strip()
    if pattern_check:
        if not SOIL_TYPE_REGEX.fullmatch(value):
            raise InvalidValue(f"{name}: {raw!r} does not match C followed by four digits")
    elif value not in choices:
        raise InvalidValue(f"{name}: {raw!r} is not one of {', '.join(choices)}")
    return value


def parse_row(raw: Any) -> dict[str, TypedValue]:
    """Typed values of one raw row (a list in the data API's column order), or InvalidValue."""
    if not isinstance(raw, list | tuple):
        raise InvalidValue(f"row: expected a list of {len(COLUMNS)} values, got {type(raw).__name__}")
    if len(raw) != len(COLUMNS):
        raise InvalidValue(f"row: expected {len(COLUMNS)} values, got {len(raw)}")
    values: dict[str, TypedValue] = {}
    for column, cell in zip(COLUMNS, raw, strict=True):
        if column.kind == CATEGORICAL:
            values[column.name] = parse_category(
                column.name, cell, column.choices, pattern_check=column.pattern is not None
            )
        else:
            values[column.name] = parse_integer(column.name, cell, column.minimum, column.maximum)
    return values


def validate_row(raw: Any) -> ValidRow | QuarantinedRow:
    try:
        values = parse_row(raw)
    except InvalidValue as problem:
        return QuarantinedRow(raw=raw, reason=str(problem), content_hash=raw_hash(raw))
    return ValidRow.of_values(values.values())


def validate_rows(rows: Iterable[Any]) -> ValidationReport:
    """Validate a response: set lookups for canonical rows, the full rules for the rest.

    A row of 13 strings, each already the canonical text of an accepted value, is valid as it
    stands, so the usual response is checked a column at a time (13 C-level subset tests), and a
    response with a doubtful cell a row at a time. `parse_row` stays the reference: any other row
    goes through it, so every path accepts exactly the same rows and gives them the same hash, and
    every reason is written in one place.
    """
    rows = rows if isinstance(rows, list) else list(rows)
    if all_canonical(rows):
        return ValidationReport(valid=list(map(canonical_row, rows)))
    report = ValidationReport()
    accepted = canonical_texts()
    width = len(COLUMNS)
    for raw in rows:
        if type(raw) is list and len(raw) == width:
            try:
                canonical = all(map(frozenset.__contains__, accepted, raw))
            except TypeError:
                canonical = False
            if canonical:
                report.valid.append(canonical_row(raw))
                continue
        checked = validate_row(raw)
        if isinstance(checked, ValidRow):
            report.valid.append(checked)
        else:
            report.quarantined.append(checked)
    return report


def all_canonical(rows: list[Any]) -> bool:
    if not rows or set(map(type, rows)) != {list} or set(map(len, rows)) != {len(COLUMNS)}:
        return False
    try:
        return all(map(frozenset.issuperset, canonical_texts(), zip(*rows, strict=True)))
    except TypeError:
        return False


def canonical_row(raw: list[str]) -> ValidRow:
    return ValidRow(tuple(raw), text_hash(FIELD_SEPARATOR.join(raw)))


@cache
def canonical_texts() -> tuple[frozenset[str], ...]:
    """Per column, every accepted value written as `str` of its typed form (built on first use).

    The contract bounds every number, so the sets are small: about 28,000 strings in all.
    """
    return tuple(column_texts(column) for column in COLUMNS)


def column_texts(column: Column) -> frozenset[str]:
    if column.kind == CATEGORICAL:
        if column.pattern is None:
            return frozenset(column.choices)
        return frozenset(
            text for number in range(10_000) if SOIL_TYPE_REGEX.fullmatch(text := f"C{number:04d}")
        )
    if column.minimum is None or column.maximum is None:
        raise ValueError(f"{column.name}: the quick path needs a bounded range")
    return integer_texts(column.minimum, column.maximum)


@cache
def integer_texts(minimum: int, maximum: int) -> frozenset[str]:
    return frozenset(map(str, range(minimum, maximum + 1)))
