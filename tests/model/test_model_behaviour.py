"""Model tests: quality on a fixed holdout, and behaviour serving relies on (row order, encodings,
one known row per class). The model is the search's smallest forest, fitted once per session."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from ancora.schema import FEATURE_NAMES, LABEL_NAME, NUMERIC_FEATURES
from ancora.serving.rows import parse_csv_rows, parse_json_rows
from ancora.training.search import score
from tests.model.conftest import FixedData

MACRO_F1_FLOOR = 0.52
ACCURACY_FLOOR = 0.74
"""Measured 0.572 macro F1 and 0.777 accuracy on these 4,000 rows (seed 0). The floors leave room for
library changes and catch what breaks a model: with Elevation shuffled it scores 0.31 and 0.55, with
Soil_Type lost 0.40, and predicting the majority class 0.09 and 0.48."""

ONE_ROW_PER_CLASS: dict[int, dict[str, str]] = {
    label: dict(zip(FEATURE_NAMES, values, strict=True))
    for label, values in {
        1: ["3329", "303", "41", "150", "39", "2940", "79", "184", "227", "2359", "Rawah", "C8772"],
        2: ["2787", "94", "7", "277", "25", "2839", "232", "229", "130", "5946", "Rawah", "C4744"],
        3: ["2358", "309", "24", "283", "133", "847", "147", "216", "206", "255", "Cache", "C4703"],
        4: ["2300", "140", "16", "268", "137", "1410", "243", "233", "114", "916", "Cache", "C2704"],
        5: ["2692", "82", "24", "90", "48", "108", "244", "189", "60", "1871", "Rawah", "C7746"],
        6: ["2433", "357", "29", "150", "77", "631", "161", "174", "141", "845", "Commanche", "C4703"],
        7: ["3404", "297", "7", "424", "27", "4834", "199", "238", "178", "4036", "Commanche", "C8771"],
    }.items()
}
"""Rows of the holdout (never trained on), one per cover type, that the model classifies clearly."""

BATCH_LIMIT = 10_000


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[:, list(FEATURE_NAMES)]


def test_macro_f1_and_accuracy_stay_above_their_floors_on_the_fixed_holdout(
    model: Pipeline, fixed_data: FixedData
) -> None:
    holdout = fixed_data.holdout()
    scores, _ = score(model, features(holdout), holdout[LABEL_NAME])
    assert scores.macro_f1 >= MACRO_F1_FLOOR, scores
    assert scores.accuracy >= ACCURACY_FLOOR, scores
    assert set(model.classes_) == set(range(1, 8)), "every cover type can be predicted"


def test_predictions_do_not_depend_on_row_order_or_batch_composition(
    model: Pipeline, fixed_data: FixedData
) -> None:
    holdout = features(fixed_data.holdout())
    expected = model.predict_proba(holdout)
    order = np.random.default_rng(7).permutation(len(holdout))
    shuffled = model.predict_proba(holdout.iloc[order])
    assert np.array_equal(shuffled, expected[order])
    one_at_a_time = np.vstack([model.predict_proba(holdout.iloc[[i]]) for i in range(0, 4000, 400)])
    assert np.array_equal(one_at_a_time, expected[::400])


def test_strings_numbers_and_csv_give_the_same_predictions(model: Pipeline, fixed_data: FixedData) -> None:
    raw = fixed_data.raw.iloc[16000:16500].loc[:, list(FEATURE_NAMES)]
    as_strings = raw.to_dict(orient="records")
    numeric = set(NUMERIC_FEATURES)
    as_numbers = [{k: int(v) if k in numeric else v for k, v in row.items()} for row in as_strings]
    as_decimals = [{k: f"{v}.0" if k in numeric else v for k, v in row.items()} for row in as_strings]
    bodies = [json.dumps(rows).encode() for rows in (as_strings, as_numbers, as_decimals)]
    frames = [parse_json_rows(body, BATCH_LIMIT) for body in bodies]
    frames.append(parse_csv_rows(raw.to_csv(index=False), BATCH_LIMIT))
    trained_like = features(fixed_data.typed.iloc[16000:16500])
    expected = model.predict_proba(trained_like)
    for frame in frames:
        assert list(frame.columns) == list(FEATURE_NAMES)
        assert np.array_equal(model.predict_proba(frame), expected)


@pytest.mark.parametrize("label", sorted(ONE_ROW_PER_CLASS))
def test_one_fixed_row_per_class_is_classified(model: Pipeline, label: int) -> None:
    frame = parse_json_rows(json.dumps([ONE_ROW_PER_CLASS[label]]).encode(), BATCH_LIMIT)
    assert int(model.predict(frame)[0]) == label
