"""Settle the experiments a crash left in doubt: dispatched to the robot, never measured.

A batch is marked ``dispatched`` (with its plate plan) before the robot is told anything,
and the robot's run id is stored before the run is played. So after a crash:

- no run id stored: the run was never played, nothing moved; the experiments are
  abandoned (never made) and their place in the budget goes to new proposals;
- a run id stored: the robot is asked what became of that run. Succeeded: the plate was
  made, so its wells are measured now (reading never changes a plate). Failed or stopped:
  the batch is recorded as failed by the instrument. Idle (created, never played; the
  crash came between creating and playing it): the driver closes it, so it can never
  start, and confirms it was never played; the experiments are abandoned as above.
  Anything else (still running, robot unreachable, a driver that cannot say): the user
  decides, with ``--in-doubt``.

Nothing here ever dispatches a physical step again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from instruments.errors import InstrumentError
from instruments.plate_plan import PlatePlan
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from orchestrator.run.steps import CampaignRunner

#: ``--in-doubt`` choices: ask the robot; the user says the plate was made; the user says it was not.
POLICIES = ("ask", "measure", "failed")


class InDoubtError(OrchestratorError, RuntimeError):
    """Experiments are in doubt and the robot cannot settle them: a person must."""


@dataclass(frozen=True)
class InDoubtBatch:
    """The dispatched, unmeasured experiments of one iteration, with what the store knows of them."""

    iteration: int
    experiment_ids: list[int]
    plan: PlatePlan | None  # None for batches dispatched before plans were stored with the dispatch
    run_id: str | None


def in_doubt_batches(runner: "CampaignRunner") -> list[InDoubtBatch]:
    """Dispatched but unmeasured experiments, grouped by iteration, oldest first."""
    campaign = runner.campaign
    dispatched = campaign.experiments("dispatched")
    if not dispatched:
        return []
    plans: dict[int, PlatePlan] = {}
    runs: dict[int, str] = {}
    for event in runner.store.events(campaign.info.id):
        detail = event["detail"] or {}
        if event["kind"] == "batch_dispatched":
            plans[detail["iteration"]] = PlatePlan.model_validate(detail["plan"])
        elif event["kind"] == "robot_run_created":
            runs[detail["iteration"]] = detail["run_id"]
    iterations = sorted({e.iteration for e in dispatched})
    return [
        InDoubtBatch(it, [e.id for e in dispatched if e.iteration == it], plans.get(it), runs.get(it))
        for it in iterations
    ]


def reconcile(runner: "CampaignRunner", policy: str = "ask") -> list[str]:
    """Settle every in-doubt batch by ``policy`` (one of ``POLICIES``); returns what was done, a line each.

    Raises ``InDoubtError`` (nothing changed for that batch) when the robot cannot say.
    """
    if policy not in POLICIES:
        raise InDoubtError(f"unknown --in-doubt choice {policy!r}", hint=f"use one of: {', '.join(POLICIES)}")
    done = []
    for batch in in_doubt_batches(runner):
        line = _settle(runner, batch, policy)
        runner.store.record_event(runner.campaign.info.id, "reconciled",
                                  {"iteration": batch.iteration, "experiment_ids": batch.experiment_ids,
                                   "run_id": batch.run_id, "policy": policy, "outcome": line})
        runner.log(f"iteration {batch.iteration}: {line}")
        done.append(f"iteration {batch.iteration}: {line}")
    return done


def _settle(runner: "CampaignRunner", batch: InDoubtBatch, policy: str) -> str:
    ids = ", ".join(map(str, batch.experiment_ids))
    if policy == "failed":
        _fail(runner, batch, "in doubt after a restart; recorded as failed by the user (--in-doubt failed)")
        line = f"experiments {ids} recorded as failed, as the user said"
        if batch.run_id is not None and _closed_unplayed(runner, batch):  # else it would keep the robot busy
            line += f"; robot run {batch.run_id} was never played; closed now"
        return line
    if policy == "measure":
        return _measure(runner, batch, "the user said the plate was made (--in-doubt measure)")
    if batch.run_id is None:
        for experiment_id in batch.experiment_ids:
            runner.store.abandon(experiment_id, "never reached the robot: no run was started before the restart")
        return f"experiments {ids} never reached the robot (no run started); abandoned, their budget is free again"
    status = _run_status(runner, batch)
    state = status.get("status")
    if state == "idle" and _closed_unplayed(runner, batch):
        for experiment_id in batch.experiment_ids:
            runner.store.abandon(experiment_id, f"robot run {batch.run_id} was created but never played: nothing moved")
        return (f"robot run {batch.run_id} was never played (now closed, so it never will be); "
                f"experiments {ids} abandoned, their budget is free again")
    if state == "succeeded":
        return _measure(runner, batch, f"robot run {batch.run_id} succeeded")
    if state in ("failed", "stopped"):
        error = status.get("error") or "no error reported"
        _record_iteration(runner, batch, f"robot run {batch.run_id} {state} (found on restart): {error}")
        _fail(runner, batch, f"{runner.instruments.liquid_handler.name}: run {batch.run_id} {state}: {error}")
        return f"robot run {batch.run_id} {state}; experiments {ids} recorded as failed (instrument)"
    raise InDoubtError(
        f"experiments {ids} of iteration {batch.iteration} are in doubt: robot run {batch.run_id} is "
        f"{state or 'unknown'}{': ' + status['error'] if status.get('error') else ''}",
        hint="check the plate, then resume with --in-doubt measure (it was made) or --in-doubt failed (it was not)",
    )


def _run_status(runner: "CampaignRunner", batch: InDoubtBatch) -> dict[str, Any]:
    answer, error = _ask_liquid_handler(runner, "run_status", batch.run_id)
    return {"status": "unknown", "error": error} if error else dict(answer)


def _closed_unplayed(runner: "CampaignRunner", batch: InDoubtBatch) -> bool:
    """Whether the driver closed the batch's run and found it never played (False when it cannot say)."""
    answer, error = _ask_liquid_handler(runner, "close_unplayed_run", batch.run_id)
    return not error and bool(answer)


