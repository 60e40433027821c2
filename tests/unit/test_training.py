"""Training pieces without MLflow: data checks, the frozen evaluation set, candidates, the gate."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import skops.io
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ancora.schema import FEATURE_NAMES, LABEL_NAME
from ancora.store import RawRowStore, open_raw_store, validated_rows_query
from ancora.store.tables import metadata
from ancora.training.data import TrainingDataError, check_trainable, read_rows
from ancora.training.evalset import ensure_evaluation_set, evaluation_contents, mark_trained_through
from ancora.training.gate import FIRST, KEPT, PROMOTED, decide
from ancora.training.pipelines import FAMILIES, SKOPS_TRUSTED_TYPES, build_pipeline, resolve_families
from ancora.training.search import sample_candidates
from ancora.validation import validate_rows
from tests.support.training_data import read_csv_rows, store_rows


@pytest.fixture
def store(tmp_path: Path) -> RawRowStore:
    return open_raw_store(f"sqlite:///{tmp_path / 'raw.db'}")


@pytest.fixture(scope="module")
def csv_rows(covertype_csv: Path) -> list[list[str]]:
    return read_csv_rows(covertype_csv, limit=2000)


def test_the_migrations_build_exactly_the_declared_tables(store: RawRowStore) -> None:
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0004"
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_rows_come_back_with_the_dtypes_the_model_receives(
    store: RawRowStore, csv_rows: list[list[str]]
) -> None:
    store_rows(store, csv_rows[:300], batches=2)
    rows = read_rows(store.engine, validated_rows_query(1))
    assert len(rows) == 300
    assert rows.batches == [1, 2]
    assert str(rows.features["Elevation"].dtype) == "int64"
    assert rows.features["Soil_Type"].map(type).eq(str).all()
    assert list(rows.features.columns) == list(FEATURE_NAMES)
    assert "FROM raw_rows" in rows.query and "group_number = 1" in rows.query
    assert rows.digest == read_rows(store.engine, validated_rows_query(1)).digest


def test_quarantined_rows_never_reach_training(store: RawRowStore, csv_rows: list[list[str]]) -> None:
    bad = [*csv_rows[0][:-1], "9"]
    report = validate_rows([*csv_rows[:50], bad])
    assert len(report.quarantined) == 1
    store.write_batch(
        group_number=1, batch_number=1, valid=report.valid, quarantined=report.quarantined, run_id="r"
    )
    rows = read_rows(store.engine, validated_rows_query(1))
    assert len(rows) == 50
    assert 9 not in rows.classes


def test_too_few_rows_are_refused_and_a_thin_class_is_left_out_with_the_reason(
    store: RawRowStore, csv_rows: list[list[str]]
) -> None:
    store_rows(store, csv_rows[:300])
    rows = read_rows(store.engine, validated_rows_query(1))
    with pytest.raises(TrainingDataError, match=r"only 300 distinct validated rows .* at least 500"):
        check_trainable(rows, min_rows=500, min_class_rows=1)
    counts = rows.labels.value_counts()
    thinnest = int(counts.idxmin())
    assert check_trainable(rows, min_rows=10, min_class_rows=int(counts.min()) + 1) == {
        thinnest: int(counts.min())
    }
    assert check_trainable(rows, min_rows=300, min_class_rows=int(counts.min())) == {}
    second = int(counts.sort_values().index[-2])
    with pytest.raises(TrainingDataError, match=r"too few rows to stratify \(class .*at least two classes"):
        check_trainable(rows, min_rows=10, min_class_rows=int(counts[second]) + 1)


def test_the_evaluation_set_is_stratified_frozen_and_kept_out_of_training(
    store: RawRowStore, csv_rows: list[list[str]]
) -> None:
    store_rows(store, csv_rows[:1000], batches=2)
    rows = read_rows(store.engine, validated_rows_query(1, distinct_contents=True))
    choice = ensure_evaluation_set(store.engine, 1, rows, fraction=0.2, seed=7)
    first = choice.evaluation_set
    assert choice.drawn_now
    assert (first.version, first.batches, first.reason) == (1, (1, 2), "first evaluation set")
    members = evaluation_contents(store.engine, first.id)
    assert len(members) == first.row_count == pytest.approx(200, abs=len(rows.classes))
    held_out = rows.frame[rows.frame["content_hash"].isin(members)]
    assert set(held_out[LABEL_NAME]) == set(rows.classes), "every class is represented"

    again = ensure_evaluation_set(store.engine, 1, rows, fraction=0.2, seed=7)
    assert again.evaluation_set == first and not again.drawn_now, "not stale: the same version"

    training = read_rows(
        store.engine,
        validated_rows_query(1, distinct_contents=True, excluding_evaluation_sets_through=first.id),
    )
    evaluation = read_rows(
        store.engine, validated_rows_query(1, distinct_contents=True, only_evaluation_set=first.id)
    )
    assert set(training.frame["content_hash"]).isdisjoint(members)
    assert set(evaluation.frame["content_hash"]) == members
    assert len(training) + len(evaluation) == len(rows)


def test_a_new_batch_draws_a_new_version_from_unseen_rows_only(
    store: RawRowStore, csv_rows: list[list[str]]
) -> None:
    store_rows(store, csv_rows[:800], batches=2)
    rows = read_rows(store.engine, validated_rows_query(1, distinct_contents=True))
    first = ensure_evaluation_set(store.engine, 1, rows, fraction=0.2, seed=7).evaluation_set
    mark_trained_through(store.engine, first.id, rows.max_row_id)
    old_members = evaluation_contents(store.engine, first.id)

    store_rows(store, csv_rows[800:1600], first_batch=3, batches=1)
    grown = read_rows(store.engine, validated_rows_query(1, distinct_contents=True))
    second = ensure_evaluation_set(store.engine, 1, grown, fraction=0.2, seed=7).evaluation_set
    assert second.version == 2
    assert second.reason == "v1 stale: new batches [3]"
    new_members = evaluation_contents(store.engine, second.id)
    assert old_members < new_members, "a new version keeps every frozen content"
    added = grown.frame[grown.frame["content_hash"].isin(new_members - old_members)]
    assert added["id"].min() > rows.max_row_id, "only contents no training run has read join the set"
    assert len(added) == pytest.approx(160, abs=len(grown.classes))


def test_family_names_are_checked() -> None:
    assert resolve_families("random_forest, logistic_regression") == ["random_forest", "logistic_regression"]
    with pytest.raises(ValueError, match="unknown model families \\['xgboost'\\]"):
        resolve_families(["random_forest", "xgboost"])


def test_the_search_is_bounded_and_reproducible() -> None:
    specs = sample_candidates(list(FAMILIES), budget=3, seed=1)
    assert [s.family for s in specs] == [f for f in FAMILIES for _ in range(3)]
    assert specs == sample_candidates(list(FAMILIES), budget=3, seed=1)
    assert len({tuple(sorted(s.params.items())) for s in specs if s.family == "random_forest"}) == 3
    assert len(sample_candidates(["logistic_regression"], budget=50, seed=1)) == 12, "capped by the grid"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_takes_raw_rows_and_loads_with_the_declared_trusted_types(
    family: str, csv_rows: list[list[str]]
) -> None:
    import pandas as pd

    from ancora.training.data import with_raw_dtypes

    frame = with_raw_dtypes(pd.DataFrame(csv_rows[:600], columns=[*FEATURE_NAMES, LABEL_NAME]))
    spec = sample_candidates([family], budget=1, seed=3)[0]
    pipeline = build_pipeline(family, spec.params, seed=3).fit(frame[list(FEATURE_NAMES)], frame[LABEL_NAME])
    assert pipeline.predict_proba(frame[list(FEATURE_NAMES)].head(3)).shape == (3, len(pipeline.classes_))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.skops"
        skops.io.dump(pipeline, path)
        assert set(skops.io.get_untrusted_types(file=path)) <= set(SKOPS_TRUSTED_TYPES)
        loaded = skops.io.load(path, trusted=list(SKOPS_TRUSTED_TYPES))
    unseen = frame[list(FEATURE_NAMES)].head(2).assign(Soil_Type="C9999")
    assert len(loaded.predict(unseen)) == 2, "unknown categories are ignored, not an error"


def test_the_gate_promotes_only_a_clear_improvement() -> None:
    assert decide(0.60, None, 0.01, None).decision == FIRST
    better = decide(0.70, 0.65, 0.01, "3")
    assert (better.decision, better.promote) == (PROMOTED, True)
    assert "beats champion v3 macro F1 0.6500" in better.reason
    within = decide(0.655, 0.65, 0.01, "3")
    assert (within.decision, within.promote) == (KEPT, False)
    assert decide(0.66, 0.65, 0.01, "3").decision == KEPT, "exactly the margin is not enough"
    assert decide(0.60, 0.65, 0.0, "3").decision == KEPT


def test_a_model_that_never_saw_a_class_is_scored_not_rejected(csv_rows: list[list[str]]) -> None:
    import pandas as pd

    from ancora.training.data import with_raw_dtypes
    from ancora.training.search import score

    frame = with_raw_dtypes(pd.DataFrame(csv_rows[:600], columns=[*FEATURE_NAMES, LABEL_NAME]))
    rare = int(frame[LABEL_NAME].value_counts().idxmin())
    seen = frame[frame[LABEL_NAME] != rare]
    pipeline = build_pipeline("logistic_regression", {"C": 1.0}, seed=0)
    pipeline.fit(seen[list(FEATURE_NAMES)], seen[LABEL_NAME])
    scores, predictions = score(pipeline, frame[list(FEATURE_NAMES)], frame[LABEL_NAME])
    assert rare not in set(predictions)
    assert scores.recall_per_class[rare] == 0.0
    assert scores.log_loss > 0 and scores.log_loss < float("inf")
