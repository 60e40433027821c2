"""The data API simulator against the course contract, through HTTP, with a clock the tests move."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ancora.collection import is_exhaustion_detail
from ancora.config import Settings
from ancora.locations import COVERTYPE_CSV, shipped_dataset
from ancora.schema import COLUMN_NAMES
from ancora.simulator import EXHAUSTED_DETAIL, INTERNAL_ERROR_BODY, INVALID_GROUP_DETAIL, ROOT_BODY
from ancora_data_api.app import create_app

ROTATION = 300.0
DATASET = shipped_dataset(COVERTYPE_CSV)


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def dataset_rows() -> list[tuple[str, ...]]:
    with DATASET.open(newline="") as handle:
        reader = csv.reader(handle)
        assert tuple(next(reader)) == COLUMN_NAMES
        return [tuple(row) for row in reader]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_settings(
    tmp_path: Path, seed: int | None = 7, state_name: str = "state.json", mode: str = "reference"
) -> Settings:
    return Settings(
        _env_file=None,
        state_dir=tmp_path,
        simulator_dataset_path=DATASET,
        simulator_state_path=tmp_path / state_name,
        simulator_rotation_seconds=ROTATION,
        simulator_batches=10,
        simulator_seed=seed,
        simulator_mode=mode,
    )


def make_client(tmp_path: Path, clock: FakeClock, **kwargs: object) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path, **kwargs), clock=clock))  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path, clock: FakeClock) -> TestClient:
    return make_client(tmp_path, clock)


@pytest.fixture
def intended(tmp_path: Path, clock: FakeClock) -> TestClient:
    return make_client(tmp_path, clock, mode="intended")


def get_data(client: TestClient, group: object = 1) -> dict[str, object]:
    response = client.get("/data", params={"group_number": group})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def data_slice(rows: list[tuple[str, ...]], index: int) -> set[tuple[str, ...]]:
    """The index-th (0-based) of the ten consecutive slices of the data set."""
    size = len(rows) // 10
    return set(rows[index * size : (index + 1) * size])


def batch_slice(rows: list[tuple[str, ...]], batch_number: int) -> set[tuple[str, ...]]:
    """What batch B samples in the intended mode."""
    return data_slice(rows, batch_number - 1)


def group_slice(rows: list[tuple[str, ...]], group_number: int) -> set[tuple[str, ...]]:
    """What group N samples in every batch in the reference mode: slice N, 0-based."""
    return data_slice(rows, group_number)


def as_rows(body: dict[str, object]) -> list[tuple[str, ...]]:
    data = body["data"]
    assert isinstance(data, list)
    return [tuple(row) for row in data]


def test_first_request_starts_batch_one_with_a_tenth_of_the_group_slice_as_strings(
    client: TestClient, dataset_rows: list[tuple[str, ...]]
) -> None:
    body = get_data(client)

    assert body["group_number"] == 1
    assert body["batch_number"] == 1
    rows = as_rows(body)
    assert len(rows) == len(dataset_rows) // 10 // 10
    assert len(set(rows)) == len(rows)
    assert all(len(row) == 13 for row in rows)
    assert all(isinstance(value, str) for row in rows for value in row)
    assert set(rows) <= group_slice(dataset_rows, 1), "group 1 samples rows 2000..3999, not 0..1999"


def test_batch_advances_only_after_more_than_the_rotation_period(
    client: TestClient, clock: FakeClock
) -> None:
    assert get_data(client)["batch_number"] == 1

    clock.advance(ROTATION - 1)
    assert get_data(client)["batch_number"] == 1
    clock.advance(1)
    assert get_data(client)["batch_number"] == 1, "the reference advances only when strictly more has passed"
    clock.advance(0.5)
    assert get_data(client)["batch_number"] == 2

    clock.advance(ROTATION - 1)
    assert get_data(client)["batch_number"] == 2, "the period counts from the last advance, not the last call"


def test_requests_in_one_window_are_different_overlapping_samples_of_one_slice(
    client: TestClient, dataset_rows: list[tuple[str, ...]]
) -> None:
    first, second = as_rows(get_data(client)), as_rows(get_data(client))

    group = group_slice(dataset_rows, 1)
    assert set(first) <= group
    assert set(second) <= group
    assert set(first) != set(second)
    assert set(first) & set(second)


def test_reference_mode_serves_the_group_slice_in_every_batch(
    client: TestClient, clock: FakeClock, dataset_rows: list[tuple[str, ...]]
) -> None:
    seen: dict[int, set[tuple[str, ...]]] = {}
    for batch_number in range(1, 11):
        body = get_data(client, 4)
        assert body["batch_number"] == batch_number, "the batch number is only a counter"
        seen[batch_number] = set(as_rows(body))
        assert seen[batch_number] <= group_slice(dataset_rows, 4)
        clock.advance(ROTATION + 1)

    union = set().union(*seen.values())
    assert len(union) < sum(len(rows) for rows in seen.values()), "the same contents come back"
    assert all(seen[1] & seen[batch] for batch in range(2, 11)), "every batch repeats rows of batch 1"
    assert union.isdisjoint(batch_slice(dataset_rows, 1)), "never batch 1's slice of the intended mode"
    assert client.get("/data", params={"group_number": 4}).status_code == 400


def test_reference_mode_group_10_answers_a_plain_text_500_like_the_reference(
    client: TestClient, clock: FakeClock, tmp_path: Path
) -> None:
    failed = client.get("/data", params={"group_number": 10})

    assert failed.status_code == 500
    assert failed.text == INTERNAL_ERROR_BODY
    assert failed.headers["content-type"].startswith("text/plain")
    state = json.loads((tmp_path / "state.json").read_text()) if (tmp_path / "state.json").exists() else {}
    assert state.get("10", [0, -1]) == [0, -1], "the failed request wrote nothing"

    # The reference advanced group 10's counter in memory before failing; another group's request
    # writes the whole table, so the advance reaches the file then.
    get_data(client, 2)
    assert json.loads((tmp_path / "state.json").read_text())["10"] == [clock.now, 1]

    # Nine more advances later group 10's counter reaches 10, and it answers the end-of-data 400.
    for _ in range(9):
        clock.advance(ROTATION + 1)
        assert client.get("/data", params={"group_number": 10}).status_code == 500
    exhausted = client.get("/data", params={"group_number": 10})
    assert exhausted.status_code == 400
    assert exhausted.json() == {"detail": EXHAUSTED_DETAIL}


def test_intended_mode_serves_consecutive_batch_slices_then_400_until_restart(
    intended: TestClient, clock: FakeClock, dataset_rows: list[tuple[str, ...]]
) -> None:
    client = intended
    for batch_number in range(1, 11):
        body = get_data(client)
        assert body["batch_number"] == batch_number
        assert set(as_rows(body)) <= batch_slice(dataset_rows, batch_number)
        clock.advance(ROTATION + 1)

    exhausted = client.get("/data", params={"group_number": 1})
    assert exhausted.status_code == 400
    assert exhausted.json() == {"detail": EXHAUSTED_DETAIL}
    assert is_exhaustion_detail(exhausted.json()["detail"])
    clock.advance(10 * ROTATION)
    assert client.get("/data", params={"group_number": 1}).status_code == 400

    restart = client.get("/restart_data_generation", params={"group_number": 1})
    assert restart.status_code == 200
    assert restart.json() == ["ok"]
    assert get_data(client)["batch_number"] == 1


def test_last_batch_is_served_once_even_within_its_window(client: TestClient, clock: FakeClock) -> None:
    for _ in range(9):
        get_data(client)
        clock.advance(ROTATION + 1)
    assert get_data(client)["batch_number"] == 10

    response = client.get("/data", params={"group_number": 1})
    assert response.status_code == 400
    assert response.json()["detail"] == EXHAUSTED_DETAIL


def test_restart_in_the_middle_starts_over_at_batch_one(client: TestClient, clock: FakeClock) -> None:
    get_data(client)
    clock.advance(ROTATION + 1)
    assert get_data(client)["batch_number"] == 2

    assert client.get("/restart_data_generation", params={"group_number": 1}).status_code == 200
    assert get_data(client)["batch_number"] == 1


def test_intended_mode_group_10_samples_the_last_slice(
    intended: TestClient, dataset_rows: list[tuple[str, ...]]
) -> None:
    body = get_data(intended, 10)
    assert body["batch_number"] == 1
    assert set(as_rows(body)) <= batch_slice(dataset_rows, 1)


@pytest.mark.parametrize("group", ["0", "11", "-1"])
@pytest.mark.parametrize("path", ["/data", "/restart_data_generation"])
def test_groups_out_of_range_answer_400_naming_the_group(client: TestClient, path: str, group: str) -> None:
    response = client.get(path, params={"group_number": group})

    assert response.status_code == 400
    assert response.json() == {"detail": INVALID_GROUP_DETAIL}
    assert not is_exhaustion_detail(INVALID_GROUP_DETAIL)


@pytest.mark.parametrize("group", ["x", "1.5", "", None])
@pytest.mark.parametrize("path", ["/data", "/restart_data_generation"])
def test_a_group_that_is_not_an_integer_gets_fastapis_422_like_the_reference(
    client: TestClient, path: str, group: str | None
) -> None:
    response = client.get(path, params={} if group is None else {"group_number": group})

    assert response.status_code == 422
    (issue,) = response.json()["detail"]
    assert issue["loc"] == ["query", "group_number"]
    assert issue["type"] == ("missing" if group is None else "int_parsing")


def test_state_survives_a_new_app_on_the_same_state_file(tmp_path: Path, clock: FakeClock) -> None:
    first = make_client(tmp_path, clock)
    get_data(first)
    clock.advance(ROTATION + 1)
    assert get_data(first)["batch_number"] == 2
    advanced_at = clock.now

    state = json.loads((tmp_path / "state.json").read_text())
    assert state["1"] == [advanced_at, 2]
    assert state["2"] == [0, -1]

    clock.advance(ROTATION - 1)
    second = make_client(tmp_path, clock)
    assert get_data(second)["batch_number"] == 2
    clock.advance(2)
    assert get_data(second)["batch_number"] == 3


def test_state_file_of_the_reference_server_loads(tmp_path: Path, clock: FakeClock) -> None:
    reference: dict[str, list[float]] = {str(group): [0, -1] for group in range(1, 11)}
    reference["4"] = [clock.now - 10, 7]
    (tmp_path / "state.json").write_text(json.dumps(reference))

    client = make_client(tmp_path, clock)

    assert get_data(client, 4)["batch_number"] == 7
    assert get_data(client, 5)["batch_number"] == 1


def test_state_writes_leave_no_temporary_files(client: TestClient, clock: FakeClock, tmp_path: Path) -> None:
    for _ in range(3):
        get_data(client)
        clock.advance(ROTATION + 1)
    client.get("/restart_data_generation", params={"group_number": 1})

    assert sorted(path.name for path in tmp_path.iterdir()) == ["state.json"]


def test_groups_are_independent(client: TestClient, clock: FakeClock) -> None:
    get_data(client, 1)
    clock.advance(ROTATION + 1)
    get_data(client, 1)
    clock.advance(ROTATION + 1)
    assert get_data(client, 1)["batch_number"] == 3

    second = get_data(client, 2)
    assert (second["group_number"], second["batch_number"]) == (2, 1)
    assert get_data(client, 1)["batch_number"] == 3

    client.get("/restart_data_generation", params={"group_number": 1})
    assert get_data(client, 2)["batch_number"] == 1
    clock.advance(ROTATION + 1)
    assert get_data(client, 2)["batch_number"] == 2
    assert get_data(client, 1)["batch_number"] == 1


def test_seed_makes_sampling_reproducible(tmp_path: Path, clock: FakeClock) -> None:
    first = make_client(tmp_path, clock, seed=11, state_name="a.json")
    same = make_client(tmp_path, clock, seed=11, state_name="b.json")
    other = make_client(tmp_path, clock, seed=12, state_name="c.json")

    assert as_rows(get_data(first)) == as_rows(get_data(same))
    assert as_rows(get_data(first)) != as_rows(get_data(other))


def test_root_health_and_documented_openapi(client: TestClient) -> None:
    assert client.get("/").json() == ROOT_BODY
    assert client.get("/health").json() == {"status": "ok"}

    spec = client.get("/openapi.json").json()
    data = spec["paths"]["/data"]["get"]
    assert data["description"]
    parameter = data["parameters"][0]
    assert parameter["name"] == "group_number"
    assert parameter["description"]
    assert parameter["schema"]["type"] == "integer"
    assert "400" in data["responses"]
    assert spec["paths"]["/restart_data_generation"]["get"]["description"]


def test_the_collector_names_the_reference_group_10_failure(client: TestClient) -> None:
    from ancora.collection import DataApiError, fetch_batch

    with pytest.raises(DataApiError, match=r"HTTP 500: Internal Server Error \(.*group 10.*empty"):
        fetch_batch(str(client.base_url), 10, timeout=5, client=client)
    assert fetch_batch(str(client.base_url), 9, timeout=5, client=client).batch_number == 1
