"""One collection cycle: fetch a sample of the current batch, validate it, store what is new.

Relies on nothing but the data API contract, so it works against the course API and the simulator.
`collect_batch` runs the cycle in one process (`ancora collect`); the DAG runs it as visible tasks
that hand rows on through the raw store's staging table (`fetch_to_staging`, `validate_staged`,
`store_staged`), so only counts travel through XCom, and `announcement` decides its Asset event from
what the run stored, whichever attempt stored it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from ancora.schema import COLUMN_NAMES
from ancora.store import RawRowStore, RunTotals, Staging
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


class NothingStaged(RuntimeError):
    """A task found neither its run's staged input nor anything the run stored: an earlier task is missing."""


FETCHED = "fetched"
VALIDATED = "validated"


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
    """Rows this attempt stored: one per new (batch, content)."""
    duplicates: int
    quarantined: int
    new_contents: int = 0
    """Rows this attempt stored whose content the group had never stored, in any batch."""
    exhausted: bool = False
    run_id: str = ""
    run_inserted: int = 0
    """Rows the whole run stored, over all its attempts: what its Asset event announces."""
    run_new_contents: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of_run(cls, group: int, totals: RunTotals, run_id: str) -> CollectionResult:
        """The result of a run whose response an earlier attempt stored; this attempt stored nothing."""
        return cls(
            group=group,
            batch=totals.batch,
            received=totals.received,
            inserted=0,
            duplicates=0,
            quarantined=0,
            new_contents=0,
            exhausted=totals.exhausted,
            run_id=run_id,
            run_inserted=totals.inserted,
            run_new_contents=totals.new_contents,
        )


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
    store: RawRowStore,
    fetched: FetchedBatch,
    report: ValidationReport,
    run_id: str,
    *,
    received: int | None = None,
    clear_staging: bool = False,
) -> CollectionResult:
    """Write one validated response and its log entry in one transaction; safe to repeat.

    `received` is the response's row count when `fetched` no longer carries its rows (the DAG's store
    task reads only the validated rows).
    """
    received = len(fetched.rows) if received is None else received
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
            new_contents=0,
            clear_staging=clear_staging,
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
    written = store.store_response(
        group_number=fetched.group_number,
        batch_number=fetched.batch_number,
        valid=report.valid,
        quarantined=report.quarantined,
        run_id=run_id,
        received=received,
        clear_staging=clear_staging,
    )
    totals = store.run_totals(run_id)
    result = CollectionResult(
        group=fetched.group_number,
        batch=fetched.batch_number,
        received=received,
        inserted=written.inserted,
        duplicates=written.duplicates,
        quarantined=len(report.quarantined),
        new_contents=written.new_contents,
        run_id=run_id,
        run_inserted=totals.inserted,
        run_new_contents=totals.new_contents,
    )
    log.info(
        "group %s batch %s: received %s, inserted %s (%s new contents), duplicates %s, quarantined %s",
        result.group,
        result.batch,
        result.received,
        result.inserted,
        result.new_contents,
        result.duplicates,
        result.quarantined,
    )
    return result


def collect_batch(
    store: RawRowStore, base_url: str, group_number: int, timeout: float, run_id: str
) -> CollectionResult:
    fetched = fetch_batch(base_url, group_number, timeout)
    return store_batch(store, fetched, validate_batch(fetched), run_id)


def fetch_to_staging(
    store: RawRowStore, base_url: str, group_number: int, timeout: float, run_id: str
) -> dict[str, Any]:
    """The DAG's fetch: the response goes to the run's staging row; XCom gets its counts only."""
    staging = Staging(store.engine)
    purged = staging.purge_stale()
    if purged:
        log.info("purged %s staged inputs of runs that never reached their store task", purged)
    fetched = fetch_batch(base_url, group_number, timeout)
    staging.put(run_id, FETCHED, fetched.to_dict())
    return {
        "group": fetched.group_number,
        "batch": fetched.batch_number,
        "received": len(fetched.rows),
        "exhausted": fetched.exhausted,
        "detail": fetched.detail,
    }


def validate_staged(store: RawRowStore, run_id: str) -> dict[str, Any]:
    """The DAG's validate: reads the run's staged response, stages the report; XCom gets counts only."""
    staging = Staging(store.engine)
    staged = staging.get(run_id, FETCHED)
    if staged is None:
        raise NothingStaged(f"run {run_id}: no fetched response is staged; the fetch task must run first")
    fetched = FetchedBatch.from_dict(staged)
    report = validate_batch(fetched)
    header = {key: value for key, value in staged.items() if key != "rows"}
    staging.put(
        run_id, VALIDATED, {"fetched": {**header, "received": len(fetched.rows)}, **report_to_dict(report)}
    )
    return {
        "group": fetched.group_number,
        "batch": fetched.batch_number,
        "valid": len(report.valid),
        "quarantined": len(report.quarantined),
        "exhausted": fetched.exhausted,
    }


def store_staged(store: RawRowStore, group_number: int, run_id: str) -> CollectionResult:
    """The DAG's store: writes the run's validated rows and removes its staging in one transaction.

    If an earlier attempt already committed (and died before reporting), nothing is staged any more:
    the result then reports what the run stored, from the collection log.
    """
    staged = Staging(store.engine).get(run_id, VALIDATED)
    if staged is None:
        totals = store.run_totals(run_id)
        if totals.cycles == 0:
            raise NothingStaged(
                f"run {run_id}: nothing validated is staged and the run stored nothing; "
                "the fetch and validate tasks must run first"
            )
        log.info(
            "run %s: an earlier attempt stored its response (%s rows, %s new contents); reporting that",
            run_id,
            totals.inserted,
            totals.new_contents,
        )
        return CollectionResult.of_run(group_number, totals, run_id)
    header = staged["fetched"]
    fetched = FetchedBatch(
        group_number=int(header["group_number"]),
        batch_number=header["batch_number"],
        rows=[],
        exhausted=bool(header["exhausted"]),
        detail=str(header["detail"]),
    )
    return store_batch(
        store, fetched, report_from_dict(staged), run_id, received=int(header["received"]), clear_staging=True
    )


def announcement(result: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The Asset event's extra for a store result, or None and why there is none.

    New data means new *contents*: under the course's reference server every batch repeats the
    group's slice, so rows new to a batch are mostly contents stored before, and training on them
    again would learn nothing new. The counts are the run's, not the attempt's, so a store attempt
    that committed and died still gets its event from the retry.
    """
    if result["exhausted"]:
        return None, "all batches of the group are collected; nothing new to announce"
    if result["run_new_contents"] == 0:
        return None, (
            f"batch {result['batch']}: no new contents ({result['run_inserted']} rows stored, all of "
            "contents stored before), no Asset event"
        )
    return {
        "group": result["group"],
        "batch": result["batch"],
        "inserted": result["run_inserted"],
        "new_contents": result["run_new_contents"],
    }, ""
