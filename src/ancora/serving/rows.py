"""Feature rows as the serving side receives them: one request model derived from the data contract.

Ranges and categories come from ``ancora.schema``, never retyped, so the API rejects exactly what the
collector quarantines. Values may arrive in the data API's raw format (every value a string) or typed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from ancora.schema import (
    FEATURE_NAMES,
    FEATURES,
    LABEL_NAME,
    NUMERIC,
    NUMERIC_FEATURES,
    Column,
)
from ancora.serving.errors import MAX_REPORTED_ERRORS, clip_text, short_repr

FeatureValues = tuple[int | str, ...]
"""One row's values in ``FEATURE_NAMES`` order; the micro-batcher and the frame builder take these."""

EXAMPLE_ROW: dict[str, str] = {
    "Elevation": "3207",
    "Aspect": "249",
    "Slope": "4",
    "Horizontal_Distance_To_Hydrology": "212",
    "Vertical_Distance_To_Hydrology": "17",
    "Horizontal_Distance_To_Roadways": "5981",
    "Hillshade_9am": "211",
    "Hillshade_Noon": "242",
    "Hillshade_3pm": "170",
    "Horizontal_Distance_To_Fire_Points": "1682",
    "Wilderness_Area": "Rawah",
    "Soil_Type": "C7201",
}
"""A real row of the data set, exactly as the data API sends it."""


def _whole_number(value: Any) -> Any:
    """Accept the data API's strings ("2065", "2065.0") and refuse booleans, which Python counts as ints."""
    if isinstance(value, bool):
        raise ValueError("expected a whole number, got a boolean")
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"expected a whole number, got {short_repr(value)}") from None
            if not number.is_integer():
                raise ValueError(f"expected a whole number, got {short_repr(value)}") from None
            return int(number)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


def _field(column: Column) -> tuple[Any, Any]:
    example = EXAMPLE_ROW[column.name]
    if column.kind == NUMERIC:
        return (
            WholeNumber,
            Field(
                ge=column.minimum,
                le=column.maximum,
                description=f"{column.description} ({column.minimum}..{column.maximum}); "
                "a number or a string of digits.",
                examples=[int(example)],
            ),
        )
    choices: Any = Literal.__getitem__(column.choices)
    return (choices, Field(description=column.description, examples=[example]))


if TYPE_CHECKING:

    class FeatureRow(BaseModel):
        """What type checkers see; the real fields are added from the schema below."""

else:
    FeatureRow = create_model(
        "FeatureRow",
        __config__=ConfigDict(
            extra="ignore",
            json_schema_extra={"examples": [EXAMPLE_ROW]},
            title="FeatureRow",
        ),
        __doc__="One covertype observation: the 12 features of the data contract (the label is ignored).",
        **{column.name: _field(column) for column in FEATURES},
    )

FEATURE_ROWS = TypeAdapter(list[FeatureRow])


def row_values(row: FeatureRow) -> FeatureValues:
    values = row.__dict__
    return tuple(values[name] for name in FEATURE_NAMES)


def features_frame(rows: Sequence[FeatureValues]) -> pd.DataFrame:
    """The DataFrame the pipeline was trained on: columns in contract order, int64 numbers, str categories."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(FEATURE_NAMES)
    return frame_from_columns(dict(zip(FEATURE_NAMES, columns, strict=True)))


def frame_from_columns(columns: Mapping[str, Sequence[Any] | np.ndarray[Any, Any]]) -> pd.DataFrame:
    """The same frame from one array or list per feature (how micro-batches reach the prediction worker).

    Typed column by column: a frame-wide ``astype`` costs about a millisecond even for 32 rows, a
    share of every micro-batch's prediction time.
    """
    numeric = set(NUMERIC_FEATURES)
    return pd.DataFrame(
        {
            name: np.asarray(columns[name], dtype=np.int64)
            if name in numeric
            else pd.array(np.asarray(columns[name], dtype=object), dtype="str")
            for name in FEATURE_NAMES
        },
        columns=list(FEATURE_NAMES),
    )


@dataclass(frozen=True)
class FeatureColumns:
    """Checked rows held column by column (int64 numbers, str objects): how the batch endpoint hands
    them to the micro-batcher, skipping a DataFrame that would only be taken apart again."""

    columns: dict[str, np.ndarray[Any, Any]]

    def __len__(self) -> int:
        return len(self.columns[FEATURE_NAMES[0]])

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> FeatureColumns:
        return cls({name: frame[name].to_numpy() for name in FEATURE_NAMES})


class BatchTooLarge(ValueError):
    """More rows than the configured limit; the API answers 413.

    ``rows`` is None when reading stopped at the first row past the limit, so a body of millions of
    tiny rows costs no more than one of ``limit + 1`` rows.
    """

    def __init__(self, rows: int | None, limit: int) -> None:
        counted = f"{rows} rows" if rows is not None else f"more than {limit} rows"
        super().__init__(f"the batch has {counted}; at most {limit} are accepted per request")
        self.rows = rows
        self.limit = limit


class RowsInvalid(ValueError):
    """Input that breaks the contract, with pydantic-style errors that name the row and field."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} invalid value(s)")
        self.errors = errors


