"""One collection cycle: fetch a sample of the current batch, validate it, store what is new.

Relies on nothing but the data API contract, so it works against the course API and the simulator.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from ancora.schema import COLUMN_NAMES
from ancora.store import RawRowStore
from ancora.validation import QuarantinedRow, ValidationReport, ValidRow, validate_rows

log = logging.getLogger(__name__)


EMPTY_SLICE_GROUP = 10
EMPTY_SLICE_HINT = (
    " (the course's reference server fails every request of group 10 this way: it samples the slice"
    " after the last one, which is empty; see docs/data_api.md)"
)


class DataApiError(RuntimeError):
    """The data API could not be used this time (timeout, refused, 5xx, unreadable body): retry later."""


class DataApiRejected(RuntimeError):
    """The data API refused the request for a reason a retry will not fix (e.g. an invalid group)."""


@dataclass(frozen=True)
class FetchedBatch:
    group_number: int
    batch_number: int | None
    rows: list[Any] = field(default_factory=list)
    exhausted: bool = False
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FetchedBatch:
        return cls(**data)


@dataclass(frozen=True)
class CollectionResult:
    group: int
    batch: int | None
    received: int
    inserted: int
    duplicates: int
    quarantined: int
    exhausted: bool = False
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_exhaustion_detail(detail: str) -> bool:
    """A 400 for a valid group means all batches are consumed; one that names the group means it is wrong."""
    lowered = detail.lower()
    return not ("group" in lowered or "grupo" in lowered)


def error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:200]


def fetch_batch(
    base_url: str, group_number: int, timeout: float, client: httpx.Client | None = None
) -> FetchedBatch:
    """GET /data for a group; raises DataApiError for anything a retry may cure."""
    url = f"{base_url.rstrip('/')}/data"
    own_client = client is None
    http = client or httpx.Client(timeout=timeout)
    try:
        response = http.get(url, params={"group_number": group_number})
    except httpx.TimeoutException as problem:
        raise DataApiError(f"data API at {url} did not answer within {timeout:g} s") from problem
    except httpx.TransportError as problem:
        raise DataApiError(f"data API at {url} is unreachable: {problem}") from problem
    finally:
        if own_client:
            http.close()

    if response.status_code == 400:
        detail = error_detail(response)
        if is_exhaustion_detail(detail):
            return FetchedBatch(group_number=group_number, batch_number=None, exhausted=True, detail=detail)
        raise DataApiRejected(f"data API rejected group_number={group_number}: {detail}")
    if response.status_code >= 500:
        hint = EMPTY_SLICE_HINT if group_number == EMPTY_SLICE_GROUP else ""
        raise DataApiError(f"data API answered HTTP {response.status_code}: {error_detail(response)}{hint}")
    if response.status_code != 200:
        raise DataApiRejected(f"data API answered HTTP {response.status_code}: {error_detail(response)}")
    try:
        body = response.json()
    except ValueError as problem:
        raise DataApiError(f"data API body is not JSON: {response.text[:120]!r}") from problem
    return parse_response(body, group_number)


def parse_response(body: Any, group_number: int) -> FetchedBatch:
    if not isinstance(body, dict):
        raise DataApiError(f"data API body: expected a JSON object, got {type(body).__name__}")
    batch = body.get("batch_number")
    if isinstance(batch, bool) or not isinstance(batch, int | str):
        raise DataApiError(f"data API body: batch_number missing or not a number: {batch!r}")
    try:
        batch_number = int(batch)
    except ValueError as problem:
        raise DataApiError(f"data API body: batch_number is not a number: {batch!r}") from problem
    rows = body.get("data")
    if not isinstance(rows, list):
        raise DataApiError(f"data API body: 'data' must be a list of rows, got {type(rows).__name__}")
    return FetchedBatch(group_number=group_number, batch_number=batch_number, rows=rows)


def report_to_dict(report: ValidationReport) -> dict[str, Any]:
    return {
        "valid": [{"values": r.values, "content_hash": r.content_hash} for r in report.valid],
        "quarantined": [
            {"raw": r.raw, "reason": r.reason, "content_hash": r.content_hash} for r in report.quarantined
        ],
    }


def report_from_dict(data: dict[str, Any]) -> ValidationReport:
    """Hashes are computed again from the values, so an edited XCom cannot file a row under another key."""
    return ValidationReport(
        valid=[ValidRow.of_values(r["values"][name] for name in COLUMN_NAMES) for r in data["valid"]],
        quarantined=[QuarantinedRow(**r) for r in data["quarantined"]],
    )


def validate_batch(fetched: FetchedBatch) -> ValidationReport:
    report = validate_rows(fetched.rows)
    for bad in report.quarantined:
        log.warning("quarantined a row of batch %s: %s", fetched.batch_number, bad.reason)
    return report


def store_batch(
    store: RawRowStore, fetched: FetchedBatch, report: ValidationReport, run_id: str
) -> CollectionResult:
    """Write one validated response and log the cycle; safe to repeat with the same input."""
    if fetched.exhausted or fetched.batch_number is None:
        log.info("all batches of group %s are collected: %s", fetched.group_number, fetched.detail)
        store.log_collection(
            run_id=run_id,
            group_number=fetched.group_number,
            batch_number=None,
            outcome="exhausted",
            received=0,
            inserted=0,
            duplicates=0,
            quarantined=0,
        )
        return CollectionResult(
            group=fetched.group_number,
            batch=None,
            received=0,
            inserted=0,
            duplicates=0,
            quarantined=0,
            exhausted=True,
            run_id=run_id,
        )
    written = store.write_batch(
        group_number=fetched.group_number,
        batch_number=fetched.batch_number,
        valid=report.valid,
        quarantined=report.quarantined,
        run_id=run_id,
    )
    result = CollectionResult(
        group=fetched.group_number,
        batch=fetched.batch_number,
        received=len(fetched.rows),
        inserted=written.inserted,
        duplicates=written.duplicates,
        quarantined=len(report.quarantined),
        run_id=run_id,
    )
    store.log_collection(
        run_id=run_id,
        group_number=result.group,
        batch_number=result.batch,
        outcome="stored",
        received=result.received,
        inserted=result.inserted,
        duplicates=result.duplicates,
        quarantined=result.quarantined,
    )
    log.info(
        "group %s batch %s: received %s, inserted %s, duplicates %s, quarantined %s",
        result.group,
        result.batch,
        result.received,
        result.inserted,
        result.duplicates,
        result.quarantined,
    )
    return result


def collect_batch(
    store: RawRowStore, base_url: str, group_number: int, timeout: float, run_id: str
) -> CollectionResult:
    fetched = fetch_batch(base_url, group_number, timeout)
    return store_batch(store, fetched, validate_batch(fetched), run_id)
