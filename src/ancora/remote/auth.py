"""Passwords and tokens of the task service.

Passwords are stored as Argon2 hashes (pwdlib); a login returns a signed JWT that expires, so the
client sends the password once per session. The signing key comes from settings or is generated
once into the state folder: there is no default key anyone could read in the source.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from pwdlib import PasswordHash

from ancora.airflow_env import persistent_secret
from ancora.config import Settings
from ancora.remote.store import TaskStore, User

ALGORITHM = "HS256"
_hasher = PasswordHash.recommended()
_DUMMY_HASH = _hasher.hash("timing equaliser")


class NotAuthenticated(Exception):
    pass


def signing_key(settings: Settings) -> str:
    if settings.remote_jwt_secret is not None:
        return settings.remote_jwt_secret.get_secret_value()
    return persistent_secret(Path(settings.state_dir) / "task_service" / "jwt_secret")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def authenticate(store: TaskStore, username: str, password: str) -> User:
    """The user, or NotAuthenticated; an unknown user costs the same hash as a wrong password."""
    user = store.get_user(username)
    if user is None:
        _hasher.verify(password, _DUMMY_HASH)
        raise NotAuthenticated("wrong username or password")
    if not _hasher.verify(password, user.password_hash):
        raise NotAuthenticated("wrong username or password")
    return user


def issue_token(settings: Settings, user: User) -> tuple[str, int]:
    lifetime = timedelta(minutes=settings.remote_login_minutes)
    issued = datetime.now(UTC)
    claims = {"sub": user.username, "admin": user.is_admin, "iat": issued, "exp": issued + lifetime}
    return jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM), int(lifetime.total_seconds())


def read_token(settings: Settings, store: TaskStore, token: str) -> User:
    """The user a token names, re-read from the store so a deleted user's tokens stop working."""
    try:
        claims = jwt.decode(
            token, signing_key(settings), algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError as problem:
        raise NotAuthenticated(f"invalid token: {problem}") from problem
    user = store.get_user(str(claims.get("sub", "")))
    if user is None:
        raise NotAuthenticated("the token's user no longer exists")
    return user