VALIDATION_CHUNK_ROWS = 100
"""Rows the pydantic model checks in one call on the slow path: at most 1,200 errors at a time."""


def validate_rows(records: Any, limit: int) -> pd.DataFrame:
    """Check a decoded JSON body (a list of objects) against the limit, then against the contract.

    Clean input takes a vectorized path (a few milliseconds for 10,000 rows); anything it is not
    sure about goes through the pydantic model row by row, which accepts and names exactly what
    ``/predict`` does. That check runs ``VALIDATION_CHUNK_ROWS`` rows at a time and stops once more
    errors were found than an answer shows: 10,000 rows with 12 errors each once built 120,000
    error items (1.9 s, 137 MB) to report 50, holding the GIL, and so the event loop, meanwhile.
    """
    if not isinstance(records, list):
        raise RowsInvalid(
            [{"type": "list_type", "loc": ("body",), "msg": "Input should be a list of rows", "input": None}]
        )
    if len(records) > limit:
        raise BatchTooLarge(len(records), limit)
    if not records:
        raise RowsInvalid([{"type": "too_short", "loc": ("body",), "msg": "The batch is empty", "input": []}])
    try:
        columns = {name: [record[name] for record in records] for name in FEATURE_NAMES}
    except (KeyError, TypeError):
        columns = None
    frame = _clean_frame(columns) if columns is not None else None
    if frame is not None:
        return frame
    rows: list[FeatureRow] = []
    errors: list[dict[str, Any]] = []
    for start in range(0, len(records), VALIDATION_CHUNK_ROWS):
        try:
            rows.extend(FEATURE_ROWS.validate_python(records[start : start + VALIDATION_CHUNK_ROWS]))
        except ValidationError as error:
            errors.extend(
                {**item, "loc": ("body", start + item["loc"][1], *item["loc"][2:])}
                for item in body_errors(error)
            )
            if len(errors) > MAX_REPORTED_ERRORS:
                break
    if errors:
        raise RowsInvalid(errors)
    return features_frame([row_values(row) for row in rows])


def _fast_field(column: Column) -> tuple[str, Any]:
    if column.kind == NUMERIC:
        return column.name, Annotated[int, msgspec.Meta(ge=column.minimum, le=column.maximum)]
    return column.name, Literal.__getitem__(column.choices)


_FastRow = msgspec.defstruct("FastRow", [_fast_field(column) for column in FEATURES], gc=False)
_FAST_ROW = msgspec.json.Decoder(_FastRow, strict=False)
_FAST_ROWS = msgspec.json.Decoder(list[_FastRow], strict=False)  # type: ignore[valid-type]
"""Decode and check JSON rows in C. Their lax mode reads "2065", "2065.0" and 2065 as 2065 and refuses
what ``FeatureRow`` refuses (checked edge by edge in the unit tests); they refuse some input
``FeatureRow`` accepts (" 2065", "+2065"), which then takes the pydantic path, the one that names
what is wrong."""


def fast_json_row(body: bytes) -> FeatureValues | None:
    """One ``/predict`` body if it is plainly valid, else None (``parse_json_row`` says why)."""
    if not _is_utf8(body):
        return None
    try:
        values: FeatureValues = msgspec.structs.astuple(_FAST_ROW.decode(body))
    except (ValueError, RecursionError):  # msgspec's errors, and invalid UTF-8 in a string
        return None
    return values


def _is_utf8(body: bytes) -> bool:
    """msgspec skips an unknown field's string without checking it: a body with invalid UTF-8 there
    takes the path that refuses it. ``isascii`` answers for the usual body without a copy."""
    if body.isascii():
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_json_row(body: bytes) -> FeatureValues:
    """One ``/predict`` body; raises pydantic's ``ValidationError`` naming the field at fault."""
    values = fast_json_row(body)
    return row_values(FeatureRow.model_validate_json(body)) if values is None else values


def parse_json_rows(body: bytes, limit: int) -> pd.DataFrame:
    return frame_from_columns(parse_json_columns(body, limit).columns)


