"""Prefect flow of a campaign: one flow run per campaign, one task per step.

Thin by design: ``CampaignRunner.run_iteration`` sequences the steps, and the flow passes it hooks
that run each step as a named task (``_as_tasks``), let a person review each batch
(``approval.review``) and confirm each move of a plate to a reader loaded by hand (``handoff``), and
refresh the dashboard; ``locks`` holds the instruments. Instrument tasks
never use result caching (a cached physical step would be silently skipped) and never retry.
"""

from __future__ import annotations

import logging
import signal
from functools import partial
from pathlib import Path
from typing import Any, Callable

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal
from prefect.settings import PREFECT_API_URL

from instruments.errors import HintedError
from instruments.factory import ResolvedDrivers
from orchestrator.prefect.approval import review
from orchestrator.prefect.artifacts import LiveArtifacts, artifact_key, report_markdown
from orchestrator.prefect.handoff import asking_in_the_dashboard
from orchestrator.prefect.handover import taken_over
from orchestrator.prefect.locks import lock_instruments, robot_for_the_run
from orchestrator.run.best import best_measured, pareto_front
from orchestrator.run.campaign import Campaign
from orchestrator.run.progress import Standing, report_note, report_progress
from orchestrator.run.runner_lease import HeldCampaign
from orchestrator.run.stop_request import (StopRequested, raise_if_stop_requested, recording_under_other_handlers,
                                           signal_behind, stop_requested)
from orchestrator.run.steps import CampaignRunner, IterationHooks, StepWrapper, make_runner
from orchestrator.store.campaign_store import default_report_dir
from orchestrator.store.export import experiment_rows

_STEP = dict(cache_policy=NO_CACHE, retries=0, persist_result=False)


class _NoTracebackForRefusals(logging.Filter):
    """Drops the traceback from Prefect's log record of a step or flow that failed with a ``HintedError``,
    or after a stop was requested.

    Those are the campaign's and the instruments' own errors (a plan over a limit, stock or tips
    to refill, a robot that stopped, a spectrometer not found), each with a message and a fix; the
    record keeps that one line. After Ctrl-C or SIGTERM, an error is the stop's doing (a clean-up cut
    short), and ``sdl`` says it stopped. Any other exception is a bug and keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and (isinstance(record.exc_info[1], HintedError) or stop_requested() is not None):
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_refusals() -> None:
    """Install ``_NoTracebackForRefusals`` on Prefect's task-run and flow-run loggers (once)."""
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTracebackForRefusals) for f in logger.filters):
            logger.addFilter(_NoTracebackForRefusals())


# Each task runs the runner's step it is given (a bound method of ``CampaignRunner``).

@task(name="preflight", **_STEP)
def preflight(step: Callable[[], None]) -> None:
    step()


@task(name="propose", **_STEP)
def propose(step: Callable[..., Any]) -> Any:
    return step()


@task(name="prepare", **_STEP)
def prepare(step: Callable[..., Any], batch: Any) -> Any:
    return step(batch)


@task(name="measure", **_STEP)
def measure(step: Callable[..., Any], plan: Any) -> Any:
    return step(plan)


@task(name="analyse", **_STEP)
def analyse(step: Callable[..., Any], plan: Any, spectra: Any) -> Any:
    return step(plan, spectra)


@task(name="record", **_STEP)
def record(step: Callable[..., Any], outcomes: Any) -> None:
    step(outcomes)


_TASKS = {t.name: t for t in (propose, prepare, measure, analyse, record)}


@task(name="publish", **_STEP)
def publish(campaign: Campaign) -> str:
    """Write the campaign's report and keep it, and the experiments table, as Prefect artifacts."""
    # matplotlib (the report's figures) loads when a run ends, not for sdl serve or sdl approve
    from orchestrator.report import build_report

    name, key, spec = campaign.spec.name, artifact_key(campaign.info), campaign.spec
    columns, rows = experiment_rows(campaign.store, campaign.info)
    create_table_artifact(key=f"{key}-experiments", table=[{c: r[c] for c in columns} for r in rows],
                          description=f"Every experiment of campaign {name}")
    path = build_report(campaign.store, name, default_report_dir(campaign.info), spec).resolve()
    figure = next(iter(sorted(path.parent.glob("*convergence*.png"))), None)
    create_markdown_artifact(key=f"{key}-convergence", markdown=LiveArtifacts(campaign).convergence_markdown(figure),
                             description=f"Best {spec.objectives[0].name} after each iteration")
    # kept in the store too: sdl dashboard serves it to any PC, whichever PC ran the campaign
    campaign.store.keep_report(campaign.info.id, path.read_text(encoding="utf-8"))
    create_markdown_artifact(key=f"{key}-report", markdown=report_markdown(campaign.info, path, PREFECT_API_URL.value()),
                             description=f"campaign file sha256 {campaign.info.spec_hash}")
    return str(path)


