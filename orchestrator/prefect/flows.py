"""Prefect flow of a campaign: one flow run per campaign, one task per step.

Thin by design: each task wraps one ``CampaignRunner`` step. Instrument tasks never use
result caching (a cached physical step would be silently skipped) and never retry.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal

from instruments.errors import HintedError
from orchestrator.prefect.artifacts import LiveArtifacts, artifact_key
from orchestrator.run.campaign import Campaign, best_measured, pareto_front
from orchestrator.errors import OrchestratorError
from orchestrator.run.steps import CampaignRunner, LoopError, make_runner
from orchestrator.run.progress import ProgressUpdate, report_note, report_progress
from orchestrator.store.campaign_store import default_report_dir

_STEP = dict(cache_policy=NO_CACHE, retries=0, persist_result=False)


class _NoTracebackForRefusals(logging.Filter):
    """Drops the traceback from Prefect's log record of a step or flow that failed with a ``HintedError``.

    Those are the campaign's and the instruments' own errors (a plan over a limit, stock or tips
    to refill, a robot that stopped, a spectrometer not found), each with a message and a fix; the
    record keeps that one line. Any other exception is a bug and keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HintedError):
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_refusals() -> None:
    """Install ``_NoTracebackForRefusals`` on Prefect's task-run and flow-run loggers (once)."""
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTracebackForRefusals) for f in logger.filters):
            logger.addFilter(_NoTracebackForRefusals())


class ApprovalTimeout(OrchestratorError, RuntimeError):
    """Nobody decided on a batch in time; it was not made."""


@task(name="preflight", **_STEP)
def preflight(runner: CampaignRunner):
    runner.preflight()


@task(name="propose", **_STEP)
def propose(runner: CampaignRunner):
    return runner.propose()


@task(name="prepare", **_STEP)
def prepare(runner: CampaignRunner, batch):
    return runner.prepare(batch)


@task(name="measure", **_STEP)
def measure(runner: CampaignRunner, plan):
    return runner.measure(plan)


@task(name="analyse", **_STEP)
def analyse(runner: CampaignRunner, plan, spectra):
    return runner.analyse(plan, spectra)


@task(name="record", **_STEP)
def record(runner: CampaignRunner, outcomes):
    runner.record(outcomes)


@task(name="publish", **_STEP)
def publish(campaign: Campaign) -> str:
    """Write the campaign's report and keep it, and the experiments table, as Prefect artifacts."""
    from prefect.artifacts import create_link_artifact, create_table_artifact

    from orchestrator.store.export import experiment_rows
    from orchestrator.report import build_report

    from prefect.artifacts import create_markdown_artifact

    name, key = campaign.spec.name, artifact_key(campaign.spec.name)
    columns, rows = experiment_rows(campaign.store, campaign.info)
    create_table_artifact(key=f"{key}-experiments", table=[{c: r[c] for c in columns} for r in rows],
                          description=f"Every experiment of campaign {name}")
    path = build_report(campaign.store, name, default_report_dir(name)).resolve()
    figure = next(iter(sorted(path.parent.glob("*convergence*.png"))), None)
    create_markdown_artifact(key=f"{key}-convergence", markdown=LiveArtifacts(campaign).convergence_markdown(figure),
                             description=f"Best {campaign.spec.objectives[0].name} after each iteration")
    create_link_artifact(key=f"{key}-report", link=path.as_uri(), link_text=f"Report of {name}",
                         description=f"campaign file sha256 {campaign.info.spec_hash}")
    return str(path)


def _named(step, campaign: str, iteration: int):
    return step.with_options(task_run_name=f"{campaign} · iteration {iteration:02d} · {step.name}")


def _standing(campaign: Campaign, step: str) -> ProgressUpdate:
    """Where ``campaign`` stands now, as a progress update."""
    best = campaign.best()
    objective = campaign.objective.name
    # abandoned experiments were never made and gave their place in the budget back: not progress
    finished = sum(e.status in ("measured", "failed") for e in campaign.experiments())
    return ProgressUpdate(campaign.spec.name, finished, campaign.spec.budget.experiments, step,
                          f"{objective} {best.values[objective]:.4g}" if best else None)