def parse_json_columns(body: bytes, limit: int) -> FeatureColumns:
    """A JSON batch body: decoded and checked by msgspec in one pass when it is clean (about three
    times faster than decoding to dicts and checking those), else by ``validate_rows``, which names
    what is wrong."""
    try:
        rows = _FAST_ROWS.decode(body) if _is_utf8(body) else None
    except (ValueError, RecursionError):  # msgspec's errors, and invalid UTF-8 in a string
        rows = None
    if rows:
        if len(rows) > limit:
            raise BatchTooLarge(len(rows), limit)
        numeric = set(NUMERIC_FEATURES)
        return FeatureColumns(
            {
                name: np.asarray(
                    list(map(attrgetter(name), rows)), dtype=np.int64 if name in numeric else object
                )
                for name in FEATURE_NAMES
            }
        )
    return FeatureColumns.of_frame(validate_rows(json_records(body, limit), limit))


_JSON = json.JSONDecoder()
_BLANK = re.compile(r"[ \t\n\r]*")


def json_records(body: bytes, limit: int) -> Any:
    """A JSON body decoded to Python values, a top-level list one element at a time, stopping at
    ``limit + 1`` elements: decoding a 20 MB list of empty objects whole took 0.8 GB.

    ``NaN``, ``Infinity`` and numbers too large for a float (``1e400``) are read as floats, so the row
    model names the field they are in; invalid UTF-8 and JSON are a ``json_invalid`` error.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _json_invalid(f"The body is not UTF-8: {error}") from None
    try:
        return _json_list(text, limit)
    except BatchTooLarge:
        raise
    except (ValueError, RecursionError) as error:
        raise _json_invalid(f"Invalid JSON: {clip_text(str(error) or type(error).__name__, 200)}") from None


def _json_invalid(message: str) -> RowsInvalid:
    return RowsInvalid([{"type": "json_invalid", "loc": ("body",), "msg": message, "input": None}])


def _json_list(text: str, limit: int) -> Any:
    start = _skip_blank(text, 0)
    if not text.startswith("[", start):
        return _JSON.decode(text)
    records: list[Any] = []
    position = _skip_blank(text, start + 1)
    if not text.startswith("]", position):
        while True:
            record, position = _JSON.raw_decode(text, position)
            records.append(record)
            if len(records) > limit:
                raise BatchTooLarge(None, limit)
            position = _skip_blank(text, position)
            if text.startswith(",", position):
                position = _skip_blank(text, position + 1)
            elif text.startswith("]", position):
                break
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
    end = _skip_blank(text, position + 1)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return records


def _skip_blank(text: str, position: int) -> int:
    match = _BLANK.match(text, position)
    return match.end() if match else position


def _clean_frame(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame | None:
    """The features frame if every value is plainly valid (whole numbers in range, known categories),
    else None, and the caller validates row by row to say what is wrong."""
    clean = _clean_columns(columns)
    return None if clean is None else frame_from_columns(clean)


def _clean_columns(columns: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray[Any, Any]] | None:
    data: dict[str, Any] = {}
    for column in FEATURES:
        values = columns[column.name]
        if column.kind == NUMERIC:
            if isinstance(values, np.ndarray) and values.dtype.kind == "i":
                array = values.astype(np.int64, copy=False)
            else:
                if not set(map(type, values)) <= {str, int}:
                    return None
                try:
                    array = np.fromiter(map(int, values), dtype=np.int64, count=len(values))
                except (ValueError, OverflowError):
                    return None
            if column.minimum is not None and array.min() < column.minimum:
                return None
            if column.maximum is not None and array.max() > column.maximum:
                return None
            data[column.name] = array
        else:
            if not set(values) <= set(column.choices):
                return None
            data[column.name] = np.asarray(values, dtype=object)
    return data


@dataclass(frozen=True)
class CheckedRows:
    """Rows split by the contract: the valid ones as a features frame, the others with what is wrong."""

    frame: pd.DataFrame
    """Valid rows in input order."""
    positions: list[int]
    """Input position of each row of ``frame``."""
    errors: dict[int, str]
    """Input position of each invalid row, and its problems with the fields named."""


def check_columns(columns: Mapping[str, Sequence[Any]]) -> CheckedRows:
    """Rows given column by column (as a database returns them), checked like ``/predict/batch`` checks.

    Unlike the API, which refuses a batch with one bad row, batch scoring keeps the good rows: a clean
    batch takes the vectorized path; otherwise every row is validated on its own to report it.
    """
    count = len(columns[FEATURE_NAMES[0]])
    if count == 0:
        return CheckedRows(features_frame([]), [], {})
    frame = _clean_frame(columns)
    if frame is not None:
        return CheckedRows(frame, list(range(count)), {})
    values: list[FeatureValues] = []
    positions: list[int] = []
    errors: dict[int, str] = {}
    for position in range(count):
        record = {name: columns[name][position] for name in FEATURE_NAMES}
        try:
            row = FeatureRow.model_validate(record)
        except ValidationError as error:
            errors[position] = describe_errors(error)
            continue
        values.append(row_values(row))
        positions.append(position)
    return CheckedRows(features_frame(values), positions, errors)


def describe_errors(error: ValidationError) -> str:
    """One line naming every field at fault, its problem and the value given."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']} (got {short_repr(item.get('input'))})"
        for item in error.errors(include_url=False, include_context=False)
    )


