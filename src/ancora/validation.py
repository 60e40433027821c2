"""Parse and validate raw rows from the data API.

The API sends every value as a string; a row that fails any rule is kept aside with the reason
instead of stopping the good rows of the same response.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter, le
from typing import Any

from ancora.schema import CATEGORICAL, COLUMN_NAMES, COLUMNS, SOIL_TYPE_REGEX

TypedValue = int | str


@dataclass(frozen=True)
class ValidRow:
    values: dict[str, TypedValue]
    content_hash: str


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
    joined = "\x1f".join(map(str, parts))
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
    return ValidRow(values=values, content_hash=content_hash(values.values()))


def validate_rows(rows: Iterable[Any]) -> ValidationReport:
    """Validate a response: a tight check for well-formed rows, the full rules for the rest.

    `parse_row` stays the reference: any row the quick check doubts goes through it, so both paths
    accept exactly the same rows and every reason is written in one place.
    """
    report = ValidationReport()
    for raw in rows:
        typed = quick_parse(raw)
        if typed is not None:
            report.valid.append(
                ValidRow(values=dict(zip(COLUMN_NAMES, typed, strict=True)), content_hash=content_hash(typed))
            )
            continue
        checked = validate_row(raw)
        if isinstance(checked, ValidRow):
            report.valid.append(checked)
        else:
            report.quarantined.append(checked)
    return report


NUMERIC_POSITIONS = tuple(i for i, c in enumerate(COLUMNS) if c.kind != CATEGORICAL)
CATEGORY_POSITIONS = tuple(i for i, c in enumerate(COLUMNS) if c.kind == CATEGORICAL)
MINIMA: tuple[float, ...] = tuple(
    -math.inf if (low := COLUMNS[i].minimum) is None else float(low) for i in NUMERIC_POSITIONS
)
MAXIMA: tuple[float, ...] = tuple(
    math.inf if (high := COLUMNS[i].maximum) is None else float(high) for i in NUMERIC_POSITIONS
)
numeric_cells = itemgetter(*NUMERIC_POSITIONS)


def category_ok(column_index: int) -> Callable[[str], bool]:
    column = COLUMNS[column_index]
    if column.pattern is not None:
        return lambda value: SOIL_TYPE_REGEX.fullmatch(value) is not None
    return frozenset(column.choices).__contains__


CATEGORY_CHECKS = tuple((i, category_ok(i)) for i in CATEGORY_POSITIONS)


def quick_parse(raw: Any) -> list[TypedValue] | None:
    """Typed values of a row of plain strings that obviously passes; None means "check it properly"."""
    if type(raw) is not list or len(raw) != len(COLUMNS) or set(map(type, raw)) != {str}:
        return None
    try:
        numbers = list(map(int, numeric_cells(raw)))
    except ValueError:
        return None
    if not (all(map(le, MINIMA, numbers)) and all(map(le, numbers, MAXIMA))):
        return None
    if not all(check(raw[i]) for i, check in CATEGORY_CHECKS):
        return None
    typed: list[TypedValue] = list(raw)
    for position, number in zip(NUMERIC_POSITIONS, numbers, strict=True):
        typed[position] = number
    return typed
