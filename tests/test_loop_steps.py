"""The loop's steps without Prefect: safety before dispatch, bad readings, restarts."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.run.spectra_analysis import spectrum_problem
from orchestrator.run.campaign import Campaign
from orchestrator.run.steps import LoopError, make_runner
from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import demo_document, write_campaign


def runner_for(tmp_path, mutate=lambda doc: None):
    doc = demo_document()
    doc["budget"] = {"experiments": 8, "batch_size": 4}
    doc["planner"] = {"initial_experiments": 8}
    mutate(doc)
    campaign = Campaign.from_yaml(write_campaign(tmp_path, doc), store=f"sqlite:///{tmp_path / 's.db'}")
    return make_runner(campaign, dry_run=True, log=lambda _: None)


def run_one_iteration(runner):
    batch = runner.propose()
    plan = runner.prepare(batch)
    runner.record(runner.analyse(plan, runner.measure(plan)))
    return batch


def test_one_iteration_records_values_spectra_and_protocol(tmp_path):
    runner = runner_for(tmp_path)
    batch = run_one_iteration(runner)
    experiments = runner.campaign.experiments()
    assert [e.id for e in experiments] == [p.id for p in batch]
    assert all(e.status == "measured" and e.values["distance"] > 0 for e in experiments)
    assert [e.well for e in experiments] == ["P1-A1", "P1-B1", "P1-C1", "P1-D1"]
    (iteration,) = runner.store.iterations(runner.campaign.info.id)
    assert iteration["plan"]["wells"][0]["experiment_id"] == batch[0].id
    # the simulated plate holds what the plan asked for, made up to the fill volume
    for e in experiments:
        assert runner.instruments.lab.total_ul(e.well) == pytest.approx(300, rel=0.05)


def test_an_outcome_constraint_is_measured_recorded_exported_and_modelled(tmp_path):
    """``absorbance <= 0.6`` with a ``max_reading`` analysis: every well's highest absorbance is recorded beside
    its distance, exported as a column, and the next proposal models it (P(feasible) in its info)."""
    from orchestrator.store.export import experiment_rows

    def outcome(doc):
        doc["outcome_constraints"] = ["absorbance <= 0.6"]
        doc["analysis"].append({"objective": "absorbance", "kind": "max_reading"})
        doc["planner"] = {"initial_experiments": 4}

    runner = runner_for(tmp_path, outcome)
    run_one_iteration(runner)
    experiments = runner.campaign.experiments()
    for e in experiments:
        (reading,) = [m for m in runner.store.measurements(e.id) if m["kind"] == "absorbance"] or [None]
        assert reading is not None, runner.store.measurements(e.id)
        assert e.values["absorbance"] == pytest.approx(max(reading["values"]), rel=0.2)
    columns, rows = experiment_rows(runner.store, runner.campaign.info)
    assert "absorbance" in columns and [r["absorbance"] for r in rows] == [e.values["absorbance"] for e in experiments]
    (proposal,) = runner.campaign.ask(1)
    assert set(proposal.info["models"]) == {"distance", "absorbance"}
    assert 0.0 <= proposal.info["probability_feasible"] <= 1.0


def test_a_protocol_the_simulator_rejects_stops_the_loop_with_nothing_made(tmp_path):
    """The simulation before each robot run is the last guard, for a mistake no check of the file foresaw.

    ``validate`` refuses 10 uL tips on the 300 uL pipette, so the validated settings are swapped for
    them here; the twin runs the real ``opentrons.simulate``, which fails at the first aspiration.
    """
    runner = runner_for(tmp_path)
    labware = runner.handler_config.labware.model_copy(update={"tiprack_large": "opentrons_96_tiprack_10ul"})
    runner.handler_config = runner.handler_config.model_copy(update={"labware": labware})
    batch = runner.propose()
    with pytest.raises(LoopError, match="opentrons.simulate rejected") as caught:
        runner.prepare(batch)
    assert "\n" not in caught.value.one_line() and "stopped before any robot moved" in caught.value.hint
    assert runner.instruments.lab.wells == {}  # nothing was dispensed
    assert runner.store.iterations(runner.campaign.info.id) == []
    experiments = runner.campaign.experiments()
    # never made, so abandoned (their budget is free for when the labware is fixed)
    assert len(experiments) == 4 and all(e.status == "abandoned" for e in experiments)
    assert all(e.failure_reason.startswith("not run: ") and "opentrons.simulate rejected" in e.failure_reason
               for e in experiments)


def test_plan_beyond_reagent_stock_is_refused_before_any_instrument_call(tmp_path):
    def little_red(doc):
        doc["instruments"]["liquid_handler"]["reagents"]["red"]["stock_ul"] = 20

    runner = runner_for(tmp_path, little_red)
    batch = runner.propose()
    with pytest.raises(LoopError, match="red: needs .* only 20 uL of stock is left"):
        runner.prepare(batch)
    assert runner.instruments.lab.wells == {}  # nothing was dispensed
    assert runner.store.iterations(runner.campaign.info.id) == []
    assert all(e.status == "abandoned" and e.dispatched_at is None for e in runner.campaign.experiments())
    assert runner.campaign.remaining_budget() == 8  # never made: their place in the budget is free again


def test_stock_ledger_counts_every_stored_plan(tmp_path):
    runner = runner_for(tmp_path)
    before = runner.stock_left()
    batch = run_one_iteration(runner)
    after = runner.stock_left()
    used = sum(e.params["red"] for e in runner.campaign.experiments())
    assert before["red"] - after["red"] == pytest.approx(used)
    assert len(batch) == 4


def test_saturated_readings_are_failed_and_never_reach_the_planner(tmp_path):
    def low_ceiling(doc):
        doc["simulation"]["settings"]["max_absorbance"] = 0.01

    runner = runner_for(tmp_path, low_ceiling)
    run_one_iteration(runner)
    experiments = runner.campaign.experiments()
    assert all(e.status == "failed" and "saturated" in e.failure_reason for e in experiments)
    assert runner.campaign.observations() == []
    assert all(len(runner.store.measurements(e.id)) == 1 for e in experiments)  # the raw reading is kept


def test_non_finite_readings_are_a_problem():
    assert spectrum_problem(np.array([0.1, np.nan]), False) == "reading contains NaN or infinite values"
    assert spectrum_problem(np.array([0.1, np.inf]), False) is not None
    assert spectrum_problem(np.array([0.1, 0.2]), True).startswith("detector saturated")
    assert spectrum_problem(np.array([0.1, 0.2]), False) is None


def test_proposals_left_by_an_interrupted_run_are_used_first(tmp_path):
    runner = runner_for(tmp_path)
    asked = runner.campaign.ask(4)
    assert [p.id for p in runner.propose()] == [p.id for p in asked]
    assert len(runner.campaign.experiments()) == 4


def test_twins_implement_the_role_protocols(tmp_path):
    from instruments.roles import LiquidHandler, Spectrometer

    runner = runner_for(tmp_path)
    robot, spectrometer = runner.instruments.liquid_handler, runner.instruments.spectrometer
    assert isinstance(robot, LiquidHandler) and isinstance(spectrometer, Spectrometer)
    robot.connect()
    assert robot.health() == {"ok": True, "simulated": True, "connected": True, "robot_type": "OT-2"}
    robot.close()
    assert robot.health()["connected"] is False


def test_a_changed_file_for_an_existing_campaign_is_refused_before_the_flow_starts(tmp_path, capsys, monkeypatch):
    """Same name, different file, and experiments made from the first: one line, exit 1, in the command itself (no
    Prefect flow is started), and the stored campaign is untouched."""
    from orchestrator.cli import commands
    from orchestrator.cli import main

    url = f"sqlite:///{tmp_path / 's.db'}"
    doc = demo_document()
    original = write_campaign(tmp_path, doc, "first.yaml")
    first = Campaign.from_yaml(original, store=url)
    (made,) = first.ask(1)
    first.store.engine.dispose()
    doc["budget"] = {"experiments": 8, "batch_size": 4}
    changed = write_campaign(tmp_path, doc, "changed.yaml")

    def flow_started(*args, **kwargs):
        raise AssertionError("the flow must not start")

    monkeypatch.setattr(commands, "_run_flow", flow_started)
    assert main(["run", str(changed), "--dry-run", "--store", url]) == 1
    err = capsys.readouterr().err
    assert "already exists in" in err and "with a different campaign file" in err and "Traceback" not in err
    assert "to go on with the stored file: sdl resume colour-match-demo" in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    store = CampaignStore(url)
    info = store.find_campaign(doc["name"])
    assert info.spec_yaml == original.read_text() and [e.id for e in store.experiments(info.id)] == [made.id]


def test_a_campaign_with_no_experiment_yet_takes_a_changed_file(tmp_path):
    """A run stopped before its first proposal (e.g. at the instruments' check) is fixed and run under its name."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    doc = demo_document()
    first = Campaign.from_yaml(write_campaign(tmp_path, doc, "first.yaml"), store=url)
    doc["instruments"]["spectrometer"]["blank_well"] = "A12"
    changed = write_campaign(tmp_path, doc, "fixed.yaml")
    fixed = Campaign.from_yaml(changed, store=url)
    assert fixed.info.id == first.info.id and fixed.info.spec_yaml == changed.read_text()
    (event,) = fixed.store.events(fixed.info.id, "campaign_file_replaced")
    assert event["detail"] == {"old_spec_hash": first.info.spec_hash, "spec_hash": fixed.info.spec_hash}


def test_after_three_faulted_batches_the_loop_stops_and_names_the_command_to_resume(tmp_path):
    """Instrument faults are recorded batch by batch; the third in a row stops the loop with a hint that names
    this campaign's resume command."""
    from instruments.errors import InstrumentError
    from orchestrator.run.steps import MAX_FAULTY_BATCHES_IN_A_ROW

    runner = runner_for(tmp_path, lambda doc: doc.update(budget={"experiments": 12, "batch_size": 4},
                                                         planner={"initial_experiments": 12}))  # no model fits
    fault = InstrumentError("lamp failed")
    for batch_number in range(1, MAX_FAULTY_BATCHES_IN_A_ROW + 1):
        plan = runner.prepare(runner.propose())
        if batch_number < MAX_FAULTY_BATCHES_IN_A_ROW:
            runner._batch_faulted(plan, "spectrometer: lamp failed", fault)
            continue
        with pytest.raises(LoopError, match="3 batches in a row lost to instrument faults") as stopped:
            runner._batch_faulted(plan, "spectrometer: lamp failed", fault)
    assert stopped.value.hint == f"check the instruments, then: sdl resume {runner.campaign.spec.name}"
    assert {e.failure_kind for e in runner.campaign.experiments()} == {"instrument"}