def _review(runner: CampaignRunner, batch):
    """Pause for a person's decision when the campaign asks for one; the batch to make, or None."""
    from prefect.flow_runs import pause_flow_run

    from orchestrator.prefect.approval import BatchDecision, apply_decision, describe, edit_problems, needs_approval

    campaign = runner.campaign
    if not needs_approval(campaign, batch):
        return batch
    settings, problems, attempt = campaign.spec.approval, [], 0
    while True:
        attempt += 1
        report_progress(_standing(campaign, f"iteration {batch[0].iteration} · waiting for approval"))
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


def _run_iteration(runner: CampaignRunner, name: str, live: LiveArtifacts) -> int:
    """One iteration as five named tasks (fewer when the robot or the reader faulted); returns its number."""
    campaign = runner.campaign
    started = time.perf_counter()
    iteration = campaign.next_iteration()
    report_progress(_standing(campaign, f"iteration {iteration} · propose"))
    batch = _named(propose, name, iteration)(runner)
    iteration = batch[0].iteration
    waited = time.perf_counter()
    batch = _review(runner, batch)
    runner.step_seconds["approval"] = time.perf_counter() - waited  # a person's time, not overhead
    if batch is None:  # rejected: the next iteration proposes again
        return iteration
    report_progress(_standing(campaign, f"iteration {iteration} · prepare"))
    plan = _named(prepare, name, iteration)(runner, batch)
    if plan is not None:
        report_progress(_standing(campaign, f"iteration {iteration} · measure"))
        spectra = _named(measure, name, iteration)(runner, plan)
        if spectra is not None:
            report_progress(_standing(campaign, f"iteration {iteration} · analyse"))
            outcomes = _named(analyse, name, iteration)(runner, plan, spectra)
            _named(record, name, iteration)(runner, outcomes)
    _update_dashboard(live, get_run_logger())  # orchestration: inside the iteration's measured time
    runner.record_timing(iteration, time.perf_counter() - started)
    return iteration


def _lock_instruments(runner: CampaignRunner, dry_run: bool) -> dict[str, str]:
    """Hold a strict Prefect concurrency slot per physical instrument while it works; role -> limit name.

    The robot's slot is then held for the whole run instead (``_robot_for_the_run``).
    """
    from orchestrator.prefect.locks import ensure_limits, instrument_lock, lock_names

    campaign = runner.campaign
    names = lock_names(campaign.spec, dry_run)
    ensure_limits(list(names.values()))

    def held(role: str):
        return instrument_lock(names[role], on_held=_hold_recorder(campaign, role)) if role in names else nullcontext()

    runner.instrument_guard = held
    return names


def _hold_recorder(campaign: Campaign, role: str):
    """The ``on_held`` callback that stores each hold of ``role``'s instrument as an ``instrument_held`` event."""

    def remember(times: dict) -> None:
        campaign.store.record_event(campaign.info.id, "instrument_held", {"role": role, **times})

    return remember


@contextmanager
def _robot_for_the_run(runner: CampaignRunner, locks: dict[str, str]) -> Iterator[None]:
    """Hold the robot's slot (``locks["liquid_handler"]``) for the block; its batches then take no lock of their own.

    Campaigns on one robot share its deck (tip racks, plate, reservoir), which each campaign
    counts as its own, so they run one after the other, never batch by batch: a robot that
    another run holds for ``ROBOT_WAIT_S`` is refused (``LoopError``), with nothing moved.
    """
    from orchestrator.prefect.locks import ROBOT_WAIT_S, InstrumentBusy, instrument_lock

    name, campaign = locks.get("liquid_handler"), runner.campaign
    if name is None:
        yield
        return
    with ExitStack() as held:
        try:
            held.enter_context(instrument_lock(name, on_held=_hold_recorder(campaign, "liquid_handler"),
                                               wait_s=ROBOT_WAIT_S))
        except InstrumentBusy as err:
            raise LoopError(f"the robot ({name}) is in use by another campaign; nothing moved",
                            hint="campaigns on one robot share its tip racks, plate and reservoir, so they run one "
                                 "after the other: when the other has ended, load fresh tips and a fresh plate, "
                                 f"then: sdl resume {campaign.spec.name}") from err
        per_batch = runner.instrument_guard
        runner.instrument_guard = lambda role: nullcontext() if role == "liquid_handler" else per_batch(role)
        try:
            yield
        finally:
            runner.instrument_guard = per_batch


