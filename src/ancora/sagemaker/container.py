"""The programs of the SageMaker bring-your-own container: ``train``, ``serve`` and ``batch``.

SageMaker runs ``docker run IMAGE train`` with ``/opt/ml`` mounted, and ``docker run IMAGE serve``
expecting HTTP on port 8080. This module is that contract, written against the standard library,
NumPy and scikit-learn only, so the image installs nothing else and the same code runs natively with
another prefix (``--prefix`` or ``OPT_ML_PREFIX``) for tests, the local scripts and the BYOM ``local``
target. It must never import the rest of Ancora (settings, FastAPI, Airflow).

Layout under the prefix (SageMaker's):
``input/config/hyperparameters.json``, ``input/data/training/*.csv`` (no header, label in column 0),
``model/`` (the fitted ``<model_name>.pkl``), ``output/failure`` (why training failed),
``output/data/metrics.json`` (validation scores, uploaded with the job's output).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PREFIX = "/opt/ml"
PREFIX_ENV = "OPT_ML_PREFIX"
DEFAULT_PORT = 8080
MAX_REQUEST_BYTES = 6 * 1024 * 1024
"""SageMaker's own limit for a real-time invocation payload; larger requests get 413."""

CSV = "text/csv"
JSON = "application/json"

log = logging.getLogger("ancora.sagemaker.container")


class TrainingError(Exception):
    """A problem with the job's inputs; its message is what ``output/failure`` tells the user."""


class RequestError(Exception):
    """A client error at ``/invocations``, answered with ``status`` and the message."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Paths:
    """The SageMaker directory layout under one prefix."""

    prefix: Path

    @property
    def hyperparameters(self) -> Path:
        return self.prefix / "input" / "config" / "hyperparameters.json"

    @property
    def training_channel(self) -> Path:
        return self.prefix / "input" / "data" / "training"

    @property
    def model_dir(self) -> Path:
        return self.prefix / "model"

    @property
    def failure(self) -> Path:
        return self.prefix / "output" / "failure"

    @property
    def metrics(self) -> Path:
        return self.prefix / "output" / "data" / "metrics.json"


def resolve_prefix(prefix: str | None) -> Path:
    """``--prefix`` if given, else ``OPT_ML_PREFIX``, else SageMaker's ``/opt/ml``."""
    return Path(prefix or os.environ.get(PREFIX_ENV) or DEFAULT_PREFIX)


