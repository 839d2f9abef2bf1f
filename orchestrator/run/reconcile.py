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

A batch whose reading had begun to move the robot (``orchestrator.run.measuring``) is not simply read
again: a cuvette station's is recorded as failed (its aliquots were taken with the tips the plan set
aside), a gripper-loaded reader's waits for a person to say the plate is back (``--in-doubt measure``).

Nothing here ever dispatches a physical step again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from instruments.errors import InstrumentError
from instruments.plate_plan import PlatePlan
from instruments.roles import LiquidHandler, SupportsCloseUnplayedRun, SupportsRunStatus
from orchestrator.errors import OrchestratorError
from orchestrator.run.campaign import Campaign
from orchestrator.run.measuring import REREAD_ASK, REREAD_NEVER, interrupted_reading
from orchestrator.store.campaign_store import CampaignStore

#: ``--in-doubt`` choices: ask the robot; the user says the plate was made; the user says it was not.
POLICIES = ("ask", "measure", "failed")


class InDoubtError(OrchestratorError, RuntimeError):
    """Experiments are in doubt and the robot cannot settle them: a person must."""


@dataclass(frozen=True)
class InDoubtBatch:
    """The dispatched, unmeasured experiments of one iteration, with what the store knows of them."""

    iteration: int
    experiment_ids: list[int]  # store ids, for the store's calls
    plan: PlatePlan | None  # None for batches dispatched before plans were stored with the dispatch
    run_id: str | None
    numbers: list[int]  # the same experiments numbered in their campaign (``Experiment.number``), for people

    @property
    def shown(self) -> str:
        """The experiments as ``sdl status`` lists them: their numbers in the campaign."""
        return ", ".join(map(str, self.numbers))


@dataclass(frozen=True)
class LoopParts:
    """What settling needs of the loop: the campaign (and its store), its liquid handler, a log,
    and ``read_batch(plan)``, which measures, analyses and records the wells of ``plan`` with the
    loop's own steps and returns False when the reading failed (then recorded as failed)."""

    campaign: Campaign
    handler: LiquidHandler
    read_batch: Callable[[PlatePlan], bool]
    log: Callable[[str], None]

    @property
    def store(self) -> CampaignStore:
        return self.campaign.store


def in_doubt_batches(campaign: Campaign) -> list[InDoubtBatch]:
    """Dispatched but unmeasured experiments, grouped by iteration, oldest first."""
    dispatched = campaign.experiments("dispatched")
    if not dispatched:
        return []
    plans: dict[int, PlatePlan] = {}
    runs: dict[int, str] = {}
    for event in campaign.store.events(campaign.info.id):
        detail = event["detail"] or {}
        if event["kind"] == "batch_dispatched":
            plans[detail["iteration"]] = PlatePlan.model_validate(detail["plan"])
        elif event["kind"] == "robot_run_created":
            runs[detail["iteration"]] = detail["run_id"]
    iterations = sorted({e.iteration for e in dispatched})
    batches = []
    for it in iterations:
        members = [e for e in dispatched if e.iteration == it]
        batches.append(InDoubtBatch(it, [e.id for e in members], plans.get(it), runs.get(it),
                                    [e.number for e in members]))
    return batches


def reconcile(parts: LoopParts, policy: str = "ask") -> list[str]:
    """Settle every in-doubt batch by ``policy`` (one of ``POLICIES``); returns what was done, a line each.

    Raises ``InDoubtError`` (nothing changed for that batch) when the robot cannot say.
    """
    if policy not in POLICIES:
        raise InDoubtError(f"unknown --in-doubt choice {policy!r}", hint=f"use one of: {', '.join(POLICIES)}")
    done = []
    for batch in in_doubt_batches(parts.campaign):
        line = _settle(parts, batch, policy)
        parts.store.record_event(parts.campaign.info.id, "reconciled",
                                 {"iteration": batch.iteration, "experiment_ids": batch.experiment_ids,
                                  "run_id": batch.run_id, "policy": policy, "outcome": line})
        parts.log(f"iteration {batch.iteration}: {line}")
        done.append(f"iteration {batch.iteration}: {line}")
    return done


