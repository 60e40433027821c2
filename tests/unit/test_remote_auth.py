"""Task service logins: what a token grants, when it stops, and how guessing is slowed down.

The store is a real SQLite database in the test's state folder; tokens are real HS256 JWTs.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import sqlalchemy as sa

from ancora.config import Settings, get_settings
from ancora.remote.auth import (
    NotAuthenticated,
    hash_password,
    issue_token,
    read_token,
    signing_key,
    signing_key_file,
)
from ancora.remote.login_limits import LoginLimits, TooManyFailures
from ancora.remote.store import TaskStore


@pytest.fixture
def settings() -> Settings:
    return get_settings()


@pytest.fixture
def store(settings: Settings) -> TaskStore:
    store = TaskStore.open(settings.remote_db_url)
    store.add_user("alice", hash_password("alice-password"), is_admin=False)
    return store


def forged(settings: Settings, lifetime: timedelta, **claims: object) -> str:
    """A token signed with the service's own key, as someone who stole the key would make one."""
    issued = datetime.now(UTC)
    body = {"sub": "alice", "admin": True, "ver": 0, "iat": issued, "exp": issued + lifetime, **claims}
    return jwt.encode(body, signing_key(settings), algorithm="HS256")


def test_a_login_token_names_the_user_and_their_token_version(settings: Settings, store: TaskStore) -> None:
    user = store.get_user("alice")
    assert user is not None
    token, lifetime = issue_token(settings, user)
    claims = jwt.decode(token, signing_key(settings), algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["ver"] == 0 and claims["admin"] is False
    assert claims["exp"] - claims["iat"] == lifetime == settings.remote_login_minutes * 60
    assert read_token(settings, store, token).username == "alice"


def test_a_password_reset_or_a_removed_user_ends_every_earlier_token(
    settings: Settings, store: TaskStore
) -> None:
    before = issue_token(settings, store.get_user("alice"))[0]  # type: ignore[arg-type]
    assert store.add_user("alice", hash_password("new-password"), is_admin=False) is False
    with pytest.raises(NotAuthenticated, match="before the user's password changed"):
        read_token(settings, store, before)
    after = issue_token(settings, store.get_user("alice"))[0]  # type: ignore[arg-type]
    assert read_token(settings, store, after).token_version == 1
    assert store.remove_user("alice") is True
    with pytest.raises(NotAuthenticated, match="no longer exists"):
        read_token(settings, store, after)
    assert store.remove_user("alice") is False


def test_a_ten_year_token_signed_with_the_real_key_is_refused(settings: Settings, store: TaskStore) -> None:
    """Issue #15: with the signing key, a token valid for ten years was accepted."""
    with pytest.raises(NotAuthenticated, match="lives longer than a login may"):
        read_token(settings, store, forged(settings, timedelta(days=3650)))
    assert read_token(settings, store, forged(settings, timedelta(minutes=5))).username == "alice"


@pytest.mark.parametrize("missing", ["iat", "ver", "exp", "sub"])
def test_tokens_without_the_required_claims_are_refused(
    settings: Settings, store: TaskStore, missing: str
) -> None:
    issued = datetime.now(UTC)
    body = {"sub": "alice", "ver": 0, "iat": issued, "exp": issued + timedelta(minutes=5)}
    del body[missing]
    with pytest.raises(NotAuthenticated):
        read_token(settings, store, jwt.encode(body, signing_key(settings), algorithm="HS256"))


def test_tokens_of_another_key_or_algorithm_are_refused(settings: Settings, store: TaskStore) -> None:
    issued = datetime.now(UTC)
    body = {"sub": "alice", "ver": 0, "iat": issued, "exp": issued + timedelta(minutes=5)}
    with pytest.raises(NotAuthenticated):
        read_token(settings, store, jwt.encode(body, "x" * 64, algorithm="HS256"))
    with pytest.raises(NotAuthenticated):
        read_token(settings, store, jwt.encode(body, None, algorithm="none"))  # type: ignore[arg-type]


def test_the_signing_key_file_and_the_database_are_private(settings: Settings, store: TaskStore) -> None:
    signing_key(settings)
    key_file = signing_key_file(settings)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    database = Path(settings.remote_db_url.removeprefix("sqlite:///"))
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert len(signing_key(settings)) >= 48, "the generated key is kept and reused"


def test_the_signing_key_file_is_never_readable_by_others_even_while_it_is_written(
    settings: Settings, tmp_path: Path
) -> None:
    """Created 0600 by open(2) itself, whatever the umask: there is no instant of a wider mode."""
    script = (
        "import os, stat, sys\n"
        "os.umask(0)\n"
        "from ancora.config import get_settings\n"
        "from ancora.remote.auth import signing_key, signing_key_file\n"
        "signing_key(get_settings())\n"
        "print(oct(stat.S_IMODE(signing_key_file(get_settings()).stat().st_mode)))\n"
    )
    env = {**os.environ, "ANCORA_STATE_DIR": str(tmp_path / "umask-state")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "0o600"


def test_a_database_made_before_migrations_is_stamped_and_upgraded(tmp_path: Path) -> None:
    """The service's earlier create_all schema (no token_version) opens, keeps its users, and migrates."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TABLE remote_users (username VARCHAR(150) PRIMARY KEY, password_hash VARCHAR(255) "
                "NOT NULL, is_admin BOOLEAN NOT NULL, created_at DATETIME NOT NULL)"
            )
        )
        connection.execute(sa.text("CREATE TABLE remote_tasks (id VARCHAR(32) PRIMARY KEY)"))
        connection.execute(
            sa.text("INSERT INTO remote_users VALUES ('old', :hash, 0, '2026-01-01 00:00:00')"),
            {"hash": hash_password("old-password")},
        )
    engine.dispose()
    store = TaskStore.open(url)
    user = store.get_user("old")
    assert user is not None and user.token_version == 0
    with store.engine.connect() as connection:
        version = connection.execute(sa.text("SELECT version_num FROM remote_alembic_version")).scalar_one()
    assert version == "0002"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failed_logins_are_limited_per_username_and_the_right_password_waits_too() -> None:
    clock = Clock()
    limits = LoginLimits(max_failures=5, max_failures_per_address=100, window_seconds=300, clock=clock)
    for _ in range(5):
        limits.check("alice", "10.0.0.1")
        limits.failed("alice", "10.0.0.1")
        clock.now += 10
    with pytest.raises(TooManyFailures) as refused:
        limits.check("alice", "10.0.0.2")
    assert refused.value.retry_after_seconds == 300 - 50
    limits.check("bob", "10.0.0.2")
    clock.now += 251
    limits.check("alice", "10.0.0.1")


def test_failed_logins_are_limited_per_address_across_usernames() -> None:
    clock = Clock()
    limits = LoginLimits(max_failures=5, max_failures_per_address=20, window_seconds=60, clock=clock)
    for index in range(20):
        limits.failed(f"user{index}", "10.0.0.9")
    with pytest.raises(TooManyFailures, match=r"address 10\.0\.0\.9") as refused:
        limits.check("someone-new", "10.0.0.9")
    assert 1 <= refused.value.retry_after_seconds <= 60
    limits.check("someone-new", "10.0.0.10")


def test_a_success_clears_the_usernames_failures_and_tracking_stays_bounded() -> None:
    limits = LoginLimits(max_failures=3, max_failures_per_address=10**9, window_seconds=60)
    for _ in range(2):
        limits.failed("carol", "10.0.0.3")
    limits.succeeded("carol")
    for _ in range(2):
        limits.failed("carol", "10.0.0.3")
    limits.check("carol", "10.0.0.3")
    for index in range(30_000):
        limits.failed(f"random-{index}", "10.0.0.4")
    assert len(limits._failures) <= 10_000


def test_folders_and_a_database_an_earlier_version_left_open_are_closed(settings: Settings) -> None:
    """Task folders used to be 0755 and the SQLite database 0644; the service closes them on start."""
    from ancora.remote.service import TaskService

    root = settings.state_dir / "task_service"
    old_task = root / "tasks" / ("a" * 32)
    old_task.mkdir(parents=True, mode=0o755)
    old_task.chmod(0o755)
    root.chmod(0o755)
    database = root / "tasks.db"
    TaskStore.open(settings.remote_db_url).engine.dispose()
    database.chmod(0o644)
    TaskService(settings).close()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(old_task.stat().st_mode) == 0o700
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
