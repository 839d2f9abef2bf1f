"""Prefect flow of a campaign: one flow run per campaign, one task per step.

Thin by design: each task wraps one ``CampaignRunner`` step. Instrument tasks never use
result caching (a cached physical step would be silently skipped) and never retry.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from orchestrator.campaign import Campaign
from orchestrator.loop import CampaignRunner, make_runner
from orchestrator.progress import ProgressUpdate, report_note, report_progress
from orchestrator.store import TERMINAL, default_report_dir

_STEP = dict(cache_policy=NO_CACHE, retries=0, persist_result=False)


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

    from orchestrator.export import experiment_rows
    from orchestrator.report import build_report

    name, key = campaign.spec.name, artifact_key(campaign.spec.name)
    columns, rows = experiment_rows(campaign.store, campaign.info)
    create_table_artifact(key=f"{key}-experiments", table=[{c: r[c] for c in columns} for r in rows],
                          description=f"Every experiment of campaign {name}")
    path = build_report(campaign.store, name, default_report_dir(name)).resolve()
    create_link_artifact(key=f"{key}-report", link=path.as_uri(), link_text=f"Report of {name}",
                         description=f"campaign file sha256 {campaign.info.spec_hash}")
    return str(path)


def artifact_key(campaign_name: str) -> str:
    """Prefect artifact keys take lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", campaign_name.lower()).strip("-") or "campaign"


def _named(step, campaign: str, iteration: int):
    return step.with_options(task_run_name=f"{campaign} · iteration {iteration:02d} · {step.name}")


def _standing(campaign: Campaign, step: str) -> ProgressUpdate:
    """Where ``campaign`` stands now, as a progress update."""
    best = campaign.best()
    objective = campaign.objective.name
    finished = sum(e.status in TERMINAL for e in campaign.experiments())
    return ProgressUpdate(campaign.spec.name, finished, campaign.spec.budget.experiments, step,
                          f"{objective} {best.values[objective]:.4g}" if best else None)


def _run_iteration(runner: CampaignRunner, name: str) -> int:
    """One iteration as five named tasks; returns its number."""
    campaign = runner.campaign
    started = time.perf_counter()
    iteration = campaign.next_iteration()
    report_progress(_standing(campaign, f"iteration {iteration} · propose"))
    batch = _named(propose, name, iteration)(runner)
    iteration = batch[0].iteration
    report_progress(_standing(campaign, f"iteration {iteration} · prepare"))
    plan = _named(prepare, name, iteration)(runner, batch)
    report_progress(_standing(campaign, f"iteration {iteration} · measure"))
    spectra = _named(measure, name, iteration)(runner, plan)
    report_progress(_standing(campaign, f"iteration {iteration} · analyse"))
    outcomes = _named(analyse, name, iteration)(runner, plan, spectra)
    _named(record, name, iteration)(runner, outcomes)
    runner.record_timing(iteration, time.perf_counter() - started)
    return iteration


@flow(name="sdl-campaign", flow_run_name="{name}", validate_parameters=False, persist_result=False, log_prints=True)
def campaign_flow(name: str, yaml_text: str, source: str | None, store_url: str | None, dry_run: bool) -> dict[str, Any]:
    """Run campaign ``name`` (its YAML text) against ``store_url`` until its budget is spent."""
    logger = get_run_logger()
    campaign = Campaign.from_text(yaml_text, store=store_url, source=Path(source) if source else None)
    runner = make_runner(campaign, dry_run, log=logger.info)
    runner.refuse_unsafe_restart()
    campaign.store.set_campaign_status(campaign.info.id, "running", dry_run=dry_run)
    try:
        while not runner.is_finished():
            iteration = _run_iteration(runner, name)
            standing = _standing(campaign, "done" if runner.is_finished() else "next iteration")
            line = (f"iteration {iteration}: {standing.done}/{standing.total} experiments done, "
                    f"best {standing.best or 'none yet'}")
            logger.info(line)
            report_note(line)
            report_progress(standing)
    except BaseException:
        campaign.store.set_campaign_status(campaign.info.id, "failed")
        raise
    campaign.store.set_campaign_status(campaign.info.id, "completed")
    try:
        report = publish.with_options(task_run_name=f"{name} · report")(campaign)
    except Exception as err:  # the campaign is complete and stored; a report can be made later
        logger.warning("report not written (%s: %s); make it with: sdl report %s", type(err).__name__, err, name)
        report = None
    best = campaign.best()
    return {"campaign": name, "experiments": len(campaign.experiments()), "report": report,
            "best": {"id": best.id, "params": best.params, "values": best.values} if best else None}
