"""The compiled form of a served version (an ONNX Runtime session) and which engine takes a call.

Training compiles each registered version (``ancora.training.compile``) and stores, next to the
scikit-learn artifact, ``compiled/model.onnx`` and ``compiled/compile.json``: the parity figures on the
frozen evaluation set and the measured crossover, the call size from which scikit-learn is faster.
Serving and dispatch read both with the version and pick the engine per call: ONNX Runtime below the
crossover, scikit-learn from it on, scikit-learn alone when the version was not compiled or failed
parity. The session is built where it runs (a prediction worker, a dispatch), never pickled.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ancora.schema import CATEGORICAL_FEATURES, FEATURE_NAMES
from ancora.serving.rows import frame_from_columns

ENGINE_SKLEARN = "scikit-learn"
ENGINE_ONNXRUNTIME = "onnxruntime"
COMPILED_DIR = "compiled"
ONNX_FILE = "model.onnx"
REPORT_FILE = "compile.json"
LABEL_AGREEMENT_MIN = 0.999
"""Share of rows whose predicted class must be identical (issue #18)."""
PROBABILITY_TOLERANCE = 1e-4
"""Largest allowed difference of any class probability between the engines."""

CompileStatus = Literal["compiled", "parity_failed", "failed", "not_compiled"]


@dataclass(frozen=True)
class Parity:
    """How the compiled engine agrees with scikit-learn on the frozen evaluation set (plus probe rows)."""

    rows: int
    label_agreement: float
    max_probability_diff: float
    label_agreement_min: float = LABEL_AGREEMENT_MIN
    probability_tolerance: float = PROBABILITY_TOLERANCE

    @property
    def passed(self) -> bool:
        return (
            self.rows > 0
            and self.label_agreement >= self.label_agreement_min
            and self.max_probability_diff <= self.probability_tolerance
        )


@dataclass(frozen=True)
class Timing:
    """Median seconds of one call of ``rows`` rows on each engine, one thread each."""

    rows: int
    compiled_seconds: float
    sklearn_seconds: float


@dataclass(frozen=True)
class CompileReport:
    """What ``compiled/compile.json`` holds; also the shape ``/models`` reports."""

    status: CompileStatus
    reason: str
    runtime: str = ENGINE_ONNXRUNTIME
    method: str = ""
    compile_seconds: float = 0.0
    parity: Parity | None = None
    crossover_rows: int | None = None
    """Calls of this many rows or more go to scikit-learn; None: the compiled engine won at every size."""
    timings: list[Timing] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def serves_compiled(self) -> bool:
        return self.status == "compiled" and self.parity is not None and self.parity.passed

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.parity is not None:
            data["parity"]["passed"] = self.parity.passed
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompileReport:
        parity = data.get("parity")
        return cls(
            status=data["status"],
            reason=str(data.get("reason", "")),
            runtime=str(data.get("runtime", ENGINE_ONNXRUNTIME)),
            method=str(data.get("method", "")),
            compile_seconds=float(data.get("compile_seconds", 0.0)),
            parity=None
            if parity is None
            else Parity(**{key: value for key, value in parity.items() if key != "passed"}),
            crossover_rows=data.get("crossover_rows"),
            timings=[Timing(**timing) for timing in data.get("timings", [])],
            versions=dict(data.get("versions", {})),
        )


NOT_COMPILED = CompileReport(
    status="not_compiled", reason="the version was registered without a compiled artifact"
)


def inference_session(onnx_bytes: bytes, threads: int = 1) -> Any:
    """An ONNX Runtime session with ``threads`` intra-op threads and no thread spinning between calls.

    Spinning keeps an idle thread busy for a while after each call, stealing a core from the HTTP
    handling that runs between the calls on a 2-core machine.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def onnx_feeds(columns: Mapping[str, Any]) -> dict[str, np.ndarray[Any, Any]]:
    """One ``[n, 1]`` input per feature: float32 numbers (exact for the contract's whole numbers), str."""
    categorical = set(CATEGORICAL_FEATURES)
    feeds: dict[str, np.ndarray[Any, Any]] = {}
    for name in FEATURE_NAMES:
        values = columns[name]
        if name in categorical:
            array = np.asarray(values, dtype=object)
        else:
            array = np.asarray(values, dtype=np.float32)
        feeds[name] = array.reshape(-1, 1)
    return feeds


def frame_columns(frame: pd.DataFrame) -> dict[str, np.ndarray[Any, Any]]:
    return {name: frame[name].to_numpy() for name in FEATURE_NAMES}


class CompiledPipeline:
    """The ONNX form of one version's pipeline: ``predict_proba`` over columns, in ``classes`` order.

    Pickles as its bytes and report (a prediction worker builds its own session on first use).
    """

    def __init__(self, onnx_bytes: bytes, report: CompileReport, threads: int = 1) -> None:
        self.onnx_bytes = onnx_bytes
        self.report = report
        self.threads = threads
        self._session: Any = None
        self._output: str | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"onnx_bytes": self.onnx_bytes, "report": self.report, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["onnx_bytes"], state["report"], state["threads"])  # type: ignore[misc]

    def takes(self, rows: int) -> bool:
        """Whether a call of ``rows`` rows runs here (below the crossover) rather than in scikit-learn."""
        crossover = self.report.crossover_rows
        return crossover is None or rows < crossover

    def session(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    session = inference_session(self.onnx_bytes, self.threads)
                    self._output = _probability_output(session)
                    self._session = session
        return self._session

    def predict_proba(self, columns: Mapping[str, Any]) -> np.ndarray[Any, Any]:
        session = self.session()
        (probabilities,) = session.run([self._output], onnx_feeds(columns))
        return np.asarray(probabilities, dtype=np.float64)


def predict_columns(
    estimator: Any, compiled: CompiledPipeline | None, columns: Mapping[str, np.ndarray[Any, Any]]
) -> np.ndarray[Any, Any]:
    """Probabilities of the rows in ``columns`` on the engine their count picks (the measured crossover)."""
    rows = len(next(iter(columns.values()))) if columns else 0
    if compiled is not None and compiled.takes(rows):
        return compiled.predict_proba(columns)
    return np.asarray(estimator.predict_proba(frame_from_columns(columns)), dtype=np.float64)


def _probability_output(session: Any) -> str:
    outputs = session.get_outputs()
    for output in outputs:
        if output.name == "probabilities":
            return str(output.name)
    return str(outputs[-1].name)


def read_compiled(model_dir: Path, threads: int = 1) -> tuple[CompiledPipeline | None, CompileReport]:
    """The compiled engine stored with a version (None when it must not serve) and its report.

    A version logged before compilation existed, or whose report is unreadable, is served by
    scikit-learn and says why.
    """
    directory = model_dir / COMPILED_DIR
    report_path = directory / REPORT_FILE
    if not report_path.is_file():
        return None, NOT_COMPILED
    try:
        report = CompileReport.from_dict(json.loads(report_path.read_text()))
    except (ValueError, KeyError, TypeError) as error:
        return None, CompileReport(status="failed", reason=f"unreadable {REPORT_FILE}: {error}")
    if not report.serves_compiled:
        return None, report
    onnx_path = directory / ONNX_FILE
    if not onnx_path.is_file():
        return None, CompileReport(status="failed", reason=f"{REPORT_FILE} present but {ONNX_FILE} missing")
    return CompiledPipeline(onnx_path.read_bytes(), report, threads), report
