"""A person approves, edits or rejects a batch before the robot makes it.

The flow pauses with Prefect's pause-for-input: the dashboard shows the batch and a form
(``BatchDecision``); ``sdl approve`` fills the same form from a terminal. An edit is checked
against the campaign's bounds, choices and constraints before it is accepted; a refused
edit pauses again with the reason. Every decision is stored as an ``approval`` event.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, Mapping

from prefect import get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from orchestrator.errors import OrchestratorError
from orchestrator.run.campaign import Campaign, Proposal


class ApprovalTimeout(OrchestratorError, RuntimeError):
    """Nobody decided on a batch in time; it was not made."""


class BatchDecision(RunInput):
    """The approval form. ``edits`` maps an experiment id to the values to change, e.g.
    ``{"12": {"red": 40.0}}``."""

    decision: Literal["approve", "edit", "reject"] = "approve"
    note: str = ""
    edits: dict[str, dict[str, Any]] = {}


def review(campaign: Campaign, batch: list[Proposal], announce: Callable[[str], None]) -> list[Proposal] | None:
    """Pause the flow for a person's decision when the campaign asks for one; the batch to make, or None.

    An edit that breaks a bound or constraint is refused (stored as ``approval_refused``) and the
    flow pauses again with the reason. ``announce(step)`` tells the progress display what waits.
    Raises ``ApprovalTimeout`` when nobody answers within ``approval.timeout_hours``.
    """
    if not needs_approval(campaign, batch):
        return batch
    settings, problems, attempt = campaign.spec.approval, [], 0
    while True:
        attempt += 1
        announce(f"iteration {batch[0].iteration} · waiting for approval")
        form = BatchDecision.with_initial_data(description=describe(batch, problems))
        try:
            decision = pause_flow_run(wait_for_input=form, timeout=int(settings.timeout_hours * 3600),
                                      poll_interval=max(1, int(settings.poll_seconds)),
                                      key=f"approval-{batch[0].iteration}-{attempt}")
        except Exception as err:
            if type(err).__name__ != "FlowPauseTimeout":
                raise
            raise ApprovalTimeout(
                f"no decision on the batch of iteration {batch[0].iteration} within {settings.timeout_hours:g} h; "
                "nothing was made", hint=f"sdl resume {campaign.spec.name} asks again") from None
        problems = edit_problems(campaign, batch, decision.edits) if decision.decision == "edit" else []
        if not problems:
            return apply_decision(campaign, batch, decision)
        campaign.store.record_event(campaign.info.id, "approval_refused",
                                    {"iteration": batch[0].iteration, "edits": dict(decision.edits), "problems": problems})
        get_run_logger().warning("edit refused: %s", "; ".join(problems))


def needs_approval(campaign: Campaign, batch: list[Proposal]) -> bool:
    """Whether ``batch`` waits for a person, by the campaign's ``approval.mode``."""
    mode = campaign.spec.approval.mode
    if mode == "each_batch":
        return True
    if mode == "on_anomaly":
        previous = [e for e in campaign.experiments() if e.iteration == batch[0].iteration - 1]
        return any(e.status == "failed" for e in previous)
    return False


def describe(batch: list[Proposal], problems: list[str]) -> str:
    """Markdown shown above the form: the batch as a table, and why a previous answer was refused."""
    names = list(batch[0].params)
    lines = [f"Batch of iteration {batch[0].iteration}: approve, edit (values by experiment id) or reject.", ""]
    if problems:
        lines += ["**Previous answer refused:** " + "; ".join(problems), ""]
    lines += ["| id | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    lines += ["| " + " | ".join([str(p.id)] + [_show(p.params[n]) for n in names]) + " |" for p in batch]
    return "\n".join(lines)


def edit_problems(campaign: Campaign, batch: list[Proposal], edits: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Why ``edits`` cannot be applied to ``batch`` (empty when they can)."""
    by_id = {str(p.id): p for p in batch}
    problems = []
    for key, changes in edits.items():
        proposal = by_id.get(str(key))
        if proposal is None:
            problems.append(f"experiment {key} is not in this batch (ids {', '.join(by_id)})")
            continue
        for name, value in changes.items():
            problem = _value_problem(campaign, name, value)
            if problem:
                problems.append(f"experiment {key}: {problem}")
        if not problems:
            merged = {**proposal.params, **changes}
            if not campaign.space.is_feasible(merged):
                problems.append(f"experiment {key}: {merged} breaks a constraint of the campaign")
    return problems


def apply_decision(campaign: Campaign, batch: list[Proposal], decision: BatchDecision) -> list[Proposal] | None:
    """Store ``decision`` and return the batch to make (edited), or None when it was rejected."""
    store, campaign_id = campaign.store, campaign.info.id
    store.record_event(campaign_id, "approval", {"iteration": batch[0].iteration, "decision": decision.decision,
                                                "note": decision.note, "edits": dict(decision.edits),
                                                "experiment_ids": [p.id for p in batch]})
    if decision.decision == "reject":
        for p in batch:
            store.abandon(p.id, f"rejected at approval: {decision.note or 'no note'}")
        return None
    made = []
    for p in batch:
        changes = decision.edits.get(str(p.id)) if decision.decision == "edit" else None
        if changes:
            edited = store.edit_proposal(p.id, {**p.params, **changes}, decision.note)
            made.append(Proposal(p.id, edited.params, p.iteration, p.info))
        else:
            made.append(p)
    return made


def _value_problem(campaign: Campaign, name: str, value: Any) -> str | None:
    try:
        parameter = campaign.spec.parameter(name)
    except StopIteration:
        return f"{name!r} is not a parameter; use one of: {', '.join(p.name for p in campaign.spec.parameters)}"
    if getattr(parameter, "type", None) == "fixed" or getattr(parameter, "fixed", False):
        return f"{name} is fixed; it cannot be edited"
    if parameter.type == "categorical":
        return None if str(value) in map(str, parameter.values) else (
            f"{name}={value!r} is not one of {', '.join(map(str, parameter.values))}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{name}={value!r} is not a finite number"
    if parameter.values is not None:  # discrete levels
        return None if any(math.isclose(value, v) for v in parameter.values) else (
            f"{name}={value!r} is not one of the levels {', '.join(map(str, parameter.values))}")
    lower, upper = parameter.bounds
    if not lower <= value <= upper:
        return f"{name}={value!r} is outside its bounds [{lower:g}, {upper:g}]"
    if parameter.type == "integer" and value != int(value):
        return f"{name}={value!r} is not a whole number"
    return None


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