def _ask_liquid_handler(runner: "CampaignRunner", method: str, run_id: str) -> tuple[Any, str | None]:
    """``(answer, None)`` from the liquid handler's optional ``method(run_id)``, or ``(None, why not)``
    when its driver has no such method or the call fails."""
    handler = runner.instruments.liquid_handler
    if not hasattr(handler, method):
        return None, f"driver {handler.name} cannot report what became of a run"
    try:
        return getattr(handler, method)(run_id), None
    except InstrumentError as err:
        return None, err.message


def _measure(runner: "CampaignRunner", batch: InDoubtBatch, why: str) -> str:
    if batch.plan is None:
        raise InDoubtError(f"iteration {batch.iteration}: no stored plate plan, so its wells are unknown",
                           hint="resume with --in-doubt failed")
    _record_iteration(runner, batch, f"reconciled after a restart: {why}")
    waiting = set(batch.experiment_ids)
    plan = batch.plan.model_copy(update={"wells": [w for w in batch.plan.wells if w.experiment_id in waiting]})
    spectra = runner.measure(plan)
    if spectra is None:
        return f"{why}; the reading failed, recorded as failed (instrument)"
    runner.record(runner.analyse(plan, spectra))
    return f"{why}; wells {', '.join(plan.label(w.well) for w in plan.wells)} measured now"


def _record_iteration(runner: "CampaignRunner", batch: InDoubtBatch, run_log: str) -> None:
    """Keep the plan in the iteration table (the reagent ledger reads it) if the crash came first."""
    campaign_id = runner.campaign.info.id
    if batch.plan is None or any(it["iteration"] == batch.iteration for it in runner.store.iterations(campaign_id)):
        return
    runner.store.record_iteration(campaign_id, batch.iteration, runner.instruments.liquid_handler.name,
                                  batch.plan.model_dump(), "", run_log, 0.0)


def _fail(runner: "CampaignRunner", batch: InDoubtBatch, reason: str) -> None:
    _record_iteration(runner, batch, reason)
    for experiment_id in batch.experiment_ids:
        runner.store.record_failure(experiment_id, reason, kind="instrument")
