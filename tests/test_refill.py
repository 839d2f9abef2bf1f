"""``sdl refill``: fresh tip racks and topped-up reservoir wells, recorded so the campaign can go on."""

from __future__ import annotations

import logging

import pytest

from instruments.opentrons.deck import OT2
from instruments.plate_plan import TIP_RACKS, BatchItem, compile_plan, tips_needed
from orchestrator.run.campaign import Campaign
from orchestrator.cli import main
from orchestrator.run.consumables import stock_left, tips_left, tips_used
from orchestrator.prefect.flows import _quiet_refusals
from orchestrator.run.steps import LoopError
from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import demo_document, write_campaign


def small_demo(tmp_path, red_stock_ul: float = 15000.0):
    doc = demo_document()
    doc["name"] = "refill-demo"
    doc["budget"] = {"experiments": 8, "batch_size": 4}
    doc["planner"] = {"initial_experiments": 4}
    doc["instruments"]["liquid_handler"]["reagents"]["red"]["stock_ul"] = red_stock_ul
    return write_campaign(tmp_path, doc), f"sqlite:///{tmp_path / 's.db'}"


def test_a_campaign_stopped_by_empty_stock_goes_on_after_a_refill(prefect_server, tmp_path, capsys):
    path, url = small_demo(tmp_path, red_stock_ul=20)
    assert main(["run", str(path), "--dry-run", "--store", url]) == 1
    err = capsys.readouterr().err
    assert "red: needs" in err and "nothing dispatched" in err
    assert "'sdl refill refill-demo --stock red=UL'" in err and "then: sdl resume refill-demo" in err
    assert "CAMPAIGN" not in err and "fix the limit" not in err and "run again" not in err

    assert main(["refill", "refill-demo", "--stock", "red=5000", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "refill recorded after iteration 0" in out and "red 5,000 uL" in out

    assert main(["resume", "refill-demo", "--store", url]) == 0
    store = CampaignStore(url)
    campaign = store.get_campaign("refill-demo")
    experiments = store.experiments(campaign.id)
    assert sum(e.status == "measured" for e in experiments) == 8
    assert sum(e.status == "abandoned" for e in experiments) == 4  # the refused batch, never dispensed
    plans = [it["plan"] for it in store.iterations(campaign.id)]
    red_used = sum(w["volumes_ul"].get("red", 0.0) for p in plans for w in p["wells"])
    handler = Campaign.from_yaml(path, store=url).spec.instruments.liquid_handler
    assert stock_left(handler, plans, store.events(campaign.id))["red"] == pytest.approx(5000 - red_used)
    assert red_used > 20  # more than the declared stock: the twin's reservoir was refilled too


def test_prefect_logs_a_refusal_without_its_traceback_and_a_bug_with_it(prefect_server):
    """An ``OrchestratorError`` (a refused plan, stock to refill) is one log line; anything else keeps its traceback."""
    from prefect import flow, task

    lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(logging.Formatter().format(record))

    @task(retries=0)
    def step(error: Exception):
        raise error

    @flow(persist_result=False)
    def one_step(error: Exception):
        _quiet_refusals()
        logger, handler = logging.getLogger("prefect.task_runs"), Lines()
        logger.addHandler(handler)  # inside the run: Prefect configures its logging when the run starts
        try:
            step(error)
        finally:
            logger.removeHandler(handler)

    for error in (LoopError("plan refused: stock to refill"), ZeroDivisionError("a bug")):
        with pytest.raises(type(error)):
            one_step(error)
    refused = [line for line in lines if "failed with exception: LoopError" in line]
    bug = [line for line in lines if "failed with exception: ZeroDivisionError" in line]
    assert len(refused) == 1 and "Traceback" not in refused[0]
    assert len(bug) == 1 and "Traceback" in bug[0]


def test_a_tip_refill_counts_only_the_batches_after_it(prefect_server, tmp_path, capsys):
    path, url = small_demo(tmp_path)
    assert main(["run", str(path), "--dry-run", "--store", url]) == 0
    store = CampaignStore(url)
    campaign = store.get_campaign("refill-demo")
    plans = [it["plan"] for it in store.iterations(campaign.id)]
    before = tips_used(plans, store.events(campaign.id))
    assert before[TIP_RACKS["large"]] > 0

    assert main(["refill", "refill-demo", "--tips", "large", "--store", url]) == 0
    events = store.events(campaign.id)
    after = tips_used(plans, events)
    assert after == {TIP_RACKS["small"]: before[TIP_RACKS["small"]], TIP_RACKS["large"]: 0}
    assert tips_left(plans, events)["large"] == 96

    capsys.readouterr()
    assert main(["status", "refill-demo", "--store", url]) == 0
    assert "deck: tips left small" in capsys.readouterr().out


@pytest.mark.parametrize("arguments, message", [
    ([], "nothing to record"),
    (["--stock", "purple=100"], "has no reagent 'purple'"),
    (["--stock", "red=-5"], "must be a positive volume"),
    (["--stock", "red=lots"], "is not a volume in uL"),
    (["--stock", "red"], "is not REAGENT=UL"),
    (["--stock", "red=99999999"], "its reservoir well holds at most 15000 uL"),
])
def test_bad_refills_get_one_line_and_exit_2_and_record_nothing(tmp_path, capsys, arguments, message):
    path, url = small_demo(tmp_path)
    campaign = Campaign.from_yaml(path, store=url)
    assert main(["refill", "refill-demo", *arguments, "--store", url]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not [e for e in campaign.store.events(campaign.info.id) if e["kind"] == "refilled"]


def test_status_counts_the_tips_and_stock_of_a_batch_still_on_the_deck(tmp_path, capsys):
    """While the robot makes a batch, its iteration is not stored yet; its plan (kept at dispatch) still counts."""
    path, url = small_demo(tmp_path)
    campaign = Campaign.from_yaml(path, store=url)
    batch = campaign.ask(4)
    handler = campaign.spec.instruments.liquid_handler
    plan = compile_plan(handler, OT2, batch[0].iteration, [BatchItem(p.id, p.params) for p in batch], wells_used=0)
    campaign.store.mark_dispatched({w.experiment_id: (plan.label(w.well), p.params) for w, p in zip(plan.wells, batch)},
                                   batch={"iteration": plan.iteration, "plan": plan.model_dump(mode="json")})
    tips = tips_needed(plan)
    red_ul = 15000 - sum(w.volumes_ul.get("red", 0.0) for w in plan.wells)
    assert tips["large"] > 0 and red_ul < 15000

    assert main(["status", "refill-demo", "--store", url]) == 0
    out = capsys.readouterr().out
    assert (f"deck: tips left small {96 - tips['small']}, large {96 - tips['large']}; stock left red {red_ul:,.0f} uL"
            in out), out
    assert f"(after iteration {plan.iteration}, dispatched and not measured yet)" in out


def test_refill_is_refused_while_a_batch_is_in_flight(tmp_path, capsys):
    path, url = small_demo(tmp_path)
    campaign = Campaign.from_yaml(path, store=url)
    (p, *_) = campaign.ask(4)
    campaign.store.mark_dispatched({p.id: ("P1-A1", p.params)})
    assert main(["refill", "refill-demo", "--tips", "all", "--store", url]) == 1
    err = capsys.readouterr().err
    assert f"experiments {p.id} of 'refill-demo' are dispatched" in err and "sdl resume refill-demo" in err


def test_a_campaign_without_a_liquid_handler_has_nothing_to_refill(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    Campaign.from_text("name: asktell\nbudget: {experiments: 4, batch_size: 1}\n"
                       "parameters: [{name: x, type: continuous, bounds: [0, 1]}]\n"
                       "objectives: [{name: y, direction: maximize}]\n", store=url)
    assert main(["refill", "asktell", "--tips", "all", "--store", url]) == 2
    assert "has no liquid handler" in capsys.readouterr().err
