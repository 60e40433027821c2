"""The batch answer, built as msgspec structs, reads exactly like the per-row dicts of /predict."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import pydantic_core

from ancora.serving.registry import ServedModel, VersionRef
from ancora_inference.routes.predict import batch_rows, row_predictions
from ancora_inference.schemas import BatchPrediction


def test_batch_rows_encode_like_row_predictions_and_fit_the_declared_model() -> None:
    model = ServedModel(
        ref=VersionRef("covertype", "champion", "3", "run", "models:/m-3"),
        estimator=None,
        classes=(1, 2, 3, 4, 5, 6, 7),
        registry_uri="http://127.0.0.1:1",
        loaded_at=datetime.now(UTC),
        path=Path("."),
    )
    probabilities = np.random.default_rng(0).dirichlet(np.ones(7), 50)
    probabilities[0] = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    winners = probabilities.argmax(axis=1)

    fast = msgspec.json.encode(batch_rows(model, winners, probabilities))
    slow = pydantic_core.to_json(row_predictions(model, winners, probabilities))

    assert msgspec.json.decode(fast) == msgspec.json.decode(slow)
    assert msgspec.json.decode(fast)[0] == {
        "prediction": 2,
        "class_name": "Lodgepole Pine",
        "probabilities": {"1": 0.0, "2": 1.0, "3": 0.0, "4": 0.0, "5": 0.0, "6": 0.0, "7": 0.0},
    }
    answer = {
        "model_name": "covertype",
        "model_version": "3",
        "run_id": "run",
        "request_id": "r1",
        "count": 50,
    }
    body = b'{"predictions":' + fast + b"," + msgspec.json.encode(answer)[1:]
    assert BatchPrediction.model_validate_json(body).count == 50