def _iterate_until_finished(runner: CampaignRunner, name: str, live: LiveArtifacts, logger) -> None:
    """Run iterations until the budget is spent or a stopping rule holds, reporting each one's standing."""
    while not runner.is_finished():
        iteration = _run_iteration(runner, name, live)
        standing = _standing(runner.campaign, "done" if runner.is_finished() else "next iteration")
        line = (f"iteration {iteration}: {standing.done}/{standing.total} experiments done, "
                f"best {standing.best or 'none yet'}")
        logger.info(line)
        report_note(line)
        report_progress(standing)


def _update_dashboard(live: LiveArtifacts, logger, force: bool = False) -> None:
    """Refresh the dashboard's artifacts; a failure here never stops the campaign."""
    try:
        live.update(force)
    except Exception as err:
        logger.warning("dashboard artifacts not updated (%s: %s)", type(err).__name__, err)


@flow(name="sdl-campaign", flow_run_name="{name}", validate_parameters=False, persist_result=False, log_prints=True)
def campaign_flow(name: str, yaml_text: str, source: str | None, store_url: str | None, dry_run: bool,
                  in_doubt: str = "ask") -> dict[str, Any]:
    """Run campaign ``name`` (its YAML text) against ``store_url`` until its budget is spent.

    Experiments a crash left dispatched but unmeasured are settled first (``in_doubt``: see
    ``orchestrator.run.reconcile``); nothing is ever dispatched twice.
    """
    _quiet_refusals()
    logger = get_run_logger()
    campaign = Campaign.from_text(yaml_text, store=store_url, source=Path(source) if source else None)
    runner = make_runner(campaign, dry_run, log=logger.info)
    locks = _lock_instruments(runner, dry_run)
    campaign.store.set_campaign_status(campaign.info.id, "running", dry_run=dry_run, source=source, locks=locks)
    live = LiveArtifacts(campaign)
    try:
        runner.reconcile(in_doubt)
        if not runner.is_finished():
            with _robot_for_the_run(runner, locks):
                preflight.with_options(task_run_name=f"{name} · preflight")(runner)
                _iterate_until_finished(runner, name, live, logger)
        decision = campaign.should_stop()
        if decision.stop:
            campaign.store.record_event(campaign.info.id, "stopped", {"reason": decision.reason})
            for waiting in campaign.experiments("proposed"):  # proposed but never made: not to be made now
                campaign.store.abandon(waiting.id, f"campaign stopped before it was made: {decision.reason}")
            logger.info("stopping: %s", decision.reason)
    except (KeyboardInterrupt, TerminationSignal):  # Ctrl-C, or SIGTERM as Prefect's flow engine raises it
        campaign.store.set_campaign_status(campaign.info.id, "interrupted")
        raise
    except BaseException:
        campaign.store.set_campaign_status(campaign.info.id, "failed")
        raise
    campaign.store.set_campaign_status(campaign.info.id, "completed")
    _update_dashboard(live, logger, force=True)  # the final state, whenever the last refresh was
    try:
        report = publish.with_options(task_run_name=f"{name} · report")(campaign)
    except Exception as err:  # the campaign is complete and stored; a report can be made later
        logger.warning("report not written (%s: %s); make it with: sdl report %s", type(err).__name__, err, name)
        report = None
    experiments = campaign.experiments()  # read once for the whole summary
    spec = campaign.spec
    outcome_constraints = spec.parsed_outcome_constraints()
    best = best_measured(experiments, campaign.objective, outcome_constraints)
    return {"campaign": name, "experiments": len(experiments), "report": report,
            "by_status": {status: sum(e.status == status for e in experiments)
                          for status in sorted({e.status for e in experiments})},
            "pareto_front": (len(pareto_front(experiments, spec.objectives, outcome_constraints))
                             if len(spec.objectives) > 1 else None),
            "best": {"id": best.id, "params": best.params, "values": best.values} if best else None}
