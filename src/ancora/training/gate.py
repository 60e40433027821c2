"""The promotion gate: register every best candidate, move `champion` only when it is better.

The challenger and the champion are scored on the same frozen evaluation set; the champion alias
moves when the challenger's macro F1 beats the champion's by more than the margin, or when there is
no champion yet. The decision and both scores go into the version's description and tags, so a
reviewer reading the registry sees why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

CHAMPION = "champion"
CHALLENGER = "challenger"

FIRST = "first"
PROMOTED = "promoted"
KEPT = "kept"


@dataclass(frozen=True)
class GateDecision:
    decision: str
    """first (no champion yet), promoted (beat it by more than the margin) or kept (did not)."""
    challenger_macro_f1: float
    champion_macro_f1: float | None
    margin: float
    champion_version: str | None
    note: str = ""
    """Said with the decision, e.g. that this run drew the evaluation set both models were scored on."""

    @property
    def promote(self) -> bool:
        return self.decision in (FIRST, PROMOTED)

    @property
    def reason(self) -> str:
        challenger = f"challenger macro F1 {self.challenger_macro_f1:.4f}"
        if self.champion_macro_f1 is None:
            verdict = f"{challenger}; no champion yet, so it becomes the first champion"
        else:
            champion = f"champion v{self.champion_version} macro F1 {self.champion_macro_f1:.4f}"
            needed = self.champion_macro_f1 + self.margin
            beats = "beats" if self.promote else "does not beat"
            verdict = f"{challenger} {beats} {champion} + margin {self.margin:.4f} (= {needed:.4f})"
        return f"{verdict}; {self.note}" if self.note else verdict

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reason": self.reason}


def decide(
    challenger_macro_f1: float,
    champion_macro_f1: float | None,
    margin: float,
    champion_version: str | None,
    note: str = "",
) -> GateDecision:
    """Strictly better than champion + margin promotes; equal or within the margin keeps the champion."""
    if champion_macro_f1 is None:
        decision = FIRST
    elif challenger_macro_f1 > champion_macro_f1 + margin:
        decision = PROMOTED
    else:
        decision = KEPT
    return GateDecision(decision, challenger_macro_f1, champion_macro_f1, margin, champion_version, note)


def current_champion_version(client: MlflowClient, model_name: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException as problem:
        if problem.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def promote_if_better(client: MlflowClient, model_name: str, version: str, gate: GateDecision) -> None:
    """Point `challenger` at the new version and, when the gate says so, `champion` too.

    Called only after the version's artifacts were loaded back and scored, so no alias can point at
    a version that does not load.
    """
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    if gate.promote:
        client.set_registered_model_alias(model_name, CHAMPION, version)