def _settle(parts: LoopParts, batch: InDoubtBatch, policy: str) -> str:
    numbers = batch.shown
    if policy == "failed":
        _fail(parts, batch, "in doubt after a restart; recorded as failed by the user (--in-doubt failed)")
        line = f"experiments {numbers} recorded as failed, as the user said"
        if batch.run_id is not None and _closed_unplayed(parts, batch):  # else it would keep the robot busy
            line += f"; robot run {batch.run_id} was never played; closed now"
        return line
    if policy == "measure":
        return _measure(parts, batch, "the user said the plate was made (--in-doubt measure)", person_said=True)
    if batch.run_id is None:
        for experiment_id in batch.experiment_ids:
            parts.store.abandon(experiment_id, "never reached the robot: no run was started before the restart")
        return f"experiments {numbers} never reached the robot (no run started); abandoned, their budget is free again"
    status = _run_status(parts, batch)
    state = status.get("status")
    if state == "idle" and _closed_unplayed(parts, batch):
        for experiment_id in batch.experiment_ids:
            parts.store.abandon(experiment_id, f"robot run {batch.run_id} was created but never played: nothing moved")
        return (f"robot run {batch.run_id} was never played (now closed, so it never will be); "
                f"experiments {numbers} abandoned, their budget is free again")
    if state == "succeeded":
        return _measure(parts, batch, f"robot run {batch.run_id} succeeded")
    if state in ("failed", "stopped"):
        error = status.get("error") or "no error reported"
        _record_iteration(parts, batch, f"robot run {batch.run_id} {state} (found on restart): {error}")
        _fail(parts, batch, f"{parts.handler.name}: run {batch.run_id} {state}: {error}")
        return f"robot run {batch.run_id} {state}; experiments {numbers} recorded as failed (instrument)"
    raise InDoubtError(
        f"experiments {numbers} of iteration {batch.iteration} are in doubt: robot run {batch.run_id} is "
        f"{state or 'unknown'}{': ' + status['error'] if status.get('error') else ''}",
        hint="check the plate, then resume with --in-doubt measure (it was made) or --in-doubt failed (it was not)",
    )


def _run_status(parts: LoopParts, batch: InDoubtBatch) -> dict[str, Any]:
    """The liquid handler's ``run_status`` of the batch's run; status ``unknown`` with why when it cannot say."""
    handler = parts.handler
    if not isinstance(handler, SupportsRunStatus):
        return {"status": "unknown", "error": f"driver {handler.name} cannot report what became of a run"}
    try:
        return dict(handler.run_status(batch.run_id))
    except InstrumentError as err:
        return {"status": "unknown", "error": err.message}


def _closed_unplayed(parts: LoopParts, batch: InDoubtBatch) -> bool:
    """Whether the driver closed the batch's run and found it never played (False when it cannot say)."""
    handler = parts.handler
    if not isinstance(handler, SupportsCloseUnplayedRun):
        return False
    try:
        return bool(handler.close_unplayed_run(batch.run_id))
    except InstrumentError:
        return False


def _measure(parts: LoopParts, batch: InDoubtBatch, why: str, person_said: bool = False) -> str:
    """Read the batch's wells now, unless its reading had begun to move the robot (``orchestrator.run.measuring``):
    a cuvette station's batch is then recorded as failed, and a gripper-loaded reader's is read again only once
    a person said the plate is back in its slot (``person_said``: ``--in-doubt measure``)."""
    if batch.plan is None:
        raise InDoubtError(f"iteration {batch.iteration}: no stored plate plan, so its wells are unknown",
                           hint="resume with --in-doubt failed")
    reading = interrupted_reading(parts.store, parts.campaign.info.id, batch.iteration) or {}
    numbers = batch.shown
    if reading.get("rereading") == REREAD_NEVER:
        _fail(parts, batch, f"{reading['instrument']}: its reading of iteration {batch.iteration} was interrupted "
                            "after the robot began taking aliquots with the tips the plan set aside; reading again "
                            "would reuse them")
        return f"{why}; its reading had begun (aliquots taken), so experiments {numbers} are recorded as failed (instrument)"
    if reading.get("rereading") == REREAD_ASK and reading.get("stage") == "started" and not person_said:
        plate = batch.plan.label(batch.plan.wells[0].well).split("-", 1)[0] if batch.plan.wells else "the plate"
        raise InDoubtError(
            f"experiments {numbers} of iteration {batch.iteration}: {reading['instrument']} was reading plate {plate} "
            "when the run stopped, so the plate may still be in the reader or the gripper",
            hint="put the plate back in its deck slot, then resume with --in-doubt measure (it reads the batch "
                 "again), or --in-doubt failed")
    _record_iteration(parts, batch, f"reconciled after a restart: {why}")
    waiting = set(batch.experiment_ids)
    plan = batch.plan.model_copy(update={"wells": [w for w in batch.plan.wells if w.experiment_id in waiting]})
    if not parts.read_batch(plan):
        return f"{why}; the reading failed, recorded as failed (instrument)"
    return f"{why}; wells {', '.join(plan.label(w.well) for w in plan.wells)} measured now"


def _record_iteration(parts: LoopParts, batch: InDoubtBatch, run_log: str) -> None:
    """Keep the plan in the iteration table (the reagent ledger reads it) if the crash came first."""
    campaign_id = parts.campaign.info.id
    if batch.plan is None or any(it["iteration"] == batch.iteration for it in parts.store.iterations(campaign_id)):
        return
    parts.store.record_iteration(campaign_id, batch.iteration, parts.handler.name,
                                 batch.plan.model_dump(), "", run_log, 0.0)


def _fail(parts: LoopParts, batch: InDoubtBatch, reason: str) -> None:
    _record_iteration(parts, batch, reason)
    for experiment_id in batch.experiment_ids:
        parts.store.record_failure(experiment_id, reason, kind="instrument")
