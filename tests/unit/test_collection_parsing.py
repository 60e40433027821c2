from __future__ import annotations

from collections.abc import Iterator

import pytest

from ancora.collection import (
    DataApiError,
    DataApiRejected,
    FetchedBatch,
    fetch_batch,
    parse_response,
    report_from_dict,
    report_to_dict,
    validate_batch,
)
from tests.support.scripted_api import Scripted, ScriptedApi, scripted_api

ROW = ["2065", "97", "24", "242", "146", "268", "250", "198", "63", "552", "Cache", "C2702", "3"]


@pytest.fixture
def api() -> Iterator[ScriptedApi]:
    with scripted_api() as running:
        yield running


def fetch(api: ScriptedApi, *answers: Scripted, timeout: float = 5) -> FetchedBatch:
    api.answer(*answers)
    fetched = fetch_batch(api.url, 3, timeout)
    assert api.requests[-1] == {"path": ["/data"], "group_number": ["3"]}
    return fetched


def test_a_response_becomes_a_fetched_batch(api: ScriptedApi) -> None:
    body = {"group_number": 3, "batch_number": 2, "data": [ROW, ROW]}
    fetched = fetch(api, Scripted(body=body))
    assert fetched == FetchedBatch(group_number=3, batch_number=2, rows=[ROW, ROW])


def test_the_all_collected_400_is_the_end_of_the_data(api: ScriptedApi) -> None:
    detail = "Ya se recolectó toda la información minima necesaria"
    fetched = fetch(api, Scripted(400, {"detail": detail}))
    assert fetched.exhausted
    assert fetched.detail == detail


def test_a_400_about_the_group_is_a_configuration_error(api: ScriptedApi) -> None:
    with pytest.raises(DataApiRejected, match="Invalid group number"):
        fetch(api, Scripted(400, {"detail": "Invalid group number"}))


@pytest.mark.parametrize(
    ("status", "text", "message"),
    [
        (500, "boom", "data API answered HTTP 500: boom"),
        (503, "", "data API answered HTTP 503"),
        (200, "<html>not json</html>", "data API body is not JSON"),
    ],
)
def test_server_errors_and_garbage_are_retryable(
    api: ScriptedApi, status: int, text: str, message: str
) -> None:
    with pytest.raises(DataApiError, match=message):
        fetch(api, Scripted(status, text=text))


def test_a_slow_answer_is_a_timeout(api: ScriptedApi) -> None:
    with pytest.raises(DataApiError, match=r"did not answer within 0.2 s"):
        fetch(api, Scripted(body={}, delay=1.0), timeout=0.2)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([ROW], "expected a JSON object, got list"),
        ({"batch_number": 1}, "'data' must be a list of rows, got NoneType"),
        ({"data": [ROW]}, "batch_number missing or not a number"),
        ({"batch_number": "one", "data": []}, "batch_number is not a number"),
    ],
)
def test_malformed_bodies_name_the_problem(body: object, message: str) -> None:
    with pytest.raises(DataApiError, match=message):
        parse_response(body, 3)


def test_refused_connection_is_retryable() -> None:
    with pytest.raises(DataApiError, match="unreachable"):
        fetch_batch("http://127.0.0.1:9", 3, 2)


def test_validation_report_survives_a_round_trip_through_xcom_json() -> None:
    fetched = FetchedBatch(group_number=3, batch_number=1, rows=[ROW, ROW[:3]])
    report = validate_batch(fetched)
    again = report_from_dict(report_to_dict(report))
    assert again == report
    assert len(again.valid) == 1
    assert again.quarantined[0].reason == "row: expected 13 values, got 3"
