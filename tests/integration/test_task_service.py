"""The task service as a real process, driven through the client library, with the local runner.

Covers what does not need a cluster: login, ownership, bad uploads, follow and cancel of a local job.
The same service against real Slurm is in test_remote_slurm.py.
"""

from __future__ import annotations

import os
import stat
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ancora.client import Server_connection, Submitter, TaskHandler
from ancora.config import get_settings
from tests.support.task_service import add_user, running_task_service

pytestmark = pytest.mark.integration

JOB = """
import os, pathlib, sys, time
print("args", sys.argv[1:])
print("dataset", sorted(p.name for p in pathlib.Path(os.environ["DATASET_DIR"]).iterdir()))
print("mode", os.environ.get("MLFLOW_EXPERIMENT_NAME", "no-mlflow"))
sys.stdout.flush()
if "--sleep" in " ".join(sys.argv):
    time.sleep(120)
sys.exit(3 if "--fail=true" in sys.argv else 0)
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("task-service")
    env = {
        "ANCORA_REMOTE_EXECUTOR": "inline",
        "ANCORA_REMOTE_LOCATIONS": '{"laptop":"local"}',
        "ANCORA_REMOTE_POLL_SECONDS": "0.2",
        "ANCORA_REMOTE_MAX_UNPACKED_MB": "5",
    }
    db_url = f"sqlite:///{state / 'task_service' / 'tasks.db'}"
    add_user(db_url, "alice", "alice-password")
    add_user(db_url, "bob", "bob-password")
    add_user(db_url, "root-admin", "admin-password", admin=True)
    with running_task_service(state, env) as url:
        yield {"url": url, "state": state}


@pytest.fixture
def zips(tmp_path: Path) -> dict[str, Path]:
    dataset, processor = tmp_path / "data.zip", tmp_path / "processor.zip"
    with zipfile.ZipFile(dataset, "w") as archive:
        archive.writestr("rows.csv", "a,b\n1,2\n")
    with zipfile.ZipFile(processor, "w") as archive:
        archive.writestr("job.py", JOB)
    return {"dataset": dataset, "processor": processor}


def use(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch, user: str, password: str) -> None:
    monkeypatch.setenv("ANCORA_TASK_SERVICE_URL", service["url"])
    monkeypatch.setenv("ANCORA_TASK_SERVICE_USERNAME", user)
    monkeypatch.setenv("ANCORA_TASK_SERVICE_PASSWORD", password)
    get_settings.cache_clear()


def submit(zips: dict[str, Path], **fields: Any) -> dict[str, Any]:
    options = {
        "runner_location": "laptop",
        "execution_mode": "no-mlflow",
        "execution_command": "python job.py",
        "instance_type": "cpu",
        **fields,
    }
    submitter = Submitter(dataset_file=str(zips["dataset"]), processor_file=str(zips["processor"]), **options)
    return dict(submitter.submit_task().json())


def wait_for(task_id: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = dict(TaskHandler(task_id).get_task_status().json())
        if answer["status"] in statuses or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_a_local_job_runs_to_completion_with_its_parameters_and_data(
    service: dict[str, Any], zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    use(service, monkeypatch, "alice", "alice-password")
    submitted = submit(zips, experiment_name="local_check", n_estimators=2, random_state=42)
    assert submitted["experiment_name"] == "local_check"
    assert submitted["instance_type"] == "cpu"
    assert submitted["job_id"] and submitted["id"] != submitted["job_id"]

    done = wait_for(submitted["id"], {"COMPLETED", "FAILED", "CANCELLED"})
    assert done["status"] == "COMPLETED", done
    assert done["model_params"] == {"n_estimators": 2, "random_state": 42}
    log = TaskHandler(submitted["id"]).get_task_logs().json()["log"]
    assert "args ['--n_estimators=2', '--random_state=42']" in log
    assert "dataset ['rows.csv']" in log
    assert "mode no-mlflow" in log
    assert TaskHandler(submitted["id"]).get_job_run_id().json()["run_id"] is None


def test_a_failing_job_is_failed_with_its_log(
    service: dict[str, Any], zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    use(service, monkeypatch, "alice", "alice-password")
    submitted = submit(zips, fail=True)
    done = wait_for(submitted["id"], {"COMPLETED", "FAILED", "CANCELLED"})
    assert done["status"] == "FAILED"
    assert "exit code 3" in done["detail"]
    assert "args ['--fail=true']" in TaskHandler(submitted["id"]).get_task_logs().json()["log"]


def test_cancel_stops_a_local_job(
    service: dict[str, Any], zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    use(service, monkeypatch, "alice", "alice-password")
    submitted = submit(zips, sleep=1)
    assert wait_for(submitted["id"], {"RUNNING"})["status"] == "RUNNING"
    TaskHandler(submitted["id"]).cancel_task()
    done = wait_for(submitted["id"], {"CANCELLED", "COMPLETED", "FAILED"}, timeout=20)
    assert done["status"] == "CANCELLED"
    pid = int(done["external_job_id"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        if "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_wrong_passwords_and_missing_tokens_are_401(
    service: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="401"):
        Server_connection(username="alice", password="wrong", node_name="127.0.0.1",
                          port=int(service["url"].rsplit(":", 1)[1])).login()  # fmt: skip
    with pytest.raises(ValueError, match="401"):
        Server_connection(username="nobody", password="x" * 12, node_name="127.0.0.1",
                          port=int(service["url"].rsplit(":", 1)[1])).login()  # fmt: skip
    assert requests.get(f"{service['url']}/tasks", timeout=10).status_code == 401
    forged = requests.get(
        f"{service['url']}/tasks", headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."}, timeout=10
    )
    assert forged.status_code == 401
    use(service, monkeypatch, "alice", "alice-password")
    login = Server_connection().login()
    assert login.status_code == 200 and login.json()["token_type"] == "bearer"


def test_only_the_owner_or_an_admin_sees_and_cancels_a_task(
    service: dict[str, Any], zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    use(service, monkeypatch, "alice", "alice-password")
    task_id = submit(zips)["id"]
    assert task_id in {task["id"] for task in Server_connection().request("GET", "/tasks").json()}

    use(service, monkeypatch, "bob", "bob-password")
    for call in (TaskHandler(task_id).get_task_status, TaskHandler(task_id).cancel_task):
        with pytest.raises(ValueError, match="404"):
            call()
    assert task_id not in {task["id"] for task in Server_connection().request("GET", "/tasks").json()}

    use(service, monkeypatch, "root-admin", "admin-password")
    owners = {task["owner"] for task in Server_connection().request("GET", "/tasks").json()}
    assert {"alice"} <= owners
    assert TaskHandler(task_id).get_task_status().json()["owner"] == "alice"


def bad_zip(path: Path, name: str, data: bytes = b"x", symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, data)
    return path


def test_bad_uploads_and_fields_are_400_with_the_reason_and_leave_nothing(
    service: dict[str, Any], zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use(service, monkeypatch, "bob", "bob-password")
    tasks_folder = service["state"] / "task_service" / "tasks"
    before = set(os.listdir(tasks_folder)) if tasks_folder.exists() else set()
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("just text")
    cases = [
        ({"processor": bad_zip(tmp_path / "slip.zip", "../../../../outside.py")}, {}, "zip slip"),
        ({"processor": bad_zip(tmp_path / "abs.zip", "/tmp/ancora-owned.py")}, {}, "absolute path"),
        (
            {"dataset": bad_zip(tmp_path / "link.zip", "data", b"/etc/shadow", symlink=True)},
            {},
            "symbolic link",
        ),
        ({"dataset": bad_zip(tmp_path / "bomb.zip", "zeros", b"\0" * (6 * 1024 * 1024))}, {}, "zip bomb"),
        ({"dataset": not_zip}, {}, "not a zip file"),
        ({}, {"runner_location": "mars"}, "runner_location"),
        ({}, {"execution_mode": "yolo"}, "execution_mode"),
        ({}, {"execution_command": "python 'unclosed"}, "cannot be split"),
        ({}, {"experiment_name": "x\n#SBATCH --x"}, "experiment_name"),
    ]
    for files, fields, reason in cases:
        with pytest.raises(ValueError, match="400") as refusal:
            submit({**zips, **files}, **fields)
        assert reason in str(refusal.value)
    with pytest.raises(ValueError, match="not an identifier"):
        submit(zips, **{"bad-name": 1})
    after = set(os.listdir(tasks_folder)) if tasks_folder.exists() else set()
    assert after == before
    assert not Path("/tmp/ancora-owned.py").exists()
    assert not (service["state"] / "outside.py").exists()


def test_a_failed_submission_stays_pending_while_retries_are_left(
    zips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the remote_task DAG relies on: only the last attempt records FAILED."""
    import paramiko

    from ancora.remote.execution import start
    from ancora.remote.service import SubmissionFields, TaskService
    from ancora.remote.store import User
    from tests.support.simulator import free_port

    port = free_port()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} ssh-rsa {paramiko.RSAKey.generate(2048).get_base64()}\n")
    for name, value in {
        "ANCORA_HPC_HOST": "127.0.0.1",
        "ANCORA_HPC_PORT": str(port),
        "ANCORA_HPC_KNOWN_HOSTS": str(known_hosts),
        "ANCORA_HPC_SSH_TIMEOUT_SECONDS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    service = TaskService(get_settings())
    fields = SubmissionFields(
        dataset_name=None, runner_location="atena02", execution_mode="no-mlflow", experiment_name="e",
        execution_command="python job.py", tracking_uri=None, instance_type="cpu", account="default_account",
        model_params={},
    )  # fmt: skip
    with zips["dataset"].open("rb") as data, zips["processor"].open("rb") as code:
        task = service.accept(User("engineer", "", False), fields, ("d.zip", data), ("p.zip", code))

    with pytest.raises(Exception, match=r"Unable to connect|refused"):
        start(service.store, service.runners, task.id, record_failure=False)
    retried = service.store.get(task.id)
    assert retried.status.value == "PENDING" and "will retry" in retried.detail
    with pytest.raises(Exception, match=r"Unable to connect|refused"):
        start(service.store, service.runners, task.id, record_failure=True)
    assert service.store.get(task.id).status.value == "FAILED"
    service.close()


def test_users_add_creates_a_login_without_echoing_the_password(service: dict[str, Any]) -> None:
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if not key.startswith("ANCORA_")}
    env.update(ANCORA_STATE_DIR=str(service["state"]), ANCORA_NEW_USER_PASSWORD="carol-password-1")
    result = subprocess.run(
        [sys.executable, "-m", "ancora", "task-service", "users", "add", "carol", "--admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "carol-password-1" not in result.stdout + result.stderr
    port = int(service["url"].rsplit(":", 1)[1])
    login = Server_connection("127.0.0.1", "carol", "carol-password-1", port).login().json()
    assert login["is_admin"] is True
