"""Passwords and tokens of the task service.

Passwords are stored as Argon2 hashes (pwdlib); a login returns a signed JWT that expires, so the
client sends the password once per session. The signing key comes from settings or is generated
once into the state folder (created 0600, never readable by anyone else even for an instant): there
is no default key anyone could read in the source.

A token names its user and that user's token version; both are checked against the database on every
request, so deleting a user or resetting a password ends every token issued before. A token whose
lifetime (``exp - iat``) is longer than the configured login lifetime is refused even when its
signature is good: a leaked signing key cannot mint ten-year tokens that outlive a key rotation.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from pwdlib import PasswordHash

from ancora.config import Settings
from ancora.private_files import read_or_create_private_file
from ancora.remote.store import TaskStore, User

ALGORITHM = "HS256"
CLOCK_SKEW_SECONDS = 60
"""Tolerance for the clocks of the machines that issue and check a token."""
_hasher = PasswordHash.recommended()
_DUMMY_HASH = _hasher.hash("timing equaliser")


class NotAuthenticated(Exception):
    pass


def signing_key_file(settings: Settings) -> Path:
    return Path(settings.state_dir) / "task_service" / "jwt_secret"


def signing_key(settings: Settings) -> str:
    if settings.remote_jwt_secret is not None:
        return settings.remote_jwt_secret.get_secret_value()
    return read_or_create_private_file(signing_key_file(settings), lambda: secrets.token_urlsafe(48))


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
    claims = {
        "sub": user.username,
        "admin": user.is_admin,
        "ver": user.token_version,
        "iat": issued,
        "exp": issued + lifetime,
    }
    return jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM), int(lifetime.total_seconds())


def read_token(settings: Settings, store: TaskStore, token: str) -> User:
    """The user a token names, re-read from the store: deleted users and reset passwords end tokens."""
    try:
        claims = jwt.decode(
            token,
            signing_key(settings),
            algorithms=[ALGORITHM],
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["exp", "iat", "sub", "ver"]},
        )
    except jwt.PyJWTError as problem:
        raise NotAuthenticated(f"invalid token: {problem}") from problem
    issued, expires = claims["iat"], claims["exp"]
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        raise NotAuthenticated("invalid token: iat and exp must be numbers")
    if expires - issued > settings.remote_login_minutes * 60 + CLOCK_SKEW_SECONDS:
        raise NotAuthenticated(
            "invalid token: it lives longer than a login may (ANCORA_REMOTE_LOGIN_MINUTES)"
        )
    user = store.get_user(str(claims["sub"]))
    if user is None:
        raise NotAuthenticated("the token's user no longer exists")
    if claims["ver"] != user.token_version:
        raise NotAuthenticated("the token was issued before the user's password changed; log in again")
    return user
