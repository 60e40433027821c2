"""Hot reload: follow the registry alias and swap the served model when it moves.

``mlflow models serve`` resolves ``models:/name@alias`` once at start; this watcher asks the registry
again every poll interval (or when told to), loads the new version beside the old one and swaps a
single reference. Requests that already took the old model finish on it; a failed check or load
leaves the old model serving and is reported, never raised into a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from ancora.serving.registry import (
    ChampionMissing,
    ModelLoadFailed,
    ModelRegistry,
    RegistryUnavailable,
    ServedModel,
    VersionRef,
)

log = logging.getLogger(__name__)

FailureKind = Literal["registry", "load", "missing"]

WAITING_LOG_INTERVAL_SECONDS = 60.0
"""A young stack has no champion for many minutes: say so once, then at most this often."""


class WatcherObserver(Protocol):
    """Where the watcher reports swaps and failures (the API's Prometheus metrics)."""

    def model_loaded(self, model: ServedModel) -> None: ...

    def check_failed(self, kind: FailureKind) -> None: ...

    def check_succeeded(self) -> None: ...


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one look at the alias."""

    checked_at: datetime
    changed: bool
    model: ServedModel | None
    error: str | None = None
    failure: FailureKind | None = None


class ModelWatcher:
    """Holds the served model; the only writer of ``current``."""

    def __init__(
        self,
        registry: ModelRegistry,
        interval_seconds: float,
        observer: WatcherObserver | None = None,
        prepare: Callable[[ServedModel], None] | None = None,
    ) -> None:
        """``prepare`` runs on a loaded version before the swap (the prediction worker loads it too);
        if it raises, the check counts as a failed load and the old version keeps serving."""
        self.registry = registry
        self.interval_seconds = interval_seconds
        self._observer = observer
        self._prepare = prepare
        self._current: ServedModel | None = None
        self._last: CheckResult | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._waiting_logged_at: float | None = None

    @property
    def current(self) -> ServedModel | None:
        """The model new requests use; read it once per request and keep the reference."""
        return self._current

    @property
    def last_check(self) -> CheckResult | None:
        return self._last

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="model-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check(self) -> CheckResult:
        """Ask the registry now and swap if the alias moved; concurrent callers share one check."""
        async with self._lock:
            result = await asyncio.to_thread(self._check_blocking)
            if result.changed and result.model is not None:
                self._current = result.model
                self._waiting_logged_at = None
                log.info(
                    "serving %s version %s (run %s)",
                    result.model.ref.name,
                    result.model.ref.version,
                    result.model.ref.run_id,
                )
                if self._observer is not None:
                    self._observer.model_loaded(result.model)
            if result.failure is not None:
                self._log_failure(result)
                if self._observer is not None:
                    self._observer.check_failed(result.failure)
            elif self._observer is not None:
                self._observer.check_succeeded()
            self._last = result
            return result

    def _log_failure(self, result: CheckResult) -> None:
        """No champion yet is a state of a young stack, not a fault: one INFO line, then at most one a
        minute while it lasts. A registry that is down or a version that does not load stays a
        WARNING at every check."""
        if result.failure != "missing" or self._current is not None:
            log.warning("model check failed (%s): %s", result.failure, result.error)
            return
        now = time.monotonic()
        last = self._waiting_logged_at
        if last is None or now - last >= WAITING_LOG_INTERVAL_SECONDS:
            self._waiting_logged_at = now
            still = "" if last is None else "still "
            log.info("%swaiting for the first champion: %s", still, result.error)

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("model check crashed; retrying after the poll interval")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_seconds)

    def wake(self) -> None:
        """Make the background loop check at once (a registry webhook, for example)."""
        self._wake.set()

    def _check_blocking(self) -> CheckResult:
        now = datetime.now(UTC)
        current = self._current
        try:
            ref = self.registry.current_version()
        except ChampionMissing as error:
            return CheckResult(now, False, current, str(error), "missing")
        except RegistryUnavailable as error:
            return CheckResult(now, False, current, str(error), "registry")
        if current is not None and _same_version(current.ref, ref):
            return CheckResult(now, False, current)
        try:
            model = self.registry.load(ref)
        except ModelLoadFailed as error:
            return CheckResult(now, False, current, str(error), "load")
        if self._prepare is not None:
            try:
                self._prepare(model)
            except Exception as error:
                return CheckResult(now, False, current, f"{ref.name} version {ref.version}: {error}", "load")
        return CheckResult(now, True, model)


def _same_version(a: VersionRef, b: VersionRef) -> bool:
    return (a.version, a.source) == (b.version, b.source)