@dataclass(frozen=True)
class Hyperparameters:
    """The random forest's knobs; SageMaker passes every value as a string, so each is parsed here."""

    model_name: str = "model"
    n_estimators: int = 100
    max_depth: int | None = None
    min_samples_leaf: int = 1
    class_weight: str | None = None
    validation_fraction: float = 0.2
    random_state: int = 42
    n_jobs: int = 1

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Hyperparameters:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise TrainingError(f"unknown hyperparameters {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {}
        try:
            for name, value in raw.items():
                text = str(value).strip()
                if name == "model_name":
                    if not text or not all(ch.isalnum() or ch in "-_" for ch in text):
                        raise ValueError("use letters, digits, '-' and '_' only")
                    values[name] = text
                elif name == "max_depth":
                    values[name] = None if text.lower() in ("", "none") else int(text)
                elif name == "class_weight":
                    if text.lower() not in ("", "none", "balanced"):
                        raise ValueError("'balanced' or 'none'")
                    values[name] = "balanced" if text.lower() == "balanced" else None
                elif name == "validation_fraction":
                    values[name] = float(text)
                else:
                    values[name] = int(text)
        except ValueError as problem:
            raise TrainingError(f"hyperparameter {name}={value!r} is invalid: {problem}") from problem
        parsed = cls(**values)
        if not 0 < parsed.validation_fraction < 0.5:
            raise TrainingError("hyperparameter validation_fraction must be in (0, 0.5)")
        if parsed.n_estimators < 1 or parsed.min_samples_leaf < 1 or parsed.n_jobs < 1:
            raise TrainingError("n_estimators, min_samples_leaf and n_jobs must be at least 1")
        return parsed


def read_training_channel(channel: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every ``*.csv`` under the channel, concatenated: label in column 0, features after it."""
    files = sorted(path for path in channel.rglob("*.csv") if path.is_file()) if channel.is_dir() else []
    if not files:
        raise TrainingError(f"no CSV files in the training channel {channel}")
    blocks: list[np.ndarray] = []
    for path in files:
        try:
            block = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        except ValueError as problem:
            raise TrainingError(
                f"{path.name}: not a numeric CSV without header (label first): {problem}"
            ) from problem
        if block.size == 0:
            continue
        if blocks and block.shape[1] != blocks[0].shape[1]:
            raise TrainingError(
                f"{path.name} has {block.shape[1]} columns, {files[0].name} has {blocks[0].shape[1]}"
            )
        blocks.append(block)
    if not blocks:
        raise TrainingError(f"the CSV files in {channel} hold no rows")
    data = np.vstack(blocks)
    if data.shape[1] < 2:
        raise TrainingError("each row needs a label and at least one feature")
    if not np.isfinite(data).all():
        raise TrainingError("the training data holds NaN or infinite values")
    labels = data[:, 0]
    if not np.all(labels == np.round(labels)):
        raise TrainingError("labels (column 0) must be whole numbers: this program trains a classifier")
    return data[:, 1:], labels.astype(np.int64)


def train(prefix: Path) -> dict[str, Any]:
    """Fit a random forest on the training channel, hold out a stratified share to score it, save it."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score, precision_score, recall_score
    from sklearn.model_selection import train_test_split

    paths = Paths(prefix)
    raw: dict[str, Any] = {}
    if paths.hyperparameters.exists():
        try:
            raw = json.loads(paths.hyperparameters.read_text())
        except json.JSONDecodeError as problem:
            raise TrainingError(f"hyperparameters.json is not JSON: {problem}") from problem
        if not isinstance(raw, dict):
            raise TrainingError("hyperparameters.json must hold a JSON object")
    params = Hyperparameters.parse(raw)
    features, labels = read_training_channel(paths.training_channel)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise TrainingError(f"the training data has a single class ({classes.tolist()})")
    if counts.min() < 2:
        raise TrainingError("every class needs at least two rows for a stratified hold-out")
    started = time.perf_counter()
    x_fit, x_val, y_fit, y_val = train_test_split(
        features,
        labels,
        test_size=params.validation_fraction,
        stratify=labels,
        random_state=params.random_state,
    )
    model = RandomForestClassifier(
        n_estimators=params.n_estimators,
        max_depth=params.max_depth,
        min_samples_leaf=params.min_samples_leaf,
        class_weight=params.class_weight,
        random_state=params.random_state,
        n_jobs=params.n_jobs,
    )
    model.fit(x_fit, y_fit)
    predicted = model.predict(x_val)
    positive = int(classes.max())
    metrics = {
        "rows": len(labels),
        "features": int(features.shape[1]),
        "validation_rows": len(y_val),
        "accuracy": float(accuracy_score(y_val, predicted)),
        "positive_class": positive,
        "recall_positive": float(recall_score(y_val, predicted, pos_label=positive, average="binary"))
        if len(classes) == 2
        else float("nan"),
        "precision_positive": float(
            precision_score(y_val, predicted, pos_label=positive, average="binary", zero_division=0)
        )
        if len(classes) == 2
        else float("nan"),
        "fit_seconds": round(time.perf_counter() - started, 3),
    }
    model.set_params(n_jobs=1)
    model_path = save_model(model, paths.model_dir, params.model_name)
    paths.metrics.parent.mkdir(parents=True, exist_ok=True)
    paths.metrics.write_text(json.dumps({**metrics, "model_file": model_path.name}, indent=2))
    return metrics


def save_model(model: Any, model_dir: Path, model_name: str) -> Path:
    """Write ``<model_name>.pkl`` whole (temporary file, then rename), then remove any other ``.pkl``.

    SageMaker gives every job an empty model folder; a folder reused between local runs (the
    local_test scripts) would otherwise keep an earlier model next to the new one, and ``serve``
    loads exactly one. Earlier models go only once the new one is safely written.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    model_path = model_dir / f"{model_name}.pkl"
    partial = model_dir / f".{model_name}.pkl.partial"
    with partial.open("wb") as handle:
        pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
    partial.replace(model_path)
    for stale in model_dir.glob("*.pkl"):
        if stale != model_path:
            stale.unlink()
    return model_path


def train_main(argv: Sequence[str] | None = None) -> int:
    """The ``train`` program: exit 0 with the model saved, or 1 with the reason in ``output/failure``."""
    parser = argparse.ArgumentParser(prog="train", description=train_main.__doc__)
    parser.add_argument("--prefix", help=f"SageMaker root; default ${PREFIX_ENV} or {DEFAULT_PREFIX}")
    args, _ = parser.parse_known_args(argv)
    paths = Paths(resolve_prefix(args.prefix))
    paths.failure.unlink(missing_ok=True)
    try:
        metrics = train(paths.prefix)
    except Exception as problem:
        reason = f"{type(problem).__name__}: {problem}"
        paths.failure.parent.mkdir(parents=True, exist_ok=True)
        paths.failure.write_text(reason + "\n")
        print(f"training failed: {reason}", file=sys.stderr)
        if not isinstance(problem, TrainingError):
            traceback.print_exc()
        return 1
    for name in ("accuracy", "recall_positive", "precision_positive"):
        print(f"validation:{name}={metrics[name]:.6f};")
    print(json.dumps(metrics))
    return 0


def find_model_file(model_dir: Path) -> Path:
    """The one ``*.pkl`` in the model folder (the reference flow tars ``<model>.pkl`` alone)."""
    candidates = sorted(model_dir.glob("*.pkl")) if model_dir.is_dir() else []
    if len(candidates) != 1:
        found = [path.name for path in candidates]
        raise FileNotFoundError(f"expected exactly one .pkl file in {model_dir}, found {found}")
    return candidates[0]


class LoadedModel:
    """A fitted estimator and what requests are checked against (its feature count)."""

    def __init__(self, model_dir: Path) -> None:
        path = find_model_file(model_dir)
        with path.open("rb") as handle:
            estimator = pickle.load(handle)  # noqa: S301  -- trusted: operator-configured locations only
        if not hasattr(estimator, "predict"):
            raise TypeError(f"{path.name} holds a {type(estimator).__name__}, which cannot predict")
        self.estimator = estimator
        self.path = path
        self.n_features: int | None = getattr(estimator, "n_features_in_", None)

    def predict(self, rows: np.ndarray) -> list[Any]:
        predictions = self.estimator.predict(rows)
        return [value.item() if hasattr(value, "item") else value for value in predictions]


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def parse_csv_rows(text: str, n_features: int | None) -> np.ndarray:
    """One row per line, comma-separated numbers, no label; every row must have the model's width."""
    rows: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if n_features is not None and len(fields) != n_features:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"line {number} has {len(fields)} values; the model expects {n_features}",
            )
        try:
            rows.append([float(field) for field in fields])
        except ValueError as problem:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"line {number}: {problem}") from problem
    return _checked(rows, n_features)


