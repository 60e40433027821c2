"""``predict_proba`` in a child process, so HTTP handling and prediction run on separate cores.

A forest's ``predict_proba`` holds the GIL for most of its time (one Python call per tree, with
sklearn's per-call configuration and warnings bookkeeping around each), so run in a thread of the API
process it starves the event loop that parses the next requests and writes the answers: the two
shared one core. The child gets each served version from the parent as a pickle of the estimator the
watcher loaded and smoke-tested (under a second for a 170 MB forest, where loading the skops artifact
again would import MLflow and take ten times longer) with its compiled form (ONNX bytes: the child
builds its own session and picks the engine per call size, see ``ancora.serving.engines``), keeps the
latest two, and answers one call at a time. Rows travel as one NumPy array per column (tens of
microseconds to pickle for a micro-batch).

The parent talks to it over a socket pair with ``multiprocessing.connection`` framing; the child is a
plain ``python -m ancora.serving.worker``, so nothing of the parent's ``__main__`` is re-imported,
and it exits when the socket closes, so it never outlives the service.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import numpy as np

from ancora.serving.engines import predict_columns

if TYPE_CHECKING:
    from ancora.serving.registry import ServedModel

log = logging.getLogger(__name__)

Columns = Mapping[str, np.ndarray[Any, Any]]
ModelKey = tuple[str, str, str]
KEEP_MODELS = 2
"""Versions kept in the child: the served one and the one requests still in flight may use."""


class PredictWorkerFailed(RuntimeError):
    """The child could not take a version or predict; the message carries its error."""


def model_key(model: ServedModel) -> ModelKey:
    return (model.ref.name, model.ref.version, model.ref.source)


class PredictWorker:
    """The parent's handle on the child. Calls block and are serialized: make them from a thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None

    def start(self) -> None:
        """Spawn the child; it imports its libraries while the parent asks the registry."""
        with self._lock:
            self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._close()

    def prepare(self, model: ServedModel) -> None:
        """Hand ``model`` to the child before it is served, so no request waits for the transfer."""
        with self._lock:
            self._load(model)

    def predict_proba(self, model: ServedModel, columns: Columns) -> np.ndarray[Any, Any]:
        """Probabilities of the rows in ``columns`` (``model.classes`` order), computed in the child.

        A child that died is replaced and a version it lacks (a new child, or one evicted while a
        request still used it) is sent again, so a call fails only if the child fails twice.
        """
        message = ("predict", model_key(model), dict(columns))
        with self._lock:
            for attempt in (1, 2):
                try:
                    status, payload = self._exchange(message)
                    if status == "missing":
                        self._load(model)
                        status, payload = self._exchange(message)
                except (EOFError, OSError) as error:
                    self._lost(error)
                    if attempt == 2:
                        raise PredictWorkerFailed(f"the prediction worker died twice: {error}") from error
                    continue
                if status != "ok":
                    raise PredictWorkerFailed(f"{model.ref.name} version {model.ref.version}: {payload}")
                result: np.ndarray[Any, Any] = payload
                return result
        raise AssertionError("unreachable")

    def _load(self, model: ServedModel) -> None:
        estimator = pickle.dumps((model.estimator, model.compiled), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            status, payload = self._exchange(("load", model_key(model), estimator))
        except (EOFError, OSError) as error:
            self._lost(error)
            raise PredictWorkerFailed(f"the prediction worker died while loading: {error}") from error
        if status != "ok":
            raise PredictWorkerFailed(f"{model.ref.name} version {model.ref.version}: {payload}")

    def _exchange(self, message: tuple[Any, ...]) -> tuple[str, Any]:
        if self._connection is None:
            self._spawn()
        assert self._connection is not None
        self._connection.send(message)
        answer: tuple[str, Any] = self._connection.recv()
        return answer

    def _lost(self, error: BaseException) -> None:
        log.warning("prediction worker lost (%s); a new one starts with the next call", error)
        self._close()

    def _spawn(self) -> None:
        parent_end, child_end = socket.socketpair()
        try:
            argv = [sys.executable, "-m", "ancora.serving.worker", "--fd", str(child_end.fileno())]
            self._process = subprocess.Popen(argv, pass_fds=(child_end.fileno(),))
        finally:
            child_end.close()
        self._connection = Connection(parent_end.detach())

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.send(("stop",))
            self._connection.close()
            self._connection = None
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


class PredictWorkerPool:
    """``size`` workers, each with every served version; a call takes whichever is free.

    With two cores, two workers let two micro-batches be predicted at once while HTTP handling fits
    in the gaps; each worker holds its own copy of the model, so memory grows with ``size``.
    """

    def __init__(self, size: int) -> None:
        self.workers = [PredictWorker() for _ in range(size)]
        self._idle: queue.SimpleQueue[PredictWorker] = queue.SimpleQueue()
        for worker in self.workers:
            self._idle.put(worker)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def prepare(self, model: ServedModel) -> None:
        for worker in self.workers:
            worker.prepare(model)

    def predict_proba(self, model: ServedModel, columns: Columns) -> np.ndarray[Any, Any]:
        worker = self._idle.get()
        try:
            return worker.predict_proba(model, columns)
        finally:
            self._idle.put(worker)


def serve(connection: Connection) -> None:
    """The child's loop: take versions, predict, answer ``(status, payload)``."""
    models: OrderedDict[ModelKey, Any] = OrderedDict()
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "stop":
            return
        try:
            if kind == "load":
                _, key, estimator = message
                models[key] = pickle.loads(estimator)  # noqa: S301  # from our parent, over a private socket pair
                models.move_to_end(key)
                while len(models) > KEEP_MODELS:
                    models.popitem(last=False)
                answer: tuple[str, Any] = ("ok", None)
            elif kind == "predict":
                _, key, columns = message
                if key not in models:
                    answer = ("missing", None)
                else:
                    models.move_to_end(key)
                    estimator, compiled = models[key]
                    answer = ("ok", predict_columns(estimator, compiled, columns))
            else:
                answer = ("error", f"unknown request {kind!r}")
        except Exception as error:
            answer = ("error", f"{type(error).__name__}: {error}")
        try:
            connection.send(answer)
        except OSError:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description="Prediction worker of the inference API (started by it).")
    parser.add_argument("--fd", type=int, required=True, help="socket to the parent")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent stops us
    connection = Connection(args.fd)
    import sklearn.ensemble  # noqa: F401  # warm up while the parent asks the registry
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    # HistGradientBoosting predicts with OpenMP threads; on a busy 2-core machine they spin against
    # the API's event loop and each other (a 1-row call measured 0.8 s with 2 threads, 0.04 s with 1).
    threadpool_limits(1, user_api="openmp")

    with contextlib.suppress(ImportError):
        import onnxruntime  # noqa: F401

    try:
        serve(connection)
    finally:
        connection.close()
        os._exit(0)


if __name__ == "__main__":
    main()
