"""What the HTTP workers of one `ancora serve` share: the folder, the reload signal, the gauges of
workers that are gone, and /metrics adding up every worker (real prometheus_client multiprocess files,
written by real processes)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ancora_inference import workers
from ancora_inference.workers import ReloadSignal, forget_dead_workers, shared_dir, shared_folder


def test_the_shared_folder_is_named_in_the_environment_and_removed_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(workers.SHARED_DIR_VARIABLE, raising=False)
    assert shared_folder() is None
    with shared_dir() as folder:
        assert folder.is_dir()
        assert shared_folder() == folder
        (folder / "counter_1.db").write_bytes(b"x")
    assert not folder.exists()
    assert shared_folder() is None


def test_folders_of_a_killed_server_are_removed_and_a_live_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.kill()
    killed.wait()
    orphan = tmp_path / f"{workers.FOLDER_PREFIX}{killed.pid}-abc"
    live = tmp_path / f"{workers.FOLDER_PREFIX}{os.getpid()}-def"
    unrelated = tmp_path / f"{workers.FOLDER_PREFIX}not-a-pid"
    for folder in (orphan, live, unrelated):
        folder.mkdir()
        (folder / "gauge_livemax_1.db").write_bytes(b"x")
    monkeypatch.setattr(workers.tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv(workers.SHARED_DIR_VARIABLE, raising=False)

    with shared_dir() as folder:
        assert folder.parent == tmp_path and folder.name.startswith(f"{workers.FOLDER_PREFIX}{os.getpid()}-")
        assert not orphan.exists()
        assert live.is_dir() and unrelated.is_dir()
    assert not folder.exists()


def test_a_reload_sent_by_one_worker_wakes_the_others_not_itself(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, int]:
        sender, sibling, other = ReloadSignal(tmp_path), ReloadSignal(tmp_path), ReloadSignal(tmp_path)
        woken = {"sender": 0, "sibling": 0, "other": 0}

        def waker(name: str) -> object:
            return lambda: woken.__setitem__(name, woken[name] + 1)

        tasks = [
            asyncio.create_task(signal.follow(waker(name)))  # type: ignore[arg-type]
            for name, signal in (("sender", sender), ("sibling", sibling), ("other", other))
        ]
        await asyncio.sleep(workers.SIGNAL_POLL_SECONDS * 2)
        sender.send()
        await asyncio.sleep(workers.SIGNAL_POLL_SECONDS * 3)
        sibling.send()
        await asyncio.sleep(workers.SIGNAL_POLL_SECONDS * 3)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return woken["sender"], woken["sibling"], woken["other"]

    sender, sibling, other = asyncio.run(scenario())
    assert (sender, sibling, other) == (1, 1, 2)


def test_a_signal_sent_before_a_worker_starts_does_not_wake_it(tmp_path: Path) -> None:
    ReloadSignal(tmp_path).send()

    async def scenario() -> int:
        woken = []
        late = ReloadSignal(tmp_path)
        task = asyncio.create_task(late.follow(lambda: woken.append(1)))
        await asyncio.sleep(workers.SIGNAL_POLL_SECONDS * 3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return len(woken)

    assert asyncio.run(scenario()) == 0


WORKER = textwrap.dedent(
    """
    import sys
    from ancora_inference.metrics import ServingMetrics
    metrics = ServingMetrics()
    metrics.init_model_labels("covertype", "champion")
    metrics.count_request("/predict", "POST", 200, 0.004)
    metrics.count_request("/predict", "POST", 200, 0.006)
    metrics.last_check_failed.set(float(sys.argv[1]))
    print(metrics.exposition().decode())
    """
)


def _run_worker(folder: Path, failed: int) -> str:
    env = {**os.environ, workers.SHARED_DIR_VARIABLE: str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(failed)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_metrics_add_up_every_worker_and_forget_the_gauges_of_dead_ones(tmp_path: Path) -> None:
    """Two worker processes count two requests each: the second one's /metrics shows four. Both have
    exited by then, so their live gauges are dropped as it answers; the counts stay."""
    _run_worker(tmp_path, failed=1)
    text = _run_worker(tmp_path, failed=0)
    assert 'ancora_inference_requests_total{method="POST",route="/predict",status="200"} 4.0' in text
    assert 'ancora_inference_request_duration_seconds_count{method="POST",route="/predict"} 4.0' in text
    assert "ancora_inference_last_check_failed 0.0" in text  # the first worker's 1 left with it
    pids = {path.stem.rsplit("_", 1)[1] for path in tmp_path.glob("gauge_live*.db")}
    assert len(pids) == 1, pids  # the second worker's own, written after the clean-up
    assert forget_dead_workers(tmp_path) == [int(pids.pop())]
    assert not list(tmp_path.glob("gauge_live*.db"))
    assert list(tmp_path.glob("counter_*.db"))
