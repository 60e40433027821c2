"""Rollback: move the serving alias back to an earlier version, and say on both versions who and why.

``ancora model rollback`` and the Models page's Admin button call ``roll_back``. The inference API
follows the alias by itself within its poll interval. Without ``--to`` the target is the newest
earlier version that was champion once (gate decision first or promoted, or restored by a rollback)
and was not itself rolled back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from ancora.clients.mlflow import MlflowRestClient, ModelVersion

CHAMPION_ONCE = frozenset({"first", "promoted"})
TAG_ROLLED_BACK = "ancora.rolled_back"
TAG_RESTORED = "ancora.restored"


class RollbackRefused(ValueError):
    """The rollback cannot be done as asked; the message says why and what to do."""


@dataclass(frozen=True)
class RollbackResult:
    model: str
    alias: str
    from_version: str
    to_version: str
    by: str
    reason: str
    at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(version: ModelVersion) -> int:
    return int(version.version) if version.version.isdigit() else -1


def was_champion(version: ModelVersion) -> bool:
    return version.tags.get("gate_decision") in CHAMPION_ONCE or f"{TAG_RESTORED}.by" in version.tags


def choose_target(versions: list[ModelVersion], current: str, to: str | None) -> ModelVersion:
    by_number = {v.version: v for v in versions}
    if to is not None:
        target = by_number.get(to)
        if target is None:
            raise RollbackRefused(
                f"version {to} does not exist (versions: {', '.join(sorted(by_number, key=int))})"
            )
        if to == current:
            raise RollbackRefused(f"version {to} is already the champion")
        if target.status and target.status != "READY":
            raise RollbackRefused(f"version {to} is {target.status}, not READY")
        return target
    earlier = [
        v
        for v in versions
        if _number(v) < int(current) and was_champion(v) and f"{TAG_ROLLED_BACK}.by" not in v.tags
    ]
    if not earlier:
        raise RollbackRefused(
            f"no earlier champion than version {current} to go back to; name a version with --to"
        )
    return max(earlier, key=_number)


def roll_back(
    client: MlflowRestClient, name: str, alias: str, by: str, reason: str, to: str | None = None
) -> RollbackResult:
    if not by.strip():
        raise RollbackRefused("say who rolls back (--by; the UI uses the signed-in user)")
    if not reason.strip():
        raise RollbackRefused("say why (--reason): it is recorded on both versions")
    current = client.aliases(name).get(alias)
    if current is None:
        raise RollbackRefused(f"registered model '{name}' has no '{alias}' alias: nothing to roll back")
    target = choose_target(client.model_versions(name), current, to)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    for key, value in {"by": by, "reason": reason, "at": at, "to_version": target.version}.items():
        client.set_version_tag(name, current, f"{TAG_ROLLED_BACK}.{key}", value)
    for key, value in {"by": by, "reason": reason, "at": at, "from_version": current}.items():
        client.set_version_tag(name, target.version, f"{TAG_RESTORED}.{key}", value)
    client.set_alias(name, alias, target.version)
    return RollbackResult(name, alias, current, target.version, by, reason, at)
