"""Data test: training never reads a content that any evaluation set holds (issue #14).

The course's reference server sends a group's one slice in every batch, so the same content arrives
under many (batch, content) keys and row ids. Here the simulator runs in that mode (and in the
intended one, for contrast) in this process; group 4 is collected with three collects per batch over
ten batches, and after every batch the inputs of a training run are prepared exactly as
`train_and_register` prepares them. Every training read is then compared, by content, with every
evaluation set version drawn at any time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from ancora.store import RawRowStore, open_raw_store
from ancora.store.checks import check_stored_rows
from ancora.store.tables import raw_rows
from ancora.training.data import RowSet, TrainingDataError
from ancora.training.evalset import all_evaluation_contents, evaluation_contents
from ancora.training.inputs import TrainingInputs, prepare_inputs
from tests.data_quality.collecting import collect_batches, simulator

GROUP = 4
BATCHES = 10
COLLECTS_PER_BATCH = 3


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RawRowStore:
    if request.param == "sqlite":
        return open_raw_store(f"sqlite:///{tmp_path / 'raw.db'}")
    return open_raw_store(request.getfixturevalue("mariadb_url"))


def run_the_experiment(store: RawRowStore, state_dir: Path, mode: str) -> list[TrainingInputs]:
    runs: list[TrainingInputs] = []

    def train(batch: int) -> None:
        try:
            runs.append(
                prepare_inputs(
                    store.engine, GROUP, min_rows=500, min_class_rows=5, eval_fraction=0.2, seed=42
                )
            )
        except TrainingDataError:
            assert not runs, "once trainable, the data stays trainable"

    with simulator(state_dir, GROUP, mode) as api:
        collect_batches(api, store, BATCHES, COLLECTS_PER_BATCH, after_batch=train)
    return runs


def contents(rows: RowSet) -> set[str]:
    return set(rows.frame["content_hash"])


@pytest.mark.parametrize("mode", ["reference", "intended"])
def test_no_training_read_holds_a_content_of_any_evaluation_set(
    store: RawRowStore, tmp_path: Path, mode: str
) -> None:
    runs = run_the_experiment(store, tmp_path, mode)
    engine = store.engine

    assert len(runs) >= 8, "training ran after most batches"
    every_evaluation_content = all_evaluation_contents(engine)
    trained_anywhere: set[str] = set()
    for number, inputs in enumerate(runs, start=1):
        trained = contents(inputs.training)
        assert len(trained) == len(inputs.training), f"run {number}: one row per content"
        assert trained.isdisjoint(contents(inputs.evaluation)), f"run {number}: its own evaluation set"
        eval_set = inputs.choice.evaluation_set
        assert contents(inputs.evaluation) == evaluation_contents(engine, eval_set.id)
        trained_anywhere |= trained
    overlap = trained_anywhere & every_evaluation_content
    assert overlap == set(), f"{len(overlap)} evaluation contents were read by a training run"

    # The lineage logged in MLflow re-runs to the same rows, so checks through it are faithful.
    for inputs in runs:
        with engine.connect() as connection:
            again = {row.content_hash for row in connection.execute(sa.text(inputs.training.query))}
        assert again == contents(inputs.training)

    last = runs[-1]
    with engine.connect() as connection:
        copies = dict(
            connection.execute(
                sa.select(raw_rows.c.content_hash, sa.func.count())
                .where(raw_rows.c.group_number == GROUP)
                .group_by(raw_rows.c.content_hash)
            ).all()
        )
    repeated = [content for content in every_evaluation_content if copies[content] > 1]
    if mode == "reference":
        assert last.stored_rows > 2 * len(last.contents), "the reference server repeats its slice"
        assert len(last.contents) <= 2000, "one group's slice: 2,000 rows at most"
        assert len(repeated) > len(every_evaluation_content) / 2, (
            "most evaluation contents were stored again in other batches: held out by row id they "
            "would have reached training"
        )
    else:
        assert len(last.contents) > 5000, "the intended server sends a fresh slice per batch"
    versions = {inputs.choice.evaluation_set.version for inputs in runs}
    assert versions == set(range(1, max(versions) + 1))
    assert check_stored_rows(engine, GROUP).ok