def parse_json_rows(body: bytes, n_features: int | None) -> np.ndarray:
    """``[[...], ...]``, one flat row ``[...]``, or ``{"instances": [[...], ...]}``."""
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as problem:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {problem}") from problem
    rows = document.get("instances") if isinstance(document, dict) else document
    if isinstance(rows, list) and rows and not isinstance(rows[0], list):
        rows = [rows]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise RequestError(HTTPStatus.BAD_REQUEST, 'expected a list of rows or {"instances": [[...], ...]}')
    for number, row in enumerate(rows, start=1):
        if n_features is not None and len(row) != n_features:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"row {number} has {len(row)} values; the model expects {n_features}"
            )
        if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in row):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"row {number} holds a value that is not a number")
    return _checked(rows, n_features)


def _checked(rows: list[list[float]], n_features: int | None) -> np.ndarray:
    if not rows:
        raise RequestError(HTTPStatus.BAD_REQUEST, "no rows to predict")
    array = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(array).all():
        raise RequestError(HTTPStatus.BAD_REQUEST, "rows hold NaN or infinite values")
    return array


def render(predictions: list[Any], accept: str) -> tuple[bytes, str]:
    if accept == CSV:
        return "".join(f"{value}\n" for value in predictions).encode(), CSV
    return json.dumps({"predictions": predictions}).encode(), JSON


