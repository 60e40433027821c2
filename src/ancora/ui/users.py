"""The app's users: a YAML file outside the repository, Argon2 password hashes, one role each.

Hashes come from pwdlib (Argon2id), the hasher the task service already uses, so the project has one
password scheme. The file lives in the state folder by default (``<state_dir>/ui/users.yaml``),
is written atomically with mode 0600, and holds no clear-text password. ``ancora users add``
creates the first admin; there is no default account.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pwdlib import PasswordHash

MIN_PASSWORD_LENGTH = 8
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")

_hasher = PasswordHash.recommended()
_DUMMY_HASH = _hasher.hash("equalises the time of an unknown user's login")


class Role(StrEnum):
    ADMIN = "Admin"
    DISPATCH_USER = "DispatchUser"
    SHOWROOM_USER = "ShowroomUser"


class Page(StrEnum):
    PREDICT = "Predict"
    MODELS = "Models"
    PIPELINES = "Pipelines"
    MONITOR = "Monitor"
    DISPATCHES = "Dispatches"
    TASKS = "Tasks"


PAGES_BY_ROLE: dict[Role, tuple[Page, ...]] = {
    Role.ADMIN: (Page.PREDICT, Page.MODELS, Page.PIPELINES, Page.MONITOR, Page.DISPATCHES, Page.TASKS),
    Role.DISPATCH_USER: (Page.DISPATCHES, Page.MONITOR, Page.TASKS),
    Role.SHOWROOM_USER: (Page.PREDICT, Page.TASKS),
}
"""Which pages each role sees, in menu order; a page not listed is not even registered."""


def pages_for(role: Role) -> tuple[Page, ...]:
    return PAGES_BY_ROLE[role]


def may_administer(role: Role) -> bool:
    """Pausing and unpausing DAGs is for admins only."""
    return role is Role.ADMIN


class UsersFileError(ValueError):
    """The users file cannot be read or a user cannot be saved; the message says why."""


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    password_hash: str
    created_at: str = ""

    def as_yaml(self) -> dict[str, str]:
        return {"role": self.role.value, "password_hash": self.password_hash, "created_at": self.created_at}


def parse_role(value: str) -> Role:
    for role in Role:
        if value.strip().lower() == role.value.lower():
            return role
    choices = ", ".join(role.value for role in Role)
    raise UsersFileError(f"unknown role {value!r}: choose one of {choices}")


def check_username(username: str) -> str:
    if not USERNAME_PATTERN.fullmatch(username):
        raise UsersFileError(
            f"invalid username {username!r}: 1-64 letters, digits or . _ @ -, starting with a letter or digit"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsersFileError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    return password


class UserStore:
    """The users file; every call reads it again, so a user added from the CLI can log in at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, User]:
        if not self.path.exists():
            return {}
        try:
            content: Any = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as problem:
            raise UsersFileError(f"cannot read the users file {self.path}: {problem}") from problem
        entries = content.get("users") if isinstance(content, dict) else None
        if not isinstance(entries, dict):
            raise UsersFileError(f"{self.path} has no 'users:' mapping")
        users: dict[str, User] = {}
        for name, entry in entries.items():
            if not isinstance(entry, dict) or "password_hash" not in entry or "role" not in entry:
                raise UsersFileError(f"{self.path}: user {name!r} needs 'role' and 'password_hash'")
            users[str(name)] = User(
                username=str(name),
                role=parse_role(str(entry["role"])),
                password_hash=str(entry["password_hash"]),
                created_at=str(entry.get("created_at", "")),
            )
        return users

    def add(self, username: str, role: Role, password: str) -> tuple[User, bool]:
        """Create the user or replace its role and password; returns the user and whether it is new."""
        check_username(username)
        check_password(password)
        users = self.load()
        created = username not in users
        previous = users.get(username)
        user = User(
            username=username,
            role=role,
            password_hash=_hasher.hash(password),
            created_at=previous.created_at if previous else datetime.now(UTC).isoformat(timespec="seconds"),
        )
        users[username] = user
        self._write(users)
        return user, created

    def remove(self, username: str) -> bool:
        users = self.load()
        if users.pop(username, None) is None:
            return False
        self._write(users)
        return True

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches; an unknown name costs the same hashing as a wrong one."""
        user = self.load().get(username)
        if user is None:
            _hasher.verify(password, _DUMMY_HASH)
            return None
        return user if _hasher.verify(password, user.password_hash) else None

    def _write(self, users: dict[str, User]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        document = {
            "users": {name: user.as_yaml() for name, user in sorted(users.items())},
        }
        text = (
            "# Users of the Ancora Streamlit app. Managed by `ancora users add|remove|list`.\n"
            "# Argon2id hashes only; roles: Admin, DispatchUser, ShowroomUser.\n"
            + yaml.safe_dump(document, sort_keys=False)
        )
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".users-", suffix=".yaml")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:  # mkstemp: mode 0600 from the start
                out.write(text)
            Path(temporary).replace(self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
