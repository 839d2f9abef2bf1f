"""How an objective turns a measured value into "higher is better", shared by the campaign schema's
``Objective`` and the light reader of stored files (``orchestrator.spec.stored``); no pydantic here."""

from __future__ import annotations


def goal_score(direction: str | None, target: float | None, value: float) -> float:
    """``value`` as "higher is better": y (maximize), -y (minimize), or -|y - target|."""
    if target is not None:
        return -abs(float(value) - target)
    return float(value) if direction == "maximize" else -float(value)