class ModelServer(ThreadingHTTPServer):
    """HTTP/1.1 keep-alive server holding the model; a failed load keeps ``/ping`` answering 503."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], model_dir: Path) -> None:
        super().__init__(address, InvocationHandler)
        self.model: LoadedModel | None = None
        self.load_error: str | None = None
        try:
            self.model = LoadedModel(model_dir)
        except Exception as problem:
            self.load_error = f"{type(problem).__name__}: {problem}"
            log.error("model not loaded: %s", self.load_error)


class InvocationHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    """Headers and body go out in two writes: with Nagle on, a kept-alive client waits ~40 ms each."""
    server: ModelServer

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/ping":
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        elif self.server.model is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, f"{self.server.load_error}\n".encode(), "text/plain")
        else:
            self._send(HTTPStatus.OK, b"", "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"payload over {MAX_REQUEST_BYTES} bytes")
            return
        body = self.rfile.read(length)
        if self.path.split("?", 1)[0] != "/invocations":
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        try:
            answer, content_type = self._invoke(body)
        except RequestError as problem:
            self._error(problem.status, str(problem))
            return
        self._send(HTTPStatus.OK, answer, content_type)

    def _invoke(self, body: bytes) -> tuple[bytes, str]:
        model = self.server.model
        if model is None:
            raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE, f"model not loaded: {self.server.load_error}")
        content_type = media_type(self.headers.get("Content-Type"))
        if content_type == CSV:
            try:
                rows = parse_csv_rows(body.decode("utf-8"), model.n_features)
            except UnicodeDecodeError as problem:
                raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not UTF-8: {problem}") from problem
        elif content_type == JSON:
            rows = parse_json_rows(body, model.n_features)
        else:
            raise RequestError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"content type {content_type or '(none)'!r} is not supported; use {CSV} or {JSON}",
            )
        accept = media_type(self.headers.get("Accept"))
        if accept in ("", "*/*"):
            accept = content_type
        if accept not in (CSV, JSON):
            raise RequestError(HTTPStatus.NOT_ACCEPTABLE, f"cannot answer in {accept!r}; use {CSV} or {JSON}")
        return render(model.predict(rows), accept)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), JSON)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


def serve_main(argv: Sequence[str] | None = None) -> int:
    """The ``serve`` program: ``GET /ping`` and ``POST /invocations`` until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="serve", description=serve_main.__doc__)
    parser.add_argument("--prefix", help=f"SageMaker root; default ${PREFIX_ENV} or {DEFAULT_PREFIX}")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind; 0.0.0.0 in the container")  # noqa: S104
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT") or DEFAULT_PORT),
        help="port; default $SAGEMAKER_BIND_TO_PORT or 8080",
    )
    args, _ = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = ModelServer((args.host, args.port), Paths(resolve_prefix(args.prefix)).model_dir)
    _stop_on_sigterm(server)
    log.info("serving on %s:%d (model loaded: %s)", args.host, args.port, server.model is not None)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


def _stop_on_sigterm(server: ModelServer) -> None:
    import signal

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def predict_csv_file(model: LoadedModel, source: Path, destination: Path, chunk_rows: int = 10_000) -> int:
    """Batch transform of one CSV (no header, no label): one prediction per line, as SageMaker writes."""
    written = 0
    with source.open(encoding="utf-8") as reader, destination.open("w", encoding="utf-8") as writer:
        first_line = 1
        while True:
            lines = [line for _, line in zip(range(chunk_rows), reader, strict=False)]
            if not lines:
                break
            try:
                rows = parse_csv_rows("".join(lines), model.n_features)
            except RequestError as problem:
                raise RequestError(
                    problem.status, f"{source.name} (from line {first_line}): {problem}"
                ) from None
            writer.write(render(model.predict(rows), CSV)[0].decode())
            written += len(rows)
            first_line += len(lines)
    return written


def batch_main(argv: Sequence[str] | None = None) -> int:
    """Run the model over every CSV of ``--input`` (a file or folder) into ``--output/<name>.out``."""
    parser = argparse.ArgumentParser(prog="batch", description=batch_main.__doc__)
    parser.add_argument("--prefix", help=f"SageMaker root; default ${PREFIX_ENV} or {DEFAULT_PREFIX}")
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        model = LoadedModel(Paths(resolve_prefix(args.prefix)).model_dir)
        sources = sorted(args.input.glob("*.csv")) if args.input.is_dir() else [args.input]
        if not sources or not all(source.is_file() for source in sources):
            raise FileNotFoundError(f"no CSV input at {args.input}")
        args.output.mkdir(parents=True, exist_ok=True)
        total = sum(predict_csv_file(model, src, args.output / f"{src.name}.out") for src in sources)
    except Exception as problem:
        print(f"batch failed: {type(problem).__name__}: {problem}", file=sys.stderr)
        return 1
    print(json.dumps({"rows": total, "files": len(sources)}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ancora.sagemaker.container train|serve|batch [options]``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    programs = {"train": train_main, "serve": serve_main, "batch": batch_main}
    if not arguments or arguments[0] not in programs:
        print(f"usage: {main.__doc__}", file=sys.stderr)
        return 2
    return programs[arguments[0]](arguments[1:])


if __name__ == "__main__":
    sys.exit(main())
