"""Start, stop and inspect the native stack: one session per service, one pid file per service.

Each service gets its own session (and so its own process group), which lets `down` stop a service
with everything it forked, and lets `up` exit while the services keep running.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ancora.private_files import PRIVATE_UMASK, private_dir
from ancora.stack.processes import ProcessInfo, process_info, reap, stack_processes
from ancora.stack.services import Job, Service, Stack

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
KILL_WAIT_SECONDS = 5.0
HTTP_TIMEOUT_SECONDS = 30.0


class StackError(RuntimeError):
    """A service or job could not be started or did not become healthy."""


@dataclass(frozen=True)
class PidRecord:
    name: str
    pid: int
    start_ticks: int
    argv: list[str]
    log: str
    started_at: str

    @property
    def running(self) -> bool:
        info = process_info(self.pid)
        return info is not None and info.running and info.start_ticks == self.start_ticks


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool | None
    url: str | None
    log: Path


@dataclass
class UpReport:
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    removed_stale: list[str] = field(default_factory=list)
    job_seconds: dict[str, float] = field(default_factory=dict)
    healthy_after: dict[str, float] = field(default_factory=dict)
    """Seconds from the start of `up` until each service answered its health check."""
    elapsed: float = 0.0


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class Supervisor:
    def __init__(self, stack: Stack, run_dir: Path, log_dir: Path, work_dir: Path) -> None:
        self.stack = stack
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.work_dir = work_dir

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def record(self, name: str) -> PidRecord | None:
        try:
            return PidRecord(**json.loads(self.pid_file(name).read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def records(self) -> list[PidRecord]:
        """Pid files of every service this folder knows, including ones no longer in the stack."""
        if not self.run_dir.exists():
            return []
        found = (self.record(path.stem) for path in sorted(self.run_dir.glob("*.pid")))
        return [record for record in found if record is not None]

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Two `up`/`down` at once would race on the pid files; the second one waits."""
        private_dir(self.run_dir)
        with (self.run_dir / "stack.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def status(self) -> list[ServiceStatus]:
        records = {service.name: self.record(service.name) for service in self.stack.services}
        running = [s for s in self.stack.services if (r := records[s.name]) is not None and r.running]
        healthy = asyncio.run(_check_once(running))
        statuses = []
        for service in self.stack.services:
            record = records[service.name]
            alive = record is not None and record.running
            statuses.append(
                ServiceStatus(
                    name=service.name,
                    pid=record.pid if record is not None and alive else None,
                    running=alive,
                    healthy=healthy.get(service.name) if alive else None,
                    url=service.url,
                    log=self.log_file(service.name),
                )
            )
        return statuses

    def up(self, timeout: float) -> UpReport:
        """Start what is not running, after the jobs it needs, and wait until everything is healthy."""
        begin = time.monotonic()
        deadline = begin + timeout
        report = UpReport()
        private_dir(self.work_dir)
        private_dir(self.log_dir)
        with self.locked():
            to_start: list[Service] = []
            for service in self.stack.services:
                record = self.record(service.name)
                if record is not None and record.running:
                    report.already_running.append(service.name)
                    continue
                if record is not None:
                    log.warning("%s: stale pid file (pid %d is gone)", record.name, record.pid)
                    self.pid_file(service.name).unlink(missing_ok=True)
                    report.removed_stale.append(service.name)
                to_start.append(service)

            environment = dict(self.stack.environment()) if to_start else {}
            started: dict[str, subprocess.Popen[bytes]] = {}
            try:
                for service in (s for s in to_start if not s.needs):
                    started[service.name] = self._start(service, environment)
                later = [s for s in to_start if s.needs]
                for job in self._jobs_for(later):
                    job_begin = time.monotonic()
                    self._run_job(job, environment, deadline)
                    report.job_seconds[job.name] = round(time.monotonic() - job_begin, 2)
                for service in later:
                    started[service.name] = self._start(service, environment)
                report.started = list(started)
                healthy_at, problems = asyncio.run(
                    _wait_healthy(self.stack.services, deadline, self._exit_check(started))
                )
                if problems:
                    raise StackError(
                        "\n\n".join(
                            f"{name} {problem}; log {self.log_file(name)}:\n{tail(self.log_file(name))}"
                            for name, problem in problems.items()
                        )
                    )
            except BaseException:
                if started:
                    log.error("start failed; stopping the services this run started: %s", ", ".join(started))
                    self._stop([r for name in started if (r := self.record(name)) is not None])
                    for name in started:
                        self.pid_file(name).unlink(missing_ok=True)
                raise
        report.healthy_after = {name: round(at - begin, 2) for name, at in healthy_at.items()}
        report.elapsed = round(time.monotonic() - begin, 2)
        return report

    def down(self, timeout: float) -> list[str]:
        """Stop every service with a pid file: SIGTERM to its session, SIGKILL after ``timeout``."""
        with self.locked():
            records = self.records()
            alive = [r for r in records if r.running]
            self._stop(alive, timeout)
            for record in records:
                self.pid_file(record.name).unlink(missing_ok=True)
        return [record.name for record in alive]

    def _jobs_for(self, services: Sequence[Service]) -> list[Job]:
        wanted = {name for service in services for name in service.needs}
        return [job for job in self.stack.jobs if job.name in wanted]

    def _run_job(self, job: Job, environment: dict[str, str], deadline: float) -> None:
        log_path = self.log_file(job.name)
        log.info("running %s", job.name)
        with log_path.open("ab") as output:
            output.write(f"=== {_now()} {' '.join(job.argv)}\n".encode())
            output.flush()
            try:
                result = subprocess.run(
                    job.argv,
                    env=environment,
                    cwd=self.work_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    umask=PRIVATE_UMASK,
                    timeout=max(deadline - time.monotonic(), 1.0),
                    check=False,
                )
            except subprocess.TimeoutExpired as expired:
                raise StackError(f"{job.name} timed out; log {log_path}:\n{tail(log_path)}") from expired
        if result.returncode != 0:
            raise StackError(f"{job.name} failed ({result.returncode}); log {log_path}:\n{tail(log_path)}")

    def _start(self, service: Service, environment: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = self.log_file(service.name)
        with log_path.open("ab") as output:
            output.write(f"=== {_now()} {' '.join(service.argv)}\n".encode())
            output.flush()
            process = subprocess.Popen(
                service.argv,
                env={**environment, **service.env},
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        info = process_info(process.pid)
        record = PidRecord(
            name=service.name,
            pid=process.pid,
            start_ticks=info.start_ticks if info is not None else 0,
            argv=list(service.argv),
            log=str(log_path),
            started_at=_now(),
        )
        pid_file = self.pid_file(service.name)
        partial = pid_file.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(record)))
        partial.replace(pid_file)
        log.info("started %s (pid %d)", service.name, process.pid)
        return process

    def _exit_check(self, started: dict[str, subprocess.Popen[bytes]]) -> Callable[[str], str | None]:
        def exited(name: str) -> str | None:
            if name in started:
                code = started[name].poll()
                return None if code is None else f"exited with code {code}"
            record = self.record(name)
            return None if record is not None and record.running else "is no longer running"

        return exited

    def _stop(self, records: Sequence[PidRecord], timeout: float = KILL_WAIT_SECONDS) -> None:
        leaders = [r.pid for r in records if r.running]
        if not leaders:
            return
        members = stack_processes(leaders)
        log.info("stopping %s (%d processes)", ", ".join(r.name for r in records), len(members))
        _signal_all(leaders, members, signal.SIGTERM)
        remaining = _wait_gone(members, timeout)
        if remaining:
            log.warning("SIGKILL to %d processes still running after %.0f s", len(remaining), timeout)
            _signal_all(leaders, remaining, signal.SIGKILL)
            remaining = _wait_gone(remaining, KILL_WAIT_SECONDS)
        if remaining:
            raise StackError(f"processes survived SIGKILL: {sorted(remaining)}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _signal_all(leaders: Sequence[int], members: dict[int, ProcessInfo], signum: signal.Signals) -> None:
    """The group signal reaches the service and its workers at once; members that moved to their
    own group (Airflow's task processes) get the signal one by one."""
    for leader in leaders:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(leader, signum)
    for pid in members:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _wait_gone(members: dict[int, ProcessInfo], timeout: float) -> dict[int, ProcessInfo]:
    deadline = time.monotonic() + timeout
    remaining = dict(members)
    while remaining:
        for pid, original in list(remaining.items()):
            reap(pid)
            info = process_info(pid)
            if info is None or not info.running or info.start_ticks != original.start_ticks:
                del remaining[pid]
        if not remaining or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS / 2)
    return remaining


def _client() -> httpx.AsyncClient:
    # Loopback only: proxies from the environment must not intercept these requests.
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, trust_env=False)


