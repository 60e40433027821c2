"""The task service as a real process, driven through the client library and raw HTTP, attacked.

Covers what does not need a cluster: logins and their limits, tokens, ownership, hostile uploads and
bodies, quotas, and the admins-only local runner, whose jobs run as the unprivileged ``nobody``
account (these tests run as root, like everything on this machine) with a minimal environment, and
must not reach the service's secrets or another task's files. The same service against real Slurm is
in test_remote_slurm.py and test_seed_000_examples.py.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from ancora.config import get_settings
from ancora_client import Server_connection, Submitter, TaskHandler
from tests.support.task_service import add_user, running_task_service

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "admin-token-" + secrets.token_hex(16)
AIRFLOW_PASSWORD = "airflow-" + secrets.token_hex(16)
MAX_UPLOAD_MB = 5
QUOTA_MB = 8
NOBODY = 65534
FINISHED = {"COMPLETED", "FAILED", "CANCELLED"}

JOB = """
import os, pathlib, sys, time
print("uid", os.getuid())
print("args", sys.argv[1:])
print("dataset", sorted(p.name for p in pathlib.Path(os.environ["DATASET_DIR"]).iterdir()))
print("mode", os.environ.get("MLFLOW_EXPERIMENT_NAME", "no-mlflow"))
sys.stdout.flush()
if "--sleep" in " ".join(sys.argv):
    time.sleep(120)
