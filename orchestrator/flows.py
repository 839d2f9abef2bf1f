"""Prefect flow of a campaign: one flow run per campaign, one task per step.

Thin by design: each task wraps one ``CampaignRunner`` step. Instrument tasks never use
result caching (a cached physical step would be silently skipped) and never retry.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from orchestrator.campaign import Campaign
from orchestrator.loop import CampaignRunner, make_runner

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


def _named(step, campaign: str, iteration: int):
    return step.with_options(task_run_name=f"{campaign} · iteration {iteration:02d} · {step.name}")


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
            started = time.perf_counter()
            batch = _named(propose, name, campaign.next_iteration())(runner)
            iteration = batch[0].iteration
            plan = _named(prepare, name, iteration)(runner, batch)
            spectra = _named(measure, name, iteration)(runner, plan)
            outcomes = _named(analyse, name, iteration)(runner, plan, spectra)
            _named(record, name, iteration)(runner, outcomes)
            runner.record_timing(iteration, time.perf_counter() - started)
            best = campaign.best()
            done = len(campaign.experiments()) - len(campaign.experiments("proposed"))
            logger.info(
                "iteration %d: %d/%d experiments done, best %s so far %s",
                iteration, done, campaign.spec.budget.experiments, campaign.objective.name,
                f"{best.values[campaign.objective.name]:.4g}" if best else "none",
            )
    except BaseException:
        campaign.store.set_campaign_status(campaign.info.id, "failed")
        raise
    campaign.store.set_campaign_status(campaign.info.id, "completed")
    best = campaign.best()
    return {"campaign": name, "experiments": len(campaign.experiments()),
            "best": {"id": best.id, "params": best.params, "values": best.values} if best else None}