def _as_tasks(name: str, standing: Standing, initial_experiments: int = 0) -> StepWrapper:
    """Run each step as its task, named by campaign, iteration and step, after reporting where the campaign stands
    (a proposal says whether it fits the model: after the ``initial_experiments`` of the design, the slow part)."""

    def wrap(step_name: str, iteration: int, step: Callable[..., Any]) -> Callable[..., Any]:
        if step_name == "propose":
            doing = ("fitting the model, proposing batch {}" if standing.done >= initial_experiments
                     else "proposing batch {} (initial design)")
            report_progress(standing.now(f"iteration {iteration} · {doing.format(iteration)}"))
        elif step_name != "record":  # record follows analyse at once: the display shows analyse until the end
            report_progress(standing.now(f"iteration {iteration} · {step_name}"))
        named = _TASKS[step_name].with_options(task_run_name=f"{name} · iteration {iteration:02d} · {step_name}")
        return partial(named, step)

    return wrap


def _iterate_until_finished(runner: CampaignRunner, name: str, live: LiveArtifacts, logger) -> None:
    """Run iterations until the budget is spent or a stopping rule holds, reporting each one's standing.

    Between iterations, a stop request is raised again by ``run_iteration`` before it proposes."""
    standing = Standing.of(runner.campaign)
    runner.on_finished = standing.add
    hooks = IterationHooks(
        wrap=_as_tasks(name, standing, runner.campaign.planner.initial_experiments),
        review=lambda batch: review(runner.campaign, batch, lambda step: report_progress(standing.now(step))),
        at_end=lambda: _update_dashboard(live, logger),  # orchestration: inside the iteration's measured time
    )
    while not runner.is_finished():
        iteration = runner.run_iteration(hooks)
        now = standing.now("done" if runner.is_finished() else "next iteration")
        line = f"iteration {iteration}: {now.done}/{now.total} experiments done, best {now.best or 'none yet'}"
        logger.info(line)
        report_note(line)
        report_progress(now)


def _update_dashboard(live: LiveArtifacts, logger, force: bool = False) -> None:
    """Refresh the dashboard's artifacts; a failure here never stops the campaign."""
    try:
        live.update(force)
    except Exception as err:
        logger.warning("dashboard artifacts not updated (%s: %s)", type(err).__name__, err)


def _run_to_the_end(runner: CampaignRunner, name: str, in_doubt: str, locks: Any, live: LiveArtifacts,
                    logger) -> None:
    """Settle what a crash left in doubt, check the instruments, then iterate until the campaign is finished.

    A stop request whose exception was swallowed on its way up (``orchestrator.run.stop_request``) is
    raised again between these, as ``CampaignRunner.run_iteration`` does between its steps, and once
    more at the end: a stop that came during the last step leaves the campaign interrupted, with any
    stopping rule's bookkeeping to the resume, not marked completed.
    """
    raise_if_stop_requested()
    runner.confirm_handoff = asking_in_the_dashboard(runner.campaign, report_note)  # reconcile may read a plate
    runner.reconcile(in_doubt)
    raise_if_stop_requested()
    if not runner.is_finished():
        with robot_for_the_run(runner, locks):
            preflight.with_options(task_run_name=f"{name} · preflight")(runner.preflight)
            _iterate_until_finished(runner, name, live, logger)
    raise_if_stop_requested()
    _stop_if_a_rule_holds(runner.campaign, logger)


def _open(yaml_text: str, source: str | None, store_url: str | None) -> tuple[Campaign, ResolvedDrivers | None]:
    """The campaign and its resolved drivers: as the starting command handed them over, or read here (a
    deployment's run, which nothing hands anything to) with the drivers left to the runner."""
    path = Path(source) if source else None
    opened = taken_over(yaml_text, store_url)
    if opened is None:
        return Campaign.from_text(yaml_text, store=store_url, source=path), None
    return Campaign.from_text(yaml_text, store=opened.store, source=path, spec=opened.spec), opened.drivers


