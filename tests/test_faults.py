"""Instrument faults: rates, reproducibility under the seed, and how each kind surfaces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from instruments.errors import InstrumentError, InstrumentFault
from instruments.plate_plan import DILUENT, BatchItem, compile_plan
from instruments.simulated_lab import SimulatedLab
from instruments.opentrons.twin import SimulatedOpentrons
from instruments.spectrometers.twin import SimulatedSpectrometer
from orchestrator.run.spectra_analysis import spectrum_problem
from orchestrator.spec.lab import Simulation
from orchestrator.spec.loader import load_spec
from simulators import ColourMixingModel
from simulators.faults import FAULT_NAMES, ROBOT_FAULTS, FaultInjector

DEMO = Path(__file__).resolve().parents[1] / "campaigns" / "colour_match.yaml"
FAULTS_DEMO = DEMO.with_name("colour_match_faults.yaml")


@pytest.fixture(scope="module")
def handler():
    spec, _ = load_spec(DEMO)
    return spec.instruments.liquid_handler


def twins(rates, seed=0, stocks=None):
    lab = SimulatedLab(ColourMixingModel(), np.random.default_rng(seed), noise={"pipetting_cv": 0.01},
                       faults=FaultInjector(rates, seed), stocks_ul=stocks or {})
    return lab, SimulatedOpentrons("robot", "OT-2", lab, check_protocols=False), SimulatedSpectrometer("uvvis", lab)


def plan_for(handler, n=4, iteration=1):
    items = [BatchItem(i + 1, {"red": 30.0, "yellow": 40.0, "blue": 20.0}) for i in range(n)]
    return compile_plan(handler, "OT-2", iteration, items, wells_used=0)


def within_binomial(count, n, p, sigmas=4.0):
    return abs(count - n * p) <= sigmas * np.sqrt(n * p * (1 - p)) + 1


# rates and seeds -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ROBOT_FAULTS)
def test_each_robot_fault_fires_at_its_rate_per_run(name):
    injector, n = FaultInjector({name: 0.1}, seed=3), 4000
    faults = [injector.robot_fault(16) for _ in range(n)]
    fired = [f for f in faults if f is not None]
    assert within_binomial(len(fired), n, 0.1)
    assert {f.name for f in fired} == {name}
    # the transfer it strikes at is uniform over the run's 16 transfers
    positions = np.bincount([f.index for f in fired], minlength=16)
    assert len(positions) == 16 and positions.min() > 0


def test_combined_rates_and_reading_faults_match_their_probabilities():
    rates = {"tip_pickup": 0.04, "robot_stop": 0.03, "reagent_shortage": 0.03,
             "spectrometer_timeout": 0.05, "nan_reading": 0.05, "saturated_reading": 0.02}
    injector, n = FaultInjector(rates, seed=11), 5000
    robot = sum(injector.robot_fault(12) is not None for _ in range(n))
    assert within_binomial(robot, n, 1 - 0.96 * 0.97 * 0.97)
    timeouts = sum(injector.spectrometer_fault(4) is not None for _ in range(n))
    assert within_binomial(timeouts, n, 0.05)
    readings = [injector.reading_fault() for _ in range(n)]
    assert within_binomial(readings.count("nan_reading"), n, 0.05)
    assert within_binomial(readings.count("saturated_reading"), n, 0.02 * 0.95)  # NaN wins when both fire


def test_the_same_seed_gives_the_same_faults_and_another_seed_others():
    rates = {name: 0.2 for name in FAULT_NAMES}

    def sequence(seed):
        injector = FaultInjector(rates, seed)
        return [(injector.robot_fault(10), injector.spectrometer_fault(4), injector.reading_fault())
                for _ in range(200)]

    assert sequence(5) == sequence(5)
    assert sequence(5) != sequence(6)


def test_a_zero_rate_never_fires_and_bad_rates_are_refused():
    injector = FaultInjector({"robot_stop": 0.0}, seed=0)
    assert all(injector.robot_fault(8) is None for _ in range(500))
    with pytest.raises(ValueError, match="unknown fault 'gremlins'; use one of: tip_pickup"):
        FaultInjector({"gremlins": 0.1}, 0)
    with pytest.raises(ValueError, match=r"robot_stop: 1.5 is not a probability; give a value in \[0, 1\]"):
        FaultInjector({"robot_stop": 1.5}, 0)


def test_the_campaign_simulation_section_validates_faults_and_timing():
    sim = Simulation(model="colour_mixing", faults={"tip_pickup": 0.05}, timing="realistic", time_scale=0.1)
    assert sim.faults == {"tip_pickup": 0.05} and sim.timing == "realistic"
    assert Simulation(model="colour_mixing").timing == "instant"
    with pytest.raises(ValidationError, match="unknown fault 'tip_drop'"):
        Simulation(model="colour_mixing", faults={"tip_drop": 0.1})
    with pytest.raises(ValidationError, match="not a probability"):
        Simulation(model="colour_mixing", faults={"nan_reading": -0.1})
    with pytest.raises(ValidationError, match="instant"):
        Simulation(model="colour_mixing", timing="fast")
    spec, _ = load_spec(FAULTS_DEMO)
    robot = 1 - np.prod([1 - spec.simulation.faults[n] for n in ROBOT_FAULTS])
    assert robot == pytest.approx(0.1, abs=0.01)


# how each fault surfaces ------------------------------------------------------------------


@pytest.mark.parametrize("name, cause", [("tip_pickup", "tip_pickup_failure"), ("robot_stop", "robot_stopped"),
                                         ("reagent_shortage", "reagent_shortage")])
def test_robot_faults_stop_the_run_part_way_and_say_which_wells_were_done(handler, name, cause):
    lab, robot, _ = twins({name: 1.0}, seed=2)
    plan = plan_for(handler)
    with pytest.raises(InstrumentFault) as caught:
        robot.run_plan(plan)
    err = caught.value
    assert isinstance(err, InstrumentError) and err.cause == cause
    (run_id,) = lab.runs
    status = robot.run_status(run_id)
    assert status["status"] == "failed" and status["error"].startswith(cause)
    assert status["wells"] == err.wells_done and run_id in err.message
    labels = [plan.label(w.well) for w in plan.wells]
    assert err.wells_done == labels[: len(err.wells_done)] and len(err.wells_done) < len(labels)
    for label in err.wells_done:  # dispensed wells are full, later ones are not
        assert lab.total_ul(label) == pytest.approx(300, rel=0.05)
    assert all(lab.total_ul(label) < 299 for label in labels[len(err.wells_done):])


def test_a_reservoir_that_really_runs_dry_is_a_reagent_shortage(handler):
    plan = plan_for(handler)
    lab, robot, _ = twins({}, stocks={"red": 75.0, "yellow": 1e4, "blue": 1e4, DILUENT: 1e4})
    with pytest.raises(InstrumentFault, match="reservoir of red ran dry") as caught:
        robot.run_plan(plan)
    assert caught.value.cause == "reagent_shortage"
    assert caught.value.wells_done == [plan.label(w.well) for w in plan.wells[:2]]  # 2 x 30 uL fit in 75 uL
    assert lab.stocks_ul["red"] == pytest.approx(75.0 - lab.wells[plan.label("A1")]["red"]
                                                 - lab.wells[plan.label("B1")]["red"])


def test_spectrometer_timeout_raises_after_the_wells_it_read(handler):
    lab, robot, spectro = twins({"spectrometer_timeout": 1.0})
    plan = plan_for(handler)
    robot.run_plan(plan)
    labels = [plan.label(w.well) for w in plan.wells]
    with pytest.raises(InstrumentFault, match="no answer from the spectrometer") as caught:
        spectro.read_wells(labels)
    assert caught.value.cause == "spectrometer_timeout"
    assert caught.value.wells_done == labels[: len(caught.value.wells_done)]


@pytest.mark.parametrize("name, problem", [("nan_reading", "NaN"), ("saturated_reading", "saturated")])
def test_bad_readings_come_back_as_spectra_the_loop_rejects(handler, name, problem):
    lab, robot, spectro = twins({name: 1.0})
    plan = plan_for(handler)
    robot.run_plan(plan)
    spectra = spectro.read_wells([plan.label(w.well) for w in plan.wells])
    assert len(spectra) == len(plan.wells)
    for s in spectra:
        assert s.meta["fault"] == name
        assert problem in spectrum_problem(s.values, s.saturated)
    if name == "saturated_reading":
        assert all(s.saturated and s.values.max() == lab.model.detector_ceiling for s in spectra)


def test_without_faults_every_reading_is_good(handler):
    lab, robot, spectro = twins({})
    plan = plan_for(handler)
    robot.run_plan(plan)
    spectra = spectro.read_wells([plan.label(w.well) for w in plan.wells])
    assert all(spectrum_problem(s.values, s.saturated) is None and "fault" not in s.meta for s in spectra)
