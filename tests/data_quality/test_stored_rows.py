"""Data tests on stored rows: what the reference simulator sent is what the store keeps, and the
checks behind `ancora data check` catch a row or an evaluation set that breaks a rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from ancora.cli import app
from ancora.config import get_settings
from ancora.store import RawRowStore, open_raw_store
from ancora.store.checks import check_stored_rows
from ancora.store.tables import evaluation_set_contents, raw_rows
from ancora.training.inputs import prepare_inputs
from ancora.validation import validate_rows
from tests.data_quality.collecting import DATASET, collect_batches, simulator
from tests.support.training_data import read_csv_rows

GROUP = 1


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RawRowStore:
    url = f"sqlite:///{tmp_path / 'raw.db'}"
    monkeypatch.setenv("ANCORA_DATA_DB_URL", url)
    get_settings.cache_clear()
    return open_raw_store(url)


@pytest.fixture
def collected(store: RawRowStore, tmp_path: Path) -> RawRowStore:
    with simulator(tmp_path / "sim", GROUP, "reference") as api:
        collect_batches(api, store, batches=4, collects_per_batch=2)
    return store


def stored_contents(store: RawRowStore) -> list[str]:
    with store.engine.connect() as connection:
        return list(connection.execute(sa.select(raw_rows.c.content_hash)).scalars())


def test_the_store_keeps_the_group_slice_per_batch_and_counts_its_contents(
    collected: RawRowStore,
) -> None:
    served_slice = read_csv_rows(DATASET, skip=2000 * GROUP, limit=2000)
    slice_contents = {row.content_hash for row in validate_rows(served_slice).valid}
    stored = stored_contents(collected)
    assert set(stored) <= slice_contents, "every stored row is a row of group 1's slice, rows 2000..3999"

    stats = collected.stats(GROUP)
    assert stats.total_rows == len(stored)
    assert stats.distinct_contents == len(set(stored)) < stats.total_rows
    assert sum(stats.new_contents_per_batch.values()) == stats.distinct_contents
    assert all(stats.rows_per_batch[batch] <= 400 for batch in stats.rows_per_batch), "two samples of 200"

    report = check_stored_rows(collected.engine, GROUP)
    assert report.ok, report.as_dict()
    assert (report.rows_checked, report.distinct_contents) == (stats.total_rows, stats.distinct_contents)


def test_broken_rows_and_a_thawed_evaluation_set_are_named(collected: RawRowStore) -> None:
    engine = collected.engine
    first = prepare_inputs(engine, GROUP, min_rows=100, min_class_rows=3, eval_fraction=0.2, seed=1)
    collected.write_batch(
        group_number=GROUP,
        batch_number=5,
        valid=validate_rows(read_csv_rows(DATASET, limit=300)).valid,
        quarantined=[],
        run_id="other-rows",
    )
    second = prepare_inputs(engine, GROUP, min_rows=100, min_class_rows=3, eval_fraction=0.2, seed=1)
    assert second.choice.evaluation_set.version == 2
    frozen = sorted(set(first.evaluation.frame["content_hash"]))[0]

    with engine.begin() as connection:
        ids = list(connection.execute(sa.select(raw_rows.c.id).order_by(raw_rows.c.id)).scalars())
        connection.execute(sa.update(raw_rows).where(raw_rows.c.id == ids[0]).values(Hillshade_9am=999))
        connection.execute(sa.update(raw_rows).where(raw_rows.c.id == ids[1]).values(content_hash="0" * 32))
        connection.execute(
            sa.delete(evaluation_set_contents).where(
                (evaluation_set_contents.c.evaluation_set_id == second.choice.evaluation_set.id)
                & (evaluation_set_contents.c.content_hash == frozen)
            )
        )

    report = check_stored_rows(engine, GROUP)
    assert not report.ok
    assert report.counts == {"breaks_contract": 1, "hash_mismatch": 1, "evaluation_set_not_frozen": 1}
    assert report.problems["breaks_contract"] == [
        f"row {ids[0]}: Hillshade_9am: 999 is above the maximum 255"
    ]
    assert report.problems["hash_mismatch"][0].startswith(f"row {ids[1]}: content_hash 0000")
    assert report.problems["evaluation_set_not_frozen"] == ["group 1 v2 lacks 1 contents of v1"]

    answer = CliRunner().invoke(app, ["data", "check", "--group", str(GROUP)])
    assert answer.exit_code == 1, answer.output
    assert json.loads(answer.output)["problem_counts"] == report.counts


def test_the_check_command_passes_on_a_clean_store(collected: RawRowStore) -> None:
    answer = CliRunner().invoke(app, ["data", "check"])
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.output)["ok"] is True
