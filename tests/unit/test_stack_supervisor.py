"""The supervisor's promises, checked with tiny real HTTP servers instead of the whole stack.

Starting Airflow takes a minute; these cases (stale pid files, repeated `up`, services that ignore
SIGTERM, a service that never gets healthy) need seconds.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ancora.config import Settings
from ancora.stack.processes import is_running, process_info, stack_processes
from ancora.stack.services import HealthCheck, Job, Service, Stack, ancora_environment, native_stack
from ancora.stack.supervisor import StackError, Supervisor

SERVER = textwrap.dedent(
    """
    import http.server, os, signal, subprocess, sys
    if os.environ.get("IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("FORK_CHILD"):
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def web(name: str, tmp_path: Path, **env: str) -> Service:
    port = free_port()
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    return Service(
        name=name,
        argv=(sys.executable, str(script), str(port)),
        health=HealthCheck(f"http://127.0.0.1:{port}/health"),
        url=f"http://127.0.0.1:{port}",
        env=env,
    )


def supervisor(tmp_path: Path, *services: Service, jobs: tuple[Job, ...] = ()) -> Supervisor:
    stack = Stack(services=services, jobs=jobs, environment=lambda: dict(os.environ))
    return Supervisor(stack, tmp_path / "run", tmp_path / "logs", tmp_path)


@pytest.fixture
def chiefs() -> list[Supervisor]:
    """Supervisors a test used; whatever they still run is stopped afterwards."""
    return []


@pytest.fixture(autouse=True)
def stop_everything(chiefs: list[Supervisor]) -> Iterator[None]:
    yield
    for chief in chiefs:
        chief.down(timeout=2)


def test_up_starts_in_own_sessions_and_down_stops_all(tmp_path: Path, chiefs: list[Supervisor]) -> None:
    chief = supervisor(tmp_path, web("one", tmp_path), web("two", tmp_path, FORK_CHILD="1"))
    chiefs.append(chief)
    report = chief.up(timeout=30)
    assert report.started == ["one", "two"]
    assert set(report.healthy_after) == {"one", "two"}
    records = chief.records()
    for record in records:
        info = process_info(record.pid)
        assert info is not None and info.session == record.pid
    launched = stack_processes([r.pid for r in records])
    assert len(launched) == 3, "the child that left the group still belongs to the stack"
    assert all(status.healthy for status in chief.status())

    assert sorted(chief.down(timeout=5)) == ["one", "two"]
    assert not [pid for pid, info in launched.items() if is_running(pid, info.start_ticks)]
    assert not list((tmp_path / "run").glob("*.pid"))


def test_up_again_starts_nothing(tmp_path: Path, chiefs: list[Supervisor]) -> None:
    chief = supervisor(tmp_path, web("one", tmp_path))
    chiefs.append(chief)
    first = chief.up(timeout=30)
    again = chief.up(timeout=30)
    assert first.started == ["one"]
    assert again.started == []
    assert again.already_running == ["one"]


def test_stale_pid_file_is_replaced(tmp_path: Path, chiefs: list[Supervisor]) -> None:
    chief = supervisor(tmp_path, web("one", tmp_path))
    chiefs.append(chief)
    (tmp_path / "run").mkdir()
    stale = {
        "name": "one",
        "pid": os.getpid(),
        "start_ticks": 1,
        "argv": ["gone"],
        "log": "x",
        "started_at": "then",
    }
    chief.pid_file("one").write_text(json.dumps(stale))
    report = chief.up(timeout=30)
    assert report.removed_stale == ["one"]
    assert report.started == ["one"]
    record = chief.record("one")
    assert record is not None and record.pid != os.getpid()


def test_sigterm_ignored_then_sigkill(tmp_path: Path, chiefs: list[Supervisor]) -> None:
    chief = supervisor(tmp_path, web("stubborn", tmp_path, IGNORE_TERM="1"))
    chiefs.append(chief)
    chief.up(timeout=30)
    record = chief.record("stubborn")
    assert record is not None
    assert chief.down(timeout=1) == ["stubborn"]
    assert not is_running(record.pid, record.start_ticks)


def test_jobs_run_before_the_services_that_need_them(tmp_path: Path, chiefs: list[Supervisor]) -> None:
    marker = tmp_path / "migrated"
    job = Job("migrate", (sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"))
    service = web("needs-migration", tmp_path)
    service = Service(service.name, service.argv, service.health, service.url, needs=("migrate",))
    chief = supervisor(tmp_path, service, jobs=(job,))
    chiefs.append(chief)
    report = chief.up(timeout=30)
    assert marker.exists()
    assert "migrate" in report.job_seconds


def test_failing_job_stops_what_started(tmp_path: Path, chiefs: list[Supervisor]) -> None:
    early = web("early", tmp_path)
    late = web("late", tmp_path)
    late = Service(late.name, late.argv, late.health, late.url, needs=("broken",))
    chief = supervisor(
        tmp_path, early, late, jobs=(Job("broken", (sys.executable, "-c", "raise SystemExit(3)")),)
    )
    chiefs.append(chief)
    with pytest.raises(StackError, match="broken failed"):
        chief.up(timeout=30)
    assert not any(status.running for status in chief.status())


def test_service_that_dies_fails_fast_with_its_log(tmp_path: Path, chiefs: list[Supervisor]) -> None:
    crash = Service(
        name="crash",
        argv=(sys.executable, "-c", "print('no config, giving up'); raise SystemExit(2)"),
        health=HealthCheck(f"http://127.0.0.1:{free_port()}/health"),
    )
    chief = supervisor(tmp_path, crash)
    chiefs.append(chief)
    with pytest.raises(StackError, match="no config, giving up"):
        chief.up(timeout=30)


def test_children_get_the_resolved_settings(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path, simulator_port=18001)
    env = ancora_environment(settings)
    assert env["ANCORA_STATE_DIR"] == str(tmp_path)
    assert env["ANCORA_DATA_DB_URL"] == settings.data_db_url
    assert env["ANCORA_DATA_API_URL"] == "http://127.0.0.1:18001", "tasks use the simulator the stack runs"
    course = Settings(_env_file=None, state_dir=tmp_path, data_api_url="http://course.example")
    assert ancora_environment(course)["ANCORA_DATA_API_URL"] == "http://course.example"


def test_native_services_bind_loopback_and_skip_log_servers(tmp_path: Path) -> None:
    stack = native_stack(Settings(_env_file=None, state_dir=tmp_path))
    assert not (tmp_path / "airflow").exists(), "building the list must not create state"
    by_name = {service.name: service for service in stack.services}
    for name in ("airflow-scheduler", "airflow-triggerer"):
        assert "--skip-serve-logs" in by_name[name].argv
    mlflow = by_name["mlflow"].argv
    assert mlflow[mlflow.index("--host") + 1] == "127.0.0.1"
    assert stack.environment()["AIRFLOW__API__HOST"] == "127.0.0.1"