MAX_CSV_COLUMNS = len(FEATURE_NAMES) + 1
"""The 12 features and the label: a wider header is refused before its names are compared."""


def parse_csv_rows(data: str | bytes, limit: int) -> pd.DataFrame:
    return frame_from_columns(parse_csv_columns(data, limit).columns)


def parse_csv_columns(data: str | bytes, limit: int) -> FeatureColumns:
    """A CSV body with a header: the 12 feature columns in any order, the label column tolerated.

    The header is checked first so a wrong file is refused with the names of the columns at fault,
    before any row is read; a header wider than the contract is refused before its names are even
    compared. Reading stops at the first row past ``limit``. Text the csv module cannot tokenise is a
    422 too, never a 500, and so are bytes that are not UTF-8 (a byte-order mark is skipped).

    Both readers decode the UTF-8 bytes as they go: a ``StringIO`` of a 20 MB body holds 80 MB.
    """
    try:
        return _parse_csv_columns(data.encode() if isinstance(data, str) else data, limit)
    except csv.Error as error:
        raise RowsInvalid(
            [{"type": "csv_syntax", "loc": ("body",), "msg": f"The CSV cannot be read: {error}", "input": ""}]
        ) from None
    except UnicodeDecodeError as error:
        raise RowsInvalid(
            [{"type": "encoding", "loc": ("body",), "msg": f"The body is not UTF-8: {error}", "input": None}]
        ) from None


def _parse_csv_columns(data: bytes, limit: int) -> FeatureColumns:
    reader = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=""))
    header = next(reader, None)
    if header is None or not any(cell.strip() for cell in header):
        raise RowsInvalid(
            [{"type": "csv_header", "loc": ("body", "header"), "msg": "The CSV has no header", "input": ""}]
        )
    if len(header) > MAX_CSV_COLUMNS:
        raise RowsInvalid(
            [
                {
                    "type": "csv_header",
                    "loc": ("body", "header"),
                    "msg": f"Wrong CSV header: it has {len(header)} columns; at most {MAX_CSV_COLUMNS} are "
                    f"allowed (the {len(FEATURE_NAMES)} features and {LABEL_NAME})",
                    "input": header,
                }
            ]
        )
    columns = [cell.strip() for cell in header]
    allowed = {*FEATURE_NAMES, LABEL_NAME}
    present = set(columns)
    missing = [name for name in FEATURE_NAMES if name not in present]
    unexpected = [name for name in columns if name not in allowed]
    duplicated = sorted(name for name, count in Counter(columns).items() if count > 1)
    problems = []
    if missing:
        problems.append(f"missing columns: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected columns: {_names(unexpected)}")
    if duplicated:
        problems.append(f"duplicated columns: {_names(duplicated)}")
    if problems:
        raise RowsInvalid(
            [
                {
                    "type": "csv_header",
                    "loc": ("body", "header"),
                    "msg": "Wrong CSV header: " + "; ".join(problems),
                    "input": columns,
                }
            ]
        )
    try:
        parsed = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", skip_blank_lines=True, nrows=limit + 1)
    except (ValueError, pd.errors.ParserError):
        parsed = None
    if parsed is not None:
        if len(parsed) > limit:
            raise BatchTooLarge(None, limit)
        if list(parsed.columns) == columns and len(parsed):
            clean = _clean_columns({name: parsed[name].to_numpy() for name in FEATURE_NAMES})
            if clean is not None:
                return FeatureColumns(clean)
    records: list[dict[str, str]] = []
    for line_number, cells in enumerate(reader, start=2):
        if not cells:
            continue
        if len(cells) != len(columns):
            raise RowsInvalid(
                [
                    {
                        "type": "csv_row",
                        "loc": ("body", "line", line_number),
                        "msg": f"Line {line_number} has {len(cells)} fields; the header has {len(columns)}",
                        "input": cells,
                    }
                ]
            )
        records.append(dict(zip(columns, cells, strict=True)))
        if len(records) > limit:
            raise BatchTooLarge(None, limit)
    return FeatureColumns.of_frame(validate_rows(records, limit))


def _names(names: Sequence[str]) -> str:
    return ", ".join(clip_text(name, 40) for name in names)


def body_errors(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors with the request location prefixed, the way FastAPI reports body errors."""
    return [
        {"type": item["type"], "loc": ("body", *item["loc"]), "msg": item["msg"], "input": item.get("input")}
        for item in error.errors(include_url=False, include_context=False)
    ]