async def _probe(client: httpx.AsyncClient, service: Service) -> bool:
    try:
        return service.health.healthy(await client.get(service.health.url))
    except (httpx.HTTPError, ValueError):
        return False


async def _check_once(services: Sequence[Service]) -> dict[str, bool]:
    """One request per distinct URL: the four Airflow components share the API server's endpoint,
    and a single-worker server under load should not answer the same question four times."""
    urls = sorted({service.health.url for service in services})

    async def fetch(client: httpx.AsyncClient, url: str) -> httpx.Response | None:
        try:
            return await client.get(url)
        except httpx.HTTPError:
            return None

    async with _client() as client:
        responses = dict(zip(urls, await asyncio.gather(*(fetch(client, url) for url in urls)), strict=True))
    healthy = {}
    for service in services:
        response = responses[service.health.url]
        try:
            healthy[service.name] = response is not None and service.health.healthy(response)
        except ValueError:
            healthy[service.name] = False
    return healthy


async def _wait_healthy(
    services: Sequence[Service], deadline: float, exited: Callable[[str], str | None]
) -> tuple[dict[str, float], dict[str, str]]:
    """Poll every service at once, so the slowest one alone sets the wait; stop polling a service
    as soon as its process dies. Returns when each service is healthy, and what went wrong."""
    healthy_at: dict[str, float] = {}
    problems: dict[str, str] = {}

    async def wait_one(client: httpx.AsyncClient, service: Service) -> None:
        while True:
            if await _probe(client, service):
                log.info("%s is healthy", service.name)
                healthy_at[service.name] = time.monotonic()
                return
            if (problem := exited(service.name)) is not None:
                problems[service.name] = problem
                return
            if time.monotonic() > deadline:
                problems[service.name] = f"not healthy in time ({service.health.url})"
                return
            await asyncio.sleep(POLL_SECONDS)

    async with _client() as client:
        await asyncio.gather(*(wait_one(client, service) for service in services))
    return healthy_at, problems