def _stop_if_a_rule_holds(campaign: Campaign, logger) -> None:
    """When a stopping rule holds, store why and abandon the proposals that were never made."""
    decision = campaign.should_stop()
    if decision.stop:
        campaign.store.record_event(campaign.info.id, "stopped", {"reason": decision.reason})
        for waiting in campaign.experiments("proposed"):  # proposed but never made: not to be made now
            campaign.store.abandon(waiting.id, f"campaign stopped before it was made: {decision.reason}")
        logger.info("stopping: %s", decision.reason)


@flow(name="sdl-campaign", flow_run_name="{name}", validate_parameters=False, persist_result=False, log_prints=True)
def campaign_flow(name: str, yaml_text: str, source: str | None, store_url: str | None, dry_run: bool,
                  in_doubt: str = "ask") -> dict[str, Any]:
    """Run campaign ``name`` (its YAML text) against ``store_url`` until its budget is spent.

    Experiments a crash left dispatched but unmeasured are settled first (``in_doubt``: see
    ``orchestrator.run.reconcile``); nothing is ever dispatched twice. The parameters are what
    Prefect stores and shows, so ``store_url`` carries no password (``handover.without_password``):
    a PostgreSQL store's comes from ``PGPASSWORD`` or ``~/.pgpass``. What ``sdl run`` already read,
    the open store included, comes through ``orchestrator.prefect.handover``. After Ctrl-C or SIGTERM
    the campaign is interrupted, never failed, whatever exception the stop became on its way up
    (``orchestrator.run.stop_request``).
    """
    _quiet_refusals()
    logger = get_run_logger()
    # Prefect's flow engine has put its own SIGTERM handler over sdl's for this flow run: a stop is recorded under it too
    with recording_under_other_handlers():
        campaign, drivers = _open(yaml_text, source, store_url)
        # one runner per campaign: a second one is refused here, before it changes anything
        with HeldCampaign(campaign.store, campaign.info.id, campaign.spec.name) as held:
            runner = make_runner(campaign, dry_run, log=logger.info, drivers=drivers)
            runner.lease_token = held.token
            locks = lock_instruments(runner, dry_run)
            campaign.store.set_campaign_status(campaign.info.id, "running", dry_run=dry_run, source=source,
                                               locks=locks)
            live = LiveArtifacts(campaign)
            try:
                _run_to_the_end(runner, name, in_doubt, locks, live, logger)
            except BaseException as err:
                signum = stop_requested() or signal_behind(err)
                if signum is None:
                    campaign.store.set_campaign_status(campaign.info.id, "failed")
                    raise
                # a stop was asked for, whatever came out: its own exception may have been replaced on the way up
                campaign.store.set_campaign_status(campaign.info.id, "interrupted", signal=signal.Signals(signum).name)
                if isinstance(err, (KeyboardInterrupt, TerminationSignal)):
                    raise  # Prefect's engine marks the flow run crashed (cancelled, when its runner asked for that)
                raise StopRequested(signum) from err  # crashed, as for the stop itself, rather than failed
            finally:
                runner.close_instruments()  # a reader's USB port or event loop, the robot's HTTP connections
            campaign.store.set_campaign_status(campaign.info.id, "completed")
        _update_dashboard(live, logger, force=True)  # the final state, whenever the last refresh was
        try:
            report = publish.with_options(task_run_name=f"{name} · report")(campaign)
        except Exception as err:  # the campaign is complete and stored; a report can be made later
            logger.warning("report not written (%s: %s); make it with: sdl report %s", type(err).__name__, err, name)
            report = None
    return _summary(campaign, name, report)


def _summary(campaign: Campaign, name: str, report: str | None) -> dict[str, Any]:
    """What the flow returns: experiments by status, the best, the Pareto front's size, the report's path."""
    experiments = campaign.experiments()  # read once for the whole summary
    spec = campaign.spec
    outcome_constraints = spec.parsed_outcome_constraints()
    best = best_measured(experiments, campaign.objective, outcome_constraints)
    return {"campaign": name, "experiments": len(experiments), "report": report,
            "by_status": {status: sum(e.status == status for e in experiments)
                          for status in sorted({e.status for e in experiments})},
            "pareto_front": (len(pareto_front(experiments, spec.objectives, outcome_constraints))
                             if len(spec.objectives) > 1 else None),
            "best": {"id": best.id, "number": best.number, "params": best.params, "values": best.values} if best else None}
