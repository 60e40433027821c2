"""Drift timing: one 2,000-row batch over the 12 features (and the class mix) against a reference.

The reference is the shipped sample's first 10,000 rows (about what a champion trains on), the
batch 2,000 other rows; the time is ``ancora.monitoring.drift.compare`` alone, median of 7 runs,
plus building the HTML and JSON reports. Target (issue #17): under 2 s.

    uv run --frozen python -m benchmarks.drift
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pandas as pd

from ancora.locations import COVERTYPE_CSV, shipped_dataset
from ancora.monitoring.drift import Reference, Thresholds, compare, report_html, report_json
from ancora.schema import FEATURE_NAMES, LABEL_NAME
from benchmarks.machine import describe_machine

RESULTS = Path(__file__).parent / "results" / "drift.json"


def main() -> None:
    data = pd.read_csv(shipped_dataset(COVERTYPE_CSV))
    reference_rows, batch = data.iloc[:10_000], data.iloc[12_000:14_000]
    reference = Reference("1", None, reference_rows[list(FEATURE_NAMES)], reference_rows[LABEL_NAME])
    timings, rendering = [], []
    for _ in range(7):
        started = time.perf_counter()
        report = compare(
            reference,
            batch[list(FEATURE_NAMES)],
            batch[LABEL_NAME],
            Thresholds(),
            kind="batch",
            subject="benchmark",
        )
        timings.append(time.perf_counter() - started)
        started = time.perf_counter()
        report_html(report)
        report_json(report)
        rendering.append(time.perf_counter() - started)
    result = {
        "machine": describe_machine(),
        "reference_rows": len(reference_rows),
        "batch_rows": len(batch),
        "features": len(FEATURE_NAMES),
        "compare_seconds_median": round(statistics.median(timings), 4),
        "compare_seconds_max": round(max(timings), 4),
        "reports_seconds_median": round(statistics.median(rendering), 4),
        "drifted_features": report.drifted_features,
        "target_seconds": 2.0,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
