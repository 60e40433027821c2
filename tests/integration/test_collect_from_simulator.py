"""The collector against the real simulator process, across every batch until the end-of-data 400."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from ancora.collection import fetch_batch, store_batch, validate_batch
from ancora.store import open_raw_store
from tests.support.simulator import running_simulator

ROTATION_SECONDS = 1.5
POLL_SECONDS = 0.3


def test_all_batches_are_collected_once_each(tmp_path: Path, mariadb_url: str) -> None:
    store = open_raw_store(mariadb_url)
    served: dict[int, set[str]] = defaultdict(set)
    received = 0
    with running_simulator(tmp_path / "sim", rotation_seconds=ROTATION_SECONDS) as url:
        deadline = time.monotonic() + 10 * ROTATION_SECONDS * 4
        while time.monotonic() < deadline:
            fetched = fetch_batch(url, 2, timeout=10)
            if fetched.exhausted:
                break
            assert fetched.batch_number is not None
            report = validate_batch(fetched)
            assert report.quarantined == []
            served[fetched.batch_number].update(row.content_hash for row in report.valid)
            received += len(fetched.rows)
            result = store_batch(store, fetched, report, run_id="integration")
            assert result.inserted + result.duplicates == len(fetched.rows)
            time.sleep(POLL_SECONDS)
        else:
            raise AssertionError("the simulator never reported the end of the data")

    assert sorted(served) == list(range(1, 11))
    stats = store.stats(group_number=2)
    assert stats.rows_per_batch == {batch: len(hashes) for batch, hashes in served.items()}
    for batch, hashes in served.items():
        assert store.content_hashes(2, [batch]) == hashes
    assert received > stats.total_rows, "samples of one window overlap, so some rows arrived twice"


def test_cli_collect_prints_one_json_line(tmp_path: Path, mariadb_url: str) -> None:
    with running_simulator(tmp_path / "sim", rotation_seconds=300) as url:
        env = {
            "ANCORA_DATA_API_URL": url,
            "ANCORA_GROUP_NUMBER": "5",
            "ANCORA_DATA_DB_URL": mariadb_url,
            "ANCORA_STATE_DIR": str(tmp_path / "state"),
        }
        runs = [
            subprocess.run(
                [sys.executable, "-m", "ancora", "collect"],
                env={**_base_env(), **env},
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
            for _ in range(2)
        ]
        stats = subprocess.run(
            [sys.executable, "-m", "ancora", "data", "stats"],
            env={**_base_env(), **env},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    lines = [json.loads(run.stdout.strip()) for run in runs]
    for line in lines:
        assert set(line) >= {"group", "batch", "received", "inserted", "duplicates", "quarantined"}
        assert line["group"] == 5
        assert line["batch"] == 1
        assert line["received"] == 200
        assert line["received"] == line["inserted"] + line["duplicates"]
    counted = json.loads(stats.stdout)
    assert counted["total_rows"] == lines[0]["inserted"] + lines[1]["inserted"]
    assert counted["rows_per_batch"] == {"1": counted["total_rows"]}
    assert counted["quarantined_rows"] == 0


def test_cli_collect_names_an_unreachable_api(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ancora", "collect"],
        env={**_base_env(), "ANCORA_DATA_API_URL": "http://127.0.0.1:9", "ANCORA_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "error: data API at http://127.0.0.1:9/data is unreachable" in run.stderr


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ANCORA_")}
