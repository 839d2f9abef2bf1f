"""A person approves, edits or rejects a batch before the robot makes it.

The flow pauses with Prefect's pause-for-input: the dashboard shows the batch and a form
(``BatchDecision``); ``sdl approve`` fills the same form from a terminal. An edit is checked
against the campaign's bounds, choices and constraints before it is accepted; a refused
answer pauses again with the reason. Every decision is stored as an ``approval`` event, every
refusal as ``approval_refused``; either way the flow then writes the outcome as a run input under
``outcome_key(pause key)``, which ``sdl approve`` waits for (``serving.answer_approval``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, Mapping

from prefect import get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.input.actions import create_flow_run_input

from orchestrator.errors import OrchestratorError
from orchestrator.planning.constraints import LinearConstraint
from orchestrator.planning.expressions import evaluate, numpy_backend
from orchestrator.planning.space import FEASIBILITY_TOL, SearchSpace
from orchestrator.prefect.artifacts import markdown_text
from orchestrator.run.campaign import MAX_REASON_CHARS, REJECTED_AT_APPROVAL, Campaign, Proposal
from orchestrator.spec.sections import Approval


class ApprovalTimeout(OrchestratorError, RuntimeError):
    """Nobody decided on a batch in time; it was not made."""


class BatchDecision(RunInput):
    """The approval form. ``edits`` maps an experiment id to the values to change, e.g.
    ``{"12": {"red": 40.0}}``."""

    decision: Literal["approve", "edit", "reject"] = "approve"
    note: str = ""
    edits: dict[str, dict[str, Any]] = {}


def pause_key(iteration: int, attempt: int) -> str:
    """Key of the ``attempt``-th pause for the batch of ``iteration`` (Prefect keeps one form per key)."""
    return f"approval-{iteration}-{attempt}"


def outcome_key(key: str) -> str:
    """Run-input key under which the flow says what became of the answer to pause ``key``."""
    return f"{key}-outcome"


def review(campaign: Campaign, batch: list[Proposal], announce: Callable[[str], None]) -> list[Proposal] | None:
    """Pause the flow for a person's decision when the campaign asks for one; the batch to make, or None.

    An answer that cannot be applied (``settle``) is refused (stored as ``approval_refused``) and
    the flow pauses again with the reason. ``announce(step)`` tells the progress display what waits.
    Raises ``ApprovalTimeout`` when nobody answers within ``approval.timeout_hours``.
    """
    if not needs_approval(campaign, batch):
        return batch
    settings, problems, attempt, iteration = campaign.spec.approval, [], 0, batch[0].iteration
    while True:
        attempt += 1
        key = pause_key(iteration, attempt)
        announce(f"iteration {iteration} · waiting for approval")
        answer = wait_for_person(BatchDecision.with_initial_data(description=describe(batch, problems)), key, settings)
        if answer is None:
            raise ApprovalTimeout(
                f"no decision on the batch of iteration {iteration} within {settings.timeout_hours:g} h; "
                "nothing was made", hint=f"sdl resume {campaign.spec.name} asks again")
        decision, problems = settle(campaign, batch, answer)
        if not problems:
            made = apply_decision(campaign, batch, decision)
            _report_outcome(key, decision.decision, [])
            return made
        campaign.store.record_event(campaign.info.id, "approval_refused",
                                    {"iteration": iteration, "decision": answer.decision,
                                     "edits": dict(answer.edits), "problems": problems})
        _report_outcome(key, answer.decision, problems)
        get_run_logger().warning("answer refused: %s", "; ".join(problems))


def wait_for_person(form: type[RunInput], key: str, settings: Approval) -> Any:
    """Pause the flow run under ``key`` until a person submits ``form`` (in the dashboard, or through
    ``orchestrator.prefect.serving``); the submitted form, or None when nobody did within
    ``settings.timeout_hours``. The approval and the plate hand-off (``orchestrator.prefect.handoff``) both wait here."""
    try:
        return pause_flow_run(wait_for_input=form, timeout=max(1, int(settings.timeout_hours * 3600)),
                              poll_interval=max(1, int(settings.poll_seconds)), key=key)
    except Exception as err:
        if type(err).__name__ != "FlowPauseTimeout":
            raise
        return None


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
    """Markdown shown above the form: the batch as a table, and why a previous answer was refused.

    Every value and problem is literal text (``markdown_text``): a refused edit repeats what a
    person typed, and the dashboard would render it as markdown and HTML.
    """
    names = list(batch[0].params)
    lines = [f"Batch of iteration {batch[0].iteration}: approve, edit (values by experiment id) or reject. "
             "Edits sent with approve are made as an edit.", ""]
    if problems:
        lines += ["**Previous answer refused:** " + "; ".join(markdown_text(p) for p in problems), ""]
    lines += ["| id | " + " | ".join(markdown_text(n) for n in names) + " |", "|" + "---|" * (len(names) + 1)]
    lines += ["| " + " | ".join([str(p.id)] + [markdown_text(_show(p.params[n])) for n in names]) + " |"
              for p in batch]
    return "\n".join(lines)


def settle(campaign: Campaign, batch: list[Proposal], answer: BatchDecision) -> tuple[BatchDecision, list[str]]:
    """The decision to apply for ``answer``, and why it cannot be applied (empty when it can).

    Edits are never dropped: edits sent with ``approve`` (the dashboard's default choice) make
    it an ``edit``; edits sent with ``reject``, and an ``edit`` that changes nothing, are refused
    with a line saying what to send instead.
    """
    edits = {str(key): dict(changes) for key, changes in answer.edits.items() if changes}
    note_problem = _note_problem(answer.note)
    if note_problem:
        return answer, [note_problem]
    if answer.decision == "reject":
        return answer, [f"a rejection cannot carry edits ({_listed(edits)}); send decision edit to make the batch "
                        "with them, or reject with no edits"] if edits else []
    if not edits:
        return answer, [] if answer.decision == "approve" else [
            'decision edit names no change; put the new values under edits, e.g. {"12": {"red": 40}}, or approve']
    decision = BatchDecision(decision="edit", note=answer.note, edits=edits)
    return decision, edit_problems(campaign, batch, edits)


def edit_problems(campaign: Campaign, batch: list[Proposal], edits: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Why ``edits`` cannot be applied to ``batch`` (empty when they can), one line per problem."""
    by_id = {str(p.id): p for p in batch}
    problems = []
    for key, changes in edits.items():
        proposal = by_id.get(str(key))
        if proposal is None:
            problems.append(f"experiment {_short(key)} is not in this batch (ids {', '.join(by_id)})")
            continue
        own = [f"experiment {key}: {problem}" for problem in
               (_value_problem(campaign, name, value) for name, value in changes.items()) if problem]
        if not own:
            own = [f"experiment {key}: {problem}"
                   for problem in constraint_problems(campaign.space, {**proposal.params, **changes})]
        problems += own
    return problems


def constraint_problems(space: SearchSpace, params: Mapping[str, Any]) -> list[str]:
    """One line per constraint of ``space`` that ``params`` (user units) break: the constraint as written
    in the campaign file, and the value its sides take at ``params``."""
    values = {**space.fixed_values, **params}
    problems = []
    for constraint in space.all_constraints:
        if constraint.is_satisfied(values, FEASIBILITY_TOL):
            continue
        at = ", ".join(f"{name}={_show(values[name])}" for name in sorted(constraint.names))
        if isinstance(constraint, LinearConstraint):
            form = _linear_form(constraint.coefficients)
            total = sum(c * float(values[n]) for n, c in constraint.coefficients.items())
            sides = f"{form} = {_show(total)}, not {constraint.op} {_show(constraint.rhs)}"
        else:
            left, right = (float(evaluate(side, values, numpy_backend())) for side in (constraint.left, constraint.right))
            sides = f"its left side is {_show(left)}, its right side {_show(right)}"
        problems.append(f"breaks the constraint '{constraint.text}': {sides} (at {at})")
    return problems


def apply_decision(campaign: Campaign, batch: list[Proposal], decision: BatchDecision) -> list[Proposal] | None:
    """Store ``decision`` and return the batch to make (edited), or None when it was rejected.

    A rejected batch is abandoned with a reason that starts with ``REJECTED_AT_APPROVAL``; the
    planner keeps those points as pending ones, so the next batch goes elsewhere.
    """
    store, campaign_id = campaign.store, campaign.info.id
    store.record_event(campaign_id, "approval", {"iteration": batch[0].iteration, "decision": decision.decision,
                                                "note": decision.note, "edits": dict(decision.edits),
                                                "experiment_ids": [p.id for p in batch]})
    if decision.decision == "reject":
        for p in batch:
            store.abandon(p.id, f"{REJECTED_AT_APPROVAL}{decision.note or 'no note'}")
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


def _report_outcome(key: str, decision: str, problems: list[str]) -> None:
    """Write what became of the answer to pause ``key`` where ``sdl approve`` waits for it."""
    try:
        create_flow_run_input(key=outcome_key(key), value={"decision": decision, "problems": problems})
    except Exception as err:  # the decision is stored either way; sdl approve then says it saw no outcome
        get_run_logger().warning("approval outcome not published (%s: %s)", type(err).__name__, err)


def _value_problem(campaign: Campaign, name: str, value: Any) -> str | None:
    try:
        parameter = campaign.spec.parameter(name)
    except StopIteration:
        return f"{_short(name)} is not a parameter; use one of: {', '.join(p.name for p in campaign.spec.parameters)}"
    if getattr(parameter, "type", None) == "fixed" or getattr(parameter, "fixed", False):
        return f"{name} is fixed; it cannot be edited"
    if parameter.type == "categorical":
        return None if str(value) in map(str, parameter.values) else (
            f"{name}={_short(value)} is not one of {', '.join(map(str, parameter.values))}")
    number = _finite(value)
    if number is None:
        return f"{name}={_short(value)} is not a finite number"
    if parameter.values is not None:  # discrete levels
        return None if any(math.isclose(number, v) for v in parameter.values) else (
            f"{name}={_short(value)} is not one of the levels {', '.join(map(str, parameter.values))}")
    lower, upper = parameter.bounds
    if not lower <= number <= upper:
        return f"{name}={_short(value)} is outside its bounds [{lower:g}, {upper:g}]"
    if parameter.type == "integer" and number != int(number):
        return f"{name}={_short(value)} is not a whole number"
    return None


def _finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite int or float (a bool is not a number here), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int with hundreds of digits
        return None
    return number if math.isfinite(number) else None


def _note_problem(note: str) -> str | None:
    """Why the store cannot keep ``note`` as a reason (None when it can)."""
    if len(note) > MAX_REASON_CHARS:
        return f"the note has {len(note):,} characters, more than {MAX_REASON_CHARS:,}; shorten it"
    if "\x00" in note or any(0xD800 <= ord(ch) <= 0xDFFF for ch in note):
        return "the note holds a NUL character or a lone surrogate, which the store cannot keep; send plain text"
    return None


def _linear_form(coefficients: Mapping[str, float]) -> str:
    """``{"a": 1, "b": -2}`` -> ``"a - 2*b"``."""
    text = ""
    for name, c in coefficients.items():
        size = "" if abs(c) == 1 else f"{abs(c):g}*"
        text += (f"{'-' if c < 0 else ''}{size}{name}" if not text else f" {'-' if c < 0 else '+'} {size}{name}")
    return text


def _listed(edits: Mapping[str, Mapping[str, Any]]) -> str:
    """``{"3": {"red": 40}}`` -> ``"experiment 3: red=40"``, cut to one short line."""
    return _short("; ".join(f"experiment {_short(key, 20, quoted=False)}: "
                            + ", ".join(f"{_short(n, 30, quoted=False)}={_short(v, 30, quoted=False)}"
                                        for n, v in changes.items())
                            for key, changes in edits.items()), 120, quoted=False)


def _short(value: Any, limit: int = 60, quoted: bool = True) -> str:
    """``repr(value)`` (or ``str`` when not ``quoted``) on one line, cut to ``limit`` characters."""
    try:
        text = " ".join((repr(value) if quoted else str(value)).splitlines())
    except ValueError:  # an int too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
