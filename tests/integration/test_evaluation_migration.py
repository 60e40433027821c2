"""An existing deployment's evaluation set, drawn by row id, replaced by one drawn by content.

The store is built at revision 0002 and filled the way the reference server and the old code left
it: the same contents in two batches, an evaluation set of row ids, and a training watermark. Then
migration 0003 runs, and the next training run's inputs replace the old version and say so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from ancora.store import upgrade_schema
from ancora.store.tables import evaluation_set_contents, raw_rows
from ancora.training.evalset import BY_ROW_ID, all_evaluation_contents, latest_evaluation_set
from ancora.training.gate import decide
from ancora.training.inputs import prepare_inputs
from tests.support.legacy_store import legacy_deployment
from tests.support.training_data import read_csv_rows, store_rows


@pytest.fixture(params=["sqlite", "mariadb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'raw.db'}"
    return str(request.getfixturevalue("mariadb_url"))


def test_the_migration_and_the_next_run_replace_a_row_id_version(store_url: str, covertype_csv: Path) -> None:
    rows = read_csv_rows(covertype_csv, limit=700)
    store, held_out, watermark = legacy_deployment(store_url, rows)
    engine = store.engine
    with engine.connect() as connection:
        contents = dict(connection.execute(sa.select(raw_rows.c.id, raw_rows.c.content_hash)).all())
    legacy_contents = {contents[row_id] for row_id in held_out}
    read_by_old_training = {
        content for row_id, content in contents.items() if row_id <= watermark and row_id not in held_out
    }
    leaked = legacy_contents & read_by_old_training
    assert len(leaked) == 60, "the copies in batch 2 of half the held-out rows were trained on"

    upgrade_schema(engine)

    legacy = latest_evaluation_set(engine, 1)
    assert legacy is not None and legacy.membership == BY_ROW_ID and legacy.version == 1
    assert all_evaluation_contents(engine) == legacy_contents, "0003 recorded the old version's contents"

    store_rows(store, rows[600:700], first_batch=3)
    inputs = prepare_inputs(engine, 1, min_rows=100, min_class_rows=3, eval_fraction=0.2, seed=42)

    choice = inputs.choice
    replacement = choice.evaluation_set
    assert (replacement.version, replacement.membership, choice.drawn_now) == (2, "content", True)
    assert replacement.reason.startswith(
        "replaces v1, drawn by row id before migration 0003: 60 of its 120 contents had been read by "
        "training and are left out, 60 kept, "
    )
    with engine.connect() as connection:
        members = set(
            connection.execute(
                sa.select(evaluation_set_contents.c.content_hash).where(
                    evaluation_set_contents.c.evaluation_set_id == replacement.id
                )
            ).scalars()
        )
    assert members.isdisjoint(leaked)
    assert legacy_contents - leaked <= members
    added = members - legacy_contents
    first_ids = inputs.contents.frame.set_index("content_hash")["id"]
    assert len(added) == pytest.approx(20, abs=7), "a fifth of the 100 contents of batch 3"
    assert all(first_ids[c] > watermark for c in added), "only contents no training run has read"

    trained = set(inputs.training.frame["content_hash"])
    assert trained.isdisjoint(all_evaluation_contents(engine)), "no content of any version, old or new"
    assert set(inputs.evaluation.frame["content_hash"]) == members
    assert len(inputs.evaluation) == len(members), "one row per content"

    gate = decide(0.71, 0.70, 0.005, "3", choice.note)
    assert "scored on evaluation set v2, drawn by this run: replaces v1, drawn by row id" in gate.reason

    again = prepare_inputs(engine, 1, min_rows=100, min_class_rows=3, eval_fraction=0.2, seed=42)
    assert again.choice.evaluation_set == replacement and not again.choice.drawn_now
    assert again.choice.note == ""
