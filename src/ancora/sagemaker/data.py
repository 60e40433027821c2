"""The pulsar data in the shapes SageMaker wants: training CSV with the label first, payloads without it.

HTRU_2.csv has a header and the label (``target_class``) last; SageMaker's CSV convention is no header
and the label in column 0, and an inference payload is the feature columns alone.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

PULSAR_LABEL = "target_class"


def _read(source: Path, label: str) -> tuple[list[str], list[list[str]]]:
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if label not in header:
            raise ValueError(f"{source} has no column {label!r} (columns: {header})")
        return header, [row for row in reader if row]


def write_training_csv(source: Path, destination: Path, label: str = PULSAR_LABEL) -> int:
    """Write ``source`` as SageMaker training data: no header, label in column 0. Returns the row count."""
    header, rows = _read(source, label)
    position = header.index(label)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with destination.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for row in rows:
            writer.writerow([row[position], *row[:position], *row[position + 1 :]])
    return len(rows)


def write_payload_csv(
    source: Path,
    destination: Path,
    rows: int = 10,
    label: str = PULSAR_LABEL,
    seed: int = 7,
    positives: int = 0,
) -> list[int]:
    """A payload of ``rows`` feature rows (no header, no label), ``positives`` of them of class 1.

    Returns the labels of the written rows, in order, so a test can compare predictions to truth.
    """
    header, all_rows = _read(source, label)
    position = header.index(label)
    chooser = random.Random(seed)  # noqa: S311  -- a reproducible sample, not a secret
    positive = [row for row in all_rows if row[position] == "1"]
    negative = [row for row in all_rows if row[position] != "1"]
    picked = chooser.sample(positive, positives) + chooser.sample(negative, rows - positives)
    chooser.shuffle(picked)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with destination.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for row in picked:
            writer.writerow([*row[:position], *row[position + 1 :]])
    return [int(row[position]) for row in picked]
