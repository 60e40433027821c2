"""A young stack is not a broken one: no champion yet and too little data are states with a reason.

The DAGs end such runs skipped with the reason, the UI shows "waiting for the first champion" with
the rows still needed; a registry that is down or a model that does not load still fail.
"""

from __future__ import annotations

from dataclasses import dataclass

from ancora.config import Settings


@dataclass(frozen=True)
class YoungState:
    """How far the stack is from its first champion."""

    validated_rows: int
    rows_needed: int
    champion_version: str | None

    @property
    def rows_still_needed(self) -> int:
        return max(self.rows_needed - self.validated_rows, 0)

    @property
    def waiting(self) -> bool:
        return self.champion_version is None

    def message(self) -> str:
        if not self.waiting:
            return f"champion: version {self.champion_version}"
        if self.rows_still_needed:
            return (
                f"waiting for the first champion: {self.validated_rows} validated rows stored, "
                f"{self.rows_still_needed} more needed before training starts (ANCORA_TRAIN_MIN_ROWS="
                f"{self.rows_needed})"
            )
        return (
            f"waiting for the first champion: {self.validated_rows} validated rows stored, enough to "
            "train; the next covertype_train run registers it"
        )


def champion_missing_reason(settings: Settings) -> str | None:
    """Why there is nothing to score with yet, or None when the alias points at a version.

    Raises RegistryUnavailable when the registry cannot be asked: that is a failure, not a state.
    """
    from ancora.serving.registry import ChampionMissing, ModelRegistry, configure_mlflow_http

    configure_mlflow_http(settings)
    try:
        ModelRegistry(settings).current_version()
    except ChampionMissing as missing:
        return f"no champion yet ({missing}); nothing to score with until the first model is promoted"
    return None


def validated_rows(settings: Settings) -> int:
    from ancora.store import open_raw_store

    store = open_raw_store(settings.data_db_url)
    try:
        return store.stats(settings.group_number).total_rows
    finally:
        store.engine.dispose()


def young_state(settings: Settings, champion_version: str | None) -> YoungState:
    return YoungState(validated_rows(settings), settings.train_min_rows, champion_version)