sys.exit(3 if "--fail=true" in sys.argv else 0)
"""


@pytest.fixture(scope="module")
def job_root() -> Iterator[Path]:
    """A work root the ``nobody`` account can pass through (pytest's own folders are 0700)."""
    root = Path(tempfile.mkdtemp(prefix="ancora-jobs-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def local_runner_env(job_root: Path) -> dict[str, str]:
    """A `laptop` location on the local runner, enabled, whose jobs run as nobody under ``job_root``."""
    return {
        "ANCORA_REMOTE_EXECUTOR": "inline",
        "ANCORA_REMOTE_LOCATIONS": '{"laptop":"local"}',
        "ANCORA_REMOTE_LOCAL_ENABLED": "true",
        "ANCORA_REMOTE_LOCAL_RUN_AS": "nobody",
        "ANCORA_REMOTE_LOCAL_WORK_ROOT": str(job_root),
        "ANCORA_REMOTE_POLL_SECONDS": "0.2",
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, job_root: Path) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("task-service")
    env = {
        **local_runner_env(job_root),
        "ANCORA_REMOTE_MAX_UNPACKED_MB": "5",
        "ANCORA_REMOTE_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
        "ANCORA_REMOTE_USER_QUOTA_MB": str(QUOTA_MB),
        "ANCORA_REMOTE_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000",
        "ANCORA_ADMIN_TOKEN": ADMIN_TOKEN,
        "ANCORA_AIRFLOW_PASSWORD": AIRFLOW_PASSWORD,
    }
    db_url = f"sqlite:///{state / 'task_service' / 'tasks.db'}"
    add_user(db_url, "alice", "alice-password")
    add_user(db_url, "bob", "bob-password")
    add_user(db_url, "dave", "dave-password")
    add_user(db_url, "ada", "ada-password", admin=True)
    add_user(db_url, "root-admin", "admin-password", admin=True)
    with running_task_service(state, env) as url:
        yield {"url": url, "state": state, "port": int(url.rsplit(":", 1)[1])}


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
        "execution_command": "python3 job.py",
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


def token(service: dict[str, Any], user: str, password: str) -> str:
    answer = httpx.post(f"{service['url']}/login", json={"username": user, "password": password}, timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def tasks_folders(service: dict[str, Any]) -> set[str]:
    folder = service["state"] / "task_service" / "tasks"
    return set(os.listdir(folder)) if folder.exists() else set()


def test_a_local_job_runs_as_the_unprivileged_account_with_its_parameters_and_data(
    service: dict[str, Any], zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    use(service, monkeypatch, "ada", "ada-password")
    submitted = submit(zips, experiment_name="local_check", n_estimators=2, random_state=42)
    assert submitted["experiment_name"] == "local_check"
    assert submitted["instance_type"] == "cpu"
    assert submitted["job_id"] and submitted["id"] != submitted["job_id"]

    done = wait_for(submitted["id"], FINISHED)
    log = TaskHandler(submitted["id"]).get_task_logs().json()["log"]
    assert done["status"] == "COMPLETED", log
    assert done["model_params"] == {"n_estimators": 2, "random_state": 42}
    assert f"uid {NOBODY}" in log
    assert "args ['--n_estimators=2', '--random_state=42']" in log
    assert "dataset ['rows.csv']" in log
    assert "mode no-mlflow" in log
    assert TaskHandler(submitted["id"]).get_job_run_id().json()["run_id"] is None
    task_folder = service["state"] / "task_service" / "tasks" / submitted["id"]
    assert stat.S_IMODE(task_folder.stat().st_mode) == 0o700


def test_a_failing_job_is_failed_with_its_log(
    service: dict[str, Any], zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    use(service, monkeypatch, "ada", "ada-password")
    submitted = submit(zips, fail=True)
    done = wait_for(submitted["id"], FINISHED)
    assert done["status"] == "FAILED"
    assert "exit code 3" in done["detail"]
    assert "args ['--fail=true']" in TaskHandler(submitted["id"]).get_task_logs().json()["log"]


def test_cancel_stops_a_local_job(
    service: dict[str, Any], zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    use(service, monkeypatch, "ada", "ada-password")
    submitted = submit(zips, sleep=1)
    assert wait_for(submitted["id"], {"RUNNING"})["status"] == "RUNNING"
    TaskHandler(submitted["id"]).cancel_task()
    done = wait_for(submitted["id"], FINISHED, timeout=20)
    assert done["status"] == "CANCELLED"
    pid = int(done["external_job_id"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        if "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_local_job_cannot_read_the_services_secrets_or_another_tasks_files(
    service: dict[str, Any], zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue #15's critical attack, as an admin now (plain users cannot reach the local runner at all):
    print the environment, every readable /proc/*/environ, the JWT signing key and another user's
    task folder. The job runs as nobody with a minimal environment: none of it is there."""
    use(service, monkeypatch, "alice", "alice-password")
    with pytest.raises(ValueError, match="403"):
        submit(zips)
    use(service, monkeypatch, "root-admin", "admin-password")
    victim = submit(zips)
    assert wait_for(victim["id"], FINISHED)["status"] == "COMPLETED"
    key_file = service["state"] / "task_service" / "jwt_secret"
    other_task = service["state"] / "task_service" / "tasks" / victim["id"]
    assert key_file.exists() and other_task.exists()
    probe = (
        "id -u; echo ENV-START; env; echo ENV-END; "
        "for f in /proc/[0-9]*/environ; do tr '\\000' '\\n' < $f; done 2>/dev/null; "
        f"cat {key_file} || echo KEY-REFUSED; "
        f"ls {other_task} || echo FOLDER-REFUSED; "
        f"ls {other_task.parent} || echo TASKS-REFUSED; "
        f"cat {service['state'] / 'task_service' / 'tasks.db'} > /dev/null || echo DB-REFUSED"
    )
    use(service, monkeypatch, "ada", "ada-password")
    attack = submit(zips, execution_command=f"sh -c {shlex_quote(probe)}")
    assert wait_for(attack["id"], FINISHED)["status"] == "COMPLETED"
    log = TaskHandler(attack["id"]).get_task_logs().json()["log"]
    assert log.splitlines()[0] == str(NOBODY)
    for secret in (ADMIN_TOKEN, AIRFLOW_PASSWORD, key_file.read_text().strip()):
        assert secret not in log
    for refused in ("KEY-REFUSED", "FOLDER-REFUSED", "TASKS-REFUSED", "DB-REFUSED"):
        assert refused in log
    environment = log.split("ENV-START\n", 1)[1].split("ENV-END", 1)[0]
    names = {line.split("=", 1)[0] for line in environment.splitlines() if "=" in line}
    allowed = {"PATH", "HOME", "TMPDIR", "LANG", "ANCORA_TASK_ID", "DATASET_NAME", "DATASET_DIR"}
    assert names - {"ANCORA_MODEL_PARAMS", "PWD", "SHLVL", "_", "OLDPWD"} == allowed
    home = next(line for line in environment.splitlines() if line.startswith("HOME="))
    assert not home.removeprefix("HOME=").startswith(str(service["state"])), "jobs work outside the state"


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def test_wrong_passwords_and_missing_tokens_are_401(
    service: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="401"):
        Server_connection(
            username="alice", password="wrong", node_name="127.0.0.1", port=service["port"]
        ).login()
    with pytest.raises(ValueError, match="401"):
        Server_connection(
            username="nobody", password="x" * 12, node_name="127.0.0.1", port=service["port"]
        ).login()
    assert requests.get(f"{service['url']}/tasks", timeout=10).status_code == 401
    forged = requests.get(
        f"{service['url']}/tasks", headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."}, timeout=10
    )
    assert forged.status_code == 401
    use(service, monkeypatch, "alice", "alice-password")
    login = Server_connection().login()
    assert login.status_code == 200 and login.json()["token_type"] == "bearer"


def test_a_ten_year_token_signed_with_the_stolen_key_is_refused(service: dict[str, Any]) -> None:
    token(service, "alice", "alice-password")
    key = (service["state"] / "task_service" / "jwt_secret").read_text().strip()
    now = int(time.time())
    claims = {"sub": "alice", "admin": True, "ver": 0, "iat": now, "exp": now + 10 * 365 * 86400}
    forged = jwt.encode(claims, key, algorithm="HS256")
    answer = httpx.get(f"{service['url']}/tasks", headers={"Authorization": f"Bearer {forged}"}, timeout=10)
    assert answer.status_code == 401 and "lives longer" in answer.json()["detail"]


def test_failed_logins_are_rate_limited_with_retry_after(service: dict[str, Any]) -> None:
    url = f"{service['url']}/login"
    for _ in range(5):
        assert (
            httpx.post(url, json={"username": "dave", "password": "guess-1234"}, timeout=30).status_code
            == 401
        )
    refused = httpx.post(url, json={"username": "dave", "password": "guess-5678"}, timeout=30)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 300
    right = httpx.post(url, json={"username": "dave", "password": "dave-password"}, timeout=30)
    assert right.status_code == 429, "while locked, the right password is not told apart from a guess"
    assert (
        httpx.post(url, json={"username": "bob", "password": "bob-password"}, timeout=30).status_code == 200
    )


def test_only_the_owner_or_an_admin_sees_and_cancels_a_task(
    service: dict[str, Any], zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    use(service, monkeypatch, "ada", "ada-password")
    task_id = submit(zips)["id"]
    assert task_id in {task["id"] for task in Server_connection().request("GET", "/tasks").json()}

    use(service, monkeypatch, "bob", "bob-password")
    for call in (TaskHandler(task_id).get_task_status, TaskHandler(task_id).cancel_task):
        with pytest.raises(ValueError, match="404"):
            call()
    assert task_id not in {task["id"] for task in Server_connection().request("GET", "/tasks").json()}

    use(service, monkeypatch, "root-admin", "admin-password")
    owners = {task["owner"] for task in Server_connection().request("GET", "/tasks").json()}
    assert {"ada"} <= owners
    assert TaskHandler(task_id).get_task_status().json()["owner"] == "ada"


def bad_zip(path: Path, name: str, data: bytes = b"x", symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, data)
    return path


def test_bad_uploads_and_fields_are_400_with_the_reason_and_leave_nothing(
    service: dict[str, Any], zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use(service, monkeypatch, "ada", "ada-password")
    before = tasks_folders(service)
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("just text")
    many_zeros = tmp_path / "many.zip"
    with zipfile.ZipFile(many_zeros, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(4):
            archive.writestr(f"part{index:02}.bin", b"\0" * (1 << 20))
    twice = tmp_path / "twice.zip"
    with zipfile.ZipFile(twice, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("job.py", "print(1)")
        archive.writestr("job.py", "print(2)")
    odd_name = tmp_path / "bad name!.zip"
    shutil.copy(zips["dataset"], odd_name)
    cases = [
        ({"processor": bad_zip(tmp_path / "slip.zip", "../../../../outside.py")}, {}, "zip slip"),
        ({"processor": bad_zip(tmp_path / "abs.zip", "/tmp/ancora-owned.py")}, {}, "absolute path"),
        (
            {"dataset": bad_zip(tmp_path / "link.zip", "data", b"/etc/shadow", symlink=True)},
            {},
            "symbolic link",
        ),
        ({"dataset": bad_zip(tmp_path / "bomb.zip", "zeros", b"\0" * (6 * 1024 * 1024))}, {}, "zip bomb"),
        ({"dataset": many_zeros}, {}, "the archive inflates"),
        ({"processor": twice}, {}, "appears twice"),
        ({"dataset": not_zip}, {}, "not a zip file"),
        ({"dataset": odd_name}, {}, "dataset_name 'bad name!'"),
        ({}, {"runner_location": "mars"}, "runner_location"),
        ({}, {"execution_mode": "yolo"}, "execution_mode"),
        ({}, {"execution_command": "python 'unclosed"}, "cannot be split"),
        ({}, {"execution_command": "mlflow run p --run-id " + "a" * 32}, "may not set --run-id"),
        ({}, {"experiment_name": "x\n#SBATCH --x"}, "experiment_name"),
    ]
    for files, fields, reason in cases:
        with pytest.raises(ValueError, match="400") as refusal:
            submit({**zips, **files}, **fields)
        assert reason in str(refusal.value)
    with pytest.raises(ValueError, match="not an identifier"):
        submit(zips, **{"bad-name": 1})
    assert tasks_folders(service) == before
    assert not Path("/tmp/ancora-owned.py").exists()
    assert not (service["state"] / "outside.py").exists()


def multipart_head(boundary: str, field: str = "dataset_file") -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="d.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()


def send_headers(port: int, lines: list[str]) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=20)
    connection.sendall(
        ("\r\n".join(["POST /tasks HTTP/1.1", f"Host: 127.0.0.1:{port}", *lines]) + "\r\n\r\n").encode()
    )
    return connection


def status_of(connection: socket.socket) -> int:
    """The status of the answer; a timeout here means the server was still reading the body."""
    data = b""
    while b"\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_an_upload_is_refused_by_its_login_and_declared_size_before_its_body_is_read(
    service: dict[str, Any],
) -> None:
    """Issue #15: an 80 MB multipart body without a token was spooled to disk, then answered 401.
    Here only the first 64 KiB are sent: the answer must come without waiting for the rest."""
    before = tasks_folders(service)
    boundary = "x" * 16
    declared = 80 * 1024 * 1024
    for headers, expected in (
        ([], 401),
        ([f"Authorization: Bearer {token(service, 'ada', 'ada-password')}"], 413),
    ):
        connection = send_headers(
            service["port"],
            [
                *headers,
                f"Content-Type: multipart/form-data; boundary={boundary}",
                f"Content-Length: {declared}",
            ],
        )
        with connection:
            connection.sendall(multipart_head(boundary) + b"\0" * 65536)
            started = time.monotonic()
            assert status_of(connection) == expected
            assert time.monotonic() - started < 15
    assert tasks_folders(service) == before


def test_a_body_without_a_length_is_counted_and_stopped_at_the_limit(service: dict[str, Any]) -> None:
    """Chunked transfer, no Content-Length: the service counts while streaming and stops at the limit."""
    before = tasks_folders(service)
    boundary = "y" * 16
    connection = send_headers(
        service["port"],
        [
            f"Authorization: Bearer {token(service, 'ada', 'ada-password')}",
            f"Content-Type: multipart/form-data; boundary={boundary}",
            "Transfer-Encoding: chunked",
        ],
    )
    chunk = os.urandom(256 * 1024)
    sent = 0
    with connection:
        pieces = [multipart_head(boundary), *([chunk] * 320)]
        try:
            for piece in pieces:
                connection.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert status_of(connection) == 413
    assert sent < 60 * 1024 * 1024, "the service stopped reading long before the 80 MB were sent"
    deadline = time.monotonic() + 5
    while tasks_folders(service) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tasks_folders(service) == before


def test_malformed_bodies_get_a_clear_4xx(service: dict[str, Any], zips: dict[str, Path]) -> None:
    headers = {"Authorization": f"Bearer {token(service, 'ada', 'ada-password')}"}
    url = f"{service['url']}/tasks"
    as_json = httpx.post(url, json={"dataset_file": "x"}, headers=headers, timeout=30)
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["detail"]
    broken = httpx.post(
        url,
        content=b"--zz\r\nno headers here",
        headers={**headers, "Content-Type": "multipart/form-data; boundary=zz"},
        timeout=30,
    )
    assert broken.status_code == 400
    only_one = httpx.post(
        url, files={"dataset_file": ("d.zip", zips["dataset"].read_bytes())}, headers=headers
    )
    assert only_one.status_code == 400 and "processor_file is missing" in only_one.json()["detail"]
    extra = httpx.post(
        url,
        files={"dataset_file": ("d.zip", b"1"), "processor_file": ("p.zip", b"2"), "evil": ("e", b"3")},
        headers=headers,
    )
    assert extra.status_code == 400 and "unexpected file field" in extra.json()["detail"]
    big_login = httpx.post(
        f"{service['url']}/login",
        content=b'{"username": "' + b"a" * (200 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert big_login.status_code == 413
    not_utf8 = httpx.post(
        url,
        files={"dataset_file": ("d.zip", zips["dataset"].read_bytes()), "processor_file": ("p.zip", b"2")},
        data={"experiment_name": "caf\xe9".encode("latin-1")},
        headers=headers,
        timeout=30,
    )
    assert not_utf8.status_code == 400


def test_no_generated_request_gets_a_server_error(service: dict[str, Any]) -> None:
    """Schemathesis generates requests for every operation (with a valid login, so they reach the
    handlers: multipart uploads of random bytes, random ids); none may get a 5xx."""
    headers = {"Authorization": f"Bearer {token(service, 'root-admin', 'admin-password')}"}
    schema = schemathesis.openapi.from_url(f"{service['url']}/openapi.json")
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error], headers=headers, timeout=30)

        call()


def test_the_quota_refuses_a_submission_by_its_declared_size(service: dict[str, Any]) -> None:
    """More than the user's quota (8 MB here) is refused with 507 before the body is read."""
    connection = send_headers(
        service["port"],
        [
            f"Authorization: Bearer {token(service, 'bob', 'bob-password')}",
            "Content-Type: multipart/form-data; boundary=qq",
            f"Content-Length: {9 * 1024 * 1024}",
        ],
    )
    with connection:
        connection.sendall(multipart_head("qq") + b"\0" * 1024)
        assert status_of(connection) == 507


def test_users_add_reset_and_remove_end_earlier_tokens(service: dict[str, Any]) -> None:
    """`users add` (password from the environment, never echoed), a reset, `list` and `remove`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANCORA_")}
    env.update(ANCORA_STATE_DIR=str(service["state"]), ANCORA_NEW_USER_PASSWORD="erin-password-1")

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ancora", "task-service", "users", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    created = cli("add", "erin", "--admin")
    assert created.returncode == 0, created.stderr
    assert "erin-password-1" not in created.stdout + created.stderr
    login = Server_connection("127.0.0.1", "erin", "erin-password-1", service["port"]).login().json()
    assert login["is_admin"] is True
    headers = {"Authorization": f"Bearer {login['access_token']}"}
    assert httpx.get(f"{service['url']}/tasks", headers=headers, timeout=10).status_code == 200
    env["ANCORA_NEW_USER_PASSWORD"] = "erin-password-2"
    reset = cli("add", "erin")
    assert reset.returncode == 0 and "no longer work" in reset.stdout
    assert httpx.get(f"{service['url']}/tasks", headers=headers, timeout=10).status_code == 401
    second = {"Authorization": f"Bearer {token(service, 'erin', 'erin-password-2')}"}
    removed = cli("remove", "erin")
    assert removed.returncode == 0, removed.stderr
    assert httpx.get(f"{service['url']}/tasks", headers=second, timeout=10).status_code == 401
    listed = cli("list")
    assert "ada\tadmin" in listed.stdout and "alice\tuser" in listed.stdout and "erin" not in listed.stdout


def local_settings(monkeypatch: pytest.MonkeyPatch, job_root: Path, **extra: str) -> Any:
    for name, value in {**local_runner_env(job_root), **extra}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return get_settings()


def fields(**overrides: Any) -> Any:
    from ancora.remote.service import SubmissionFields

    values: dict[str, Any] = {
        "dataset_name": None, "runner_location": "laptop", "execution_mode": "no-mlflow",
        "experiment_name": "e", "execution_command": "python3 job.py", "tracking_uri": None,
        "instance_type": "cpu", "account": "default_account", "model_params": {},
    }  # fmt: skip
    return SubmissionFields(**{**values, **overrides})


def test_the_local_runner_is_off_by_default_and_never_runs_jobs_as_root(
    zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch, job_root: Path
) -> None:
    from ancora.remote.jobs import InvalidJob
    from ancora.remote.service import TaskService
    from ancora.remote.store import User

    admin = User("ada", "", True)
    defaults = TaskService(get_settings())
    assert defaults.locations == {"atena02": "hpc"}
    with pytest.raises(InvalidJob, match="runner_location 'local' is unknown"):
        defaults.check(admin, fields(runner_location="local"))
    defaults.close()

    cases = [
        ({"ANCORA_REMOTE_LOCAL_ENABLED": "false"}, "local runner is disabled"),
        ({"ANCORA_REMOTE_LOCAL_RUN_AS": ""}, "local jobs never do"),
        ({"ANCORA_REMOTE_LOCAL_RUN_AS": "root"}, "root"),
        ({"ANCORA_REMOTE_LOCAL_RUN_AS": "no-such-account-here"}, "not an account here"),
    ]
    for extra, reason in cases:
        service = TaskService(local_settings(monkeypatch, job_root, **extra))
        with pytest.raises(InvalidJob, match=reason):
            service.check(admin, fields())
        service.close()


def test_retention_removes_finished_tasks_files_and_the_quota_counts_what_is_kept(
    zips: dict[str, Path], monkeypatch: pytest.MonkeyPatch, job_root: Path
) -> None:
    from ancora.remote.service import QuotaExceeded, TaskService
    from ancora.remote.store import User

    service = TaskService(local_settings(monkeypatch, job_root, ANCORA_REMOTE_USER_QUOTA_MB="0.01"))
    admin = User("ada", "", True)
    with zips["dataset"].open("rb") as data, zips["processor"].open("rb") as code:
        task = service.submit(admin, fields(), ("d.zip", data), ("p.zip", code))
    assert task.disk_bytes > 0
    deadline = time.monotonic() + 60
    while not service.store.get(task.id).status.finished and time.monotonic() < deadline:
        time.sleep(0.2)
    task = service.store.get(task.id)
    assert task.status.value == "COMPLETED"
    job_dir = job_root / task.id
    assert job_dir.is_dir() and job_dir.stat().st_uid == NOBODY
    assert stat.S_IMODE(job_dir.stat().st_mode) == 0o700

    padding = io.BytesIO()
    with zipfile.ZipFile(padding, "w") as archive:
        archive.writestr("noise.bin", os.urandom(12 * 1024))
    padding.seek(0)
    with pytest.raises(QuotaExceeded, match="quota"), zips["dataset"].open("rb") as data:
        service.accept(admin, fields(), ("d.zip", data), ("p.zip", padding))
    assert service.store.disk_usage("ada") == task.disk_bytes

    assert service.purge_expired() == []
    later = (task.finished_at or task.updated_at) + timedelta(
        hours=service.settings.remote_task_retention_hours
    )
    assert service.purge_expired(at=later + timedelta(seconds=1)) == [task.id]
    assert not job_dir.exists() and not Path(task.local_dir).exists()
    assert service.store.disk_usage("ada") == 0
    kept = service.store.get(task.id)
    assert kept.purged_at is not None and "dataset ['rows.csv']" in (kept.log_tail or "")
    service.close()


def test_a_failed_submission_stays_pending_while_retries_are_left(
    zips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the remote_task DAG relies on: only the last attempt records FAILED."""
    import paramiko

    from ancora.remote.execution import start
    from ancora.remote.service import TaskService
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
    hpc = fields(runner_location="atena02", execution_command="python job.py")
    with zips["dataset"].open("rb") as data, zips["processor"].open("rb") as code:
        task = service.accept(User("engineer", "", False), hpc, ("d.zip", data), ("p.zip", code))

    with pytest.raises(Exception, match=r"Unable to connect|refused"):
        start(service.store, service.runners, task.id, record_failure=False)
    retried = service.store.get(task.id)
    assert retried.status.value == "PENDING" and "will retry" in retried.detail
    with pytest.raises(Exception, match=r"Unable to connect|refused"):
        start(service.store, service.runners, task.id, record_failure=True)
    assert service.store.get(task.id).status.value == "FAILED"
    service.close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here (no private CA needed for a loopback test)."""
    import ipaddress
    from datetime import UTC, datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def test_the_client_logs_in_over_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert_file, key_file = self_signed(tmp_path)
    state = tmp_path / "tls-service"
    add_user(f"sqlite:///{state / 'task_service' / 'tasks.db'}", "tls-user", "tls-password")
    env = {
        "ANCORA_REMOTE_EXECUTOR": "inline",
        "ANCORA_TASK_SERVICE_TLS_CERT_FILE": str(cert_file),
        "ANCORA_TASK_SERVICE_TLS_KEY_FILE": str(key_file),
    }
    with running_task_service(state, env) as url:
        assert url.startswith("https://")
        port = int(url.rsplit(":", 1)[1])
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))
        login = Server_connection("https://127.0.0.1", "tls-user", "tls-password", port).login()
        assert login.status_code == 200
        explicit = Server_connection("127.0.0.1", "tls-user", "tls-password", port, scheme="https")
        assert explicit.base_url == url and explicit.login().status_code == 200
        with pytest.raises(requests.exceptions.ConnectionError):
            Server_connection("127.0.0.1", "tls-user", "tls-password", port).login()
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        with pytest.raises(requests.exceptions.SSLError):
            Server_connection("https://127.0.0.1", "tls-user", "tls-password", port).login()
