"""What every role shares: the ``ANCORA_`` prefix, the state folder, the bind address, and how a
setting whose default follows other settings is declared and documented.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

ENV_PREFIX = "ANCORA_"
DERIVED_DEFAULT = "derived_default"
"""Key of a field's json_schema_extra naming the rule its default follows (for the generated docs)."""

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def derived(rule: str, factory: Callable[[dict[str, Any]], Any] | Callable[[], Any], description: str) -> Any:
    """A field whose default is computed once, at load, from the settings validated before it.

    ``rule`` says in words what the default is; the README and .env.example show it instead of a
    value that depends on the machine. ``model_copy(update=...)`` does not compute it again: build
    new settings to move state_dir.
    """
    return Field(default_factory=factory, description=description, json_schema_extra={DERIVED_DEFAULT: rule})


def derived_rule(extra: Any) -> str | None:
    return str(extra[DERIVED_DEFAULT]) if isinstance(extra, dict) and DERIVED_DEFAULT in extra else None


def json_text(empty: Any) -> BeforeValidator:
    """Parse a variable holding JSON as text at load; a blank value means ``empty``.

    Used with ``NoDecode``, so a typo is a validation error on the field (named by its variable)
    rather than pydantic-settings' decoding error.
    """

    def parse(value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else empty
        return value

    return BeforeValidator(parse)


def comma_separated(value: Any) -> Any:
    """``a, b,c`` as ``["a", "b", "c"]``; lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class CoreSettings(BaseSettings):
    """The settings every role reads; each role's class adds its own."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    state_dir: Path = Field(
        default=Path(".ancora"),
        description="Folder for all native state: databases, logs, pid files, MLflow artifacts.",
    )
    bind_host: str = Field(
        default="127.0.0.1",
        description="Address every native service listens on; compose sets 0.0.0.0 inside containers.",
    )

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"


def variable_name(field_name: str) -> str:
    return f"{ENV_PREFIX}{field_name}".upper()


class InvalidSettings(ValueError):
    """Settings that cannot be loaded, one ``ANCORA_X: problem`` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))

    @classmethod
    def from_validation_error(cls, error: ValidationError) -> InvalidSettings:
        problems = []
        for problem in error.errors(include_url=False):
            if problem["type"] == "default_factory_not_called":  # follows from a problem listed
                continue
            message = problem["msg"].removeprefix("Value error, ")
            if not problem["loc"]:  # a check across settings: its message names the variables
                problems.append(message)
                continue
            field, *inside = problem["loc"]
            variable = variable_name(str(field))
            if message.startswith(variable) and not inside:  # a validator's own message names it
                problems.append(message)
                continue
            where = f" (at {'.'.join(str(part) for part in inside)})" if inside else ""
            problems.append(f"{variable}{where}: {message}")
        return cls(problems)


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """One role's settings from the environment; raises InvalidSettings naming each bad variable."""
    try:
        return cls()
    except ValidationError as error:
        raise InvalidSettings.from_validation_error(error) from None
    except SettingsError as error:
        raise InvalidSettings([str(error)]) from None
