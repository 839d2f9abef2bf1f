"""A cuvette station on the robot's deck, read by the fibre spectrometer (issue 29, part 2).

Protects: each robot step of a batch's reading is an Opentrons protocol that ``opentrons.simulate`` runs, and
takes exactly the tips its plan set aside after the plate's own; the plan (so the consumables ledger) counts the
rinse solvent and the tips of the reading, checked against hand counts; a run with too little rinse solvent or
too few tips is refused before anything moves, in one line naming the refill (and ``sdl refill`` tops the rinse
solvent up like any stock); the Ocean Optics driver with the built-in sampler reads the wells in order through
the loopback robot, with the reference on the solvent in the cuvette; validation refuses a holder or volumes that
cannot work; and the cuvette campaign's dry run completes.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from instruments.cuvette.protocol import render_step, step_file_name
from instruments.cuvette.station import RINSE_SOLVENT, robot_steps, station_solvent_ul, station_tips
from instruments.errors import InstrumentError, PlanLimitError
from instruments.opentrons.deck import well_name
from instruments.opentrons.deck_layout import build_deck
from instruments.opentrons.http_driver import OpentronsHTTP
from instruments.opentrons.protocol_script import render_protocol, simulate_protocol
from instruments.plate_plan import BatchItem, check_plan, compile_plan, tips_needed
from instruments.spectrometers.ocean_optics import OceanOpticsSpectrometer
from orchestrator.cli import main
from orchestrator.run.campaign import Campaign
from orchestrator.run.consumables import next_racks, stock_left, tips_left
from orchestrator.run.steps import LoopError, make_runner
from orchestrator.spec.loader import parse_spec
from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import demo_document, write_campaign
from tests.cuvette_bench import CAMPAIGN, SOLVENT, CuvetteBeam, cuvette_deck, cuvette_spec, plan_for
from tests.fake_seabreeze import FakeSeaBreeze
from tests.opentrons_robot_server import RobotServer

LABWARE = CAMPAIGN.parent / "labware"
#: 60 uL of red made up with 240 uL of water: both above the Flex 50 uL pipette's range, so 2 large tips a well
RED_60 = {"red": 60.0, "yellow": 0.0, "blue": 0.0}
#: the shipped campaign's station: a 250 uL aliquot, 2 rinses of 270 uL
ALIQUOT_UL, RINSE_UL, RINSES = 250.0, 270.0, 2


def hand_count_tips(n_wells: int) -> int:
    """Empty + solvent fill for the reference, then per well: aliquot, emptying, one per rinse."""
    return 3 + n_wells * (2 + RINSES)


def hand_count_solvent_ul(n_wells: int) -> float:
    return ALIQUOT_UL + n_wells * RINSES * RINSE_UL


def cuvette_document() -> dict:
    return yaml.safe_load(CAMPAIGN.read_text())


def write_cuvette_campaign(tmp_path: Path, document: dict) -> Path:
    shutil.copytree(LABWARE, tmp_path / "labware", dirs_exist_ok=True)  # custom labware lies beside the file
    return write_campaign(tmp_path, document)


def picked_tips(run_log: str) -> list[tuple[str, str]]:
    """``(slot, tip well)`` of each ``Picking up tip from B4 of ... on slot C2`` line of a simulated run."""
    return [(slot, well) for well, slot in re.findall(r"Picking up tip from (\w+) of .* on slot (\w+)", run_log)]


def rack_positions(racks: list[str], first: int, count: int) -> list[tuple[str, str]]:
    """``(slot, tip well)`` of tips ``first`` .. ``first + count - 1`` counted across ``racks`` column by column."""
    return [(racks[i // 96], well_name(i % 96)) for i in range(first, first + count)]


# -- the protocols --------------------------------------------------------------------------------


def ot2_cuvette_spec():
    """The OT-2 demo campaign read at a cuvette station in slot 5, its holder from campaigns/labware."""
    document = demo_document()
    document["instruments"]["liquid_handler"]["deck"] = {
        "custom_labware": {"sdl_1_cuvette_holder_1000ul": "labware/sdl_1_cuvette_holder_1000ul.json"}}
    document["instruments"]["spectrometer"] = cuvette_document()["instruments"]["spectrometer"]
    document["instruments"]["spectrometer"]["cuvette"]["slot"] = "5"
    spec = parse_spec(yaml.safe_dump(document), "ot2_cuvette.yaml")
    return spec, build_deck(spec.instruments.liquid_handler, "OT-2", CAMPAIGN.parent)


@pytest.mark.parametrize("robot", ["Flex", "OT-2"])
def test_every_step_of_a_batch_passes_opentrons_simulate_and_takes_the_tips_set_aside(robot):
    spec, deck = (cuvette_spec(), None) if robot == "Flex" else ot2_cuvette_spec()
    deck = deck or cuvette_deck(spec)
    batch = [BatchItem(i + 1, RED_60) for i in range(4)]
    plan = compile_plan(spec.instruments.liquid_handler, deck, 3, batch, 0, tips_used={"tiprack_large": 10},
                        cuvette=spec.instruments.spectrometer.cuvette)
    steps = robot_steps(plan.cuvette, [w.well for w in plan.wells], plan.plate, plan.deck)
    assert [s.before for s in steps] == ["reference", "P1-A1", "P1-B1", "P1-C1", "P1-D1", ""]
    picked = picked_tips(simulate_protocol(render_protocol(plan))[0])
    for index in range(len(steps)):
        text = render_step(plan, steps, index, deck.api_level)
        log, _ = simulate_protocol(text, file_name=step_file_name(plan, index))
        picked += picked_tips(log)
        assert "Dispensing" in log and "Dropping tip" in log
    racks = list(deck.tip_rack_slots["tiprack_large"])
    large = 8 + hand_count_tips(4)  # the plate's 2 a well, then the cuvette's
    assert tips_needed(plan) == {"small": 0, "large": large}
    # one fresh tip each, the plate's first and then the cuvette's, from the 11th tip of the first rack on
    assert picked == rack_positions(racks, 10, large)


# -- the ledger -----------------------------------------------------------------------------------


def test_the_plan_and_the_ledger_count_the_rinse_solvent_and_the_tips_by_hand():
    spec = cuvette_spec()
    handler, cuvette, deck = spec.instruments.liquid_handler, spec.instruments.spectrometer.cuvette, cuvette_deck(spec)
    plans = []
    for iteration in (1, 2):
        tips_start, order = next_racks(plans, [], deck)
        plan = compile_plan(handler, deck, iteration, [BatchItem(10 * iteration + i, RED_60) for i in range(4)],
                            4 * (iteration - 1), tips_used=tips_start, rack_order=order, cuvette=cuvette)
        check_plan(plan, stock_left(handler, plans, [], cuvette))
        plans.append(plan.model_dump(mode="json"))
    assert station_tips(plan.cuvette, 4, deck) == {"small": 0, "large": 19} == {"small": 0, "large": hand_count_tips(4)}
    assert station_solvent_ul(plan.cuvette, 4) == 2410 == hand_count_solvent_ul(4)
    assert plan.reagent_totals()[RINSE_SOLVENT] == 2410
    assert plan.cuvette.first_tip == {"tiprack_small": 0, "tiprack_large": 27 + 8}  # after batch 1 and this plate
    assert stock_left(handler, plans, [], cuvette)[RINSE_SOLVENT] == 15000 - 2 * 2410
    assert tips_left(plans, [], deck) == {"small": 96, "large": 3 * 96 - 2 * 27}
    refill = [{"kind": "refilled", "detail": {"after_iteration": 2, "tip_racks": [], "stock_ul": {RINSE_SOLVENT: 14000}}}]
    assert stock_left(handler, plans, refill, cuvette)[RINSE_SOLVENT] == 14000


def test_a_plan_short_of_tips_for_the_cuvette_is_refused_naming_its_share():
    spec = cuvette_spec()
    plan = compile_plan(spec.instruments.liquid_handler, cuvette_deck(spec), 1, [BatchItem(1, RED_60)], 0,
                        tips_used={"tiprack_large": 3 * 96 - 6}, cuvette=spec.instruments.spectrometer.cuvette)
    with pytest.raises(PlanLimitError) as caught:
        check_plan(plan, {}, campaign="colour-match-cuvette")
    line = caught.value.one_line()
    assert "9 large-pipette tips needed (7 of them for the cuvette) but only 6 are left" in line
    assert "nothing dispatched" in line and "sdl refill colour-match-cuvette --tips large" in line


def small_cuvette_campaign(tmp_path: Path, mutate=lambda doc: None) -> Campaign:
    document = cuvette_document()
    document["budget"] = {"experiments": 8, "batch_size": 4}
    document["planner"] = {"initial_experiments": 8}
    mutate(document)
    return Campaign.from_yaml(write_cuvette_campaign(tmp_path, document), store=f"sqlite:///{tmp_path / 's.db'}")


def assert_nothing_moved(runner) -> None:
    campaign_id = runner.campaign.info.id
    assert runner.store.iterations(campaign_id) == []
    assert runner.store.events(campaign_id, "batch_dispatched") == []
    assert {e.status for e in runner.campaign.experiments()} == {"abandoned"}
    lab = runner.instruments.lab
    assert (lab.wells, lab.runs, lab.cuvette, lab.tips_used) == ({}, {}, {}, 0)


def test_too_little_rinse_solvent_is_refused_before_anything_moves_and_a_refill_goes_on(tmp_path, capsys):
    def short_of_solvent(document):
        document["instruments"]["spectrometer"]["cuvette"]["rinse_solvent"]["stock_ul"] = 2000

    campaign = small_cuvette_campaign(tmp_path, short_of_solvent)
    runner = make_runner(campaign, dry_run=True, log=lambda _: None)
    runner.preflight()
    with pytest.raises(LoopError) as caught:
        runner.run_iteration()
    line = caught.value.one_line()
    assert "\n" not in line and "nothing dispatched" in line
    assert "rinse_solvent (the cuvette's rinses and reference): needs 2410 uL but only 2000 uL of stock is left" in line
    assert "'sdl refill colour-match-cuvette --stock rinse_solvent=UL'" in line and "sdl resume" in line
    assert_nothing_moved(runner)
    assert runner.instruments.lab.stocks_ul[RINSE_SOLVENT] == 2000

    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["refill", "colour-match-cuvette", "--stock", "rinse_solvent=15000", "--store", url]) == 0
    assert "rinse_solvent 15,000 uL" in capsys.readouterr().out
    runner.run_iteration()  # the twin's reservoir is refilled too, and the next batch is read
    measured = [e for e in runner.campaign.experiments() if e.status == "measured"]
    assert len(measured) == 4
    assert runner.stock_left()[RINSE_SOLVENT] == 15000 - 2410
    assert runner.instruments.lab.stocks_ul[RINSE_SOLVENT] == pytest.approx(15000 - 2410, abs=50)  # 1 % pipetting


def test_too_few_tips_for_the_cuvette_are_refused_before_anything_moves(tmp_path):
    def one_short_rack(document):
        document["instruments"]["liquid_handler"]["deck"]["tip_racks"] = {"right": {"slots": ["C2"],
                                                                                   "starting_tip": "A11"}}

    runner = make_runner(small_cuvette_campaign(tmp_path, one_short_rack), dry_run=True, log=lambda _: None)
    with pytest.raises(LoopError) as caught:
        runner.run_iteration()
    line = caught.value.one_line()
    assert "large-pipette tips needed (19 of them for the cuvette) but only 16 are left in tiprack_large" in line
    assert "sdl refill colour-match-cuvette --tips large" in line
    assert_nothing_moved(runner)


# -- the Ocean Optics driver, the real sampler and the loopback robot --------------------------------


@pytest.fixture
def bench():
    """The shipped cuvette campaign's Ocean Optics driver over a fake device whose beam sees what the loopback Flex
    left in the cuvette, the real HTTP driver attached to it as the loop attaches it."""
    spec = cuvette_spec()
    deck, section = cuvette_deck(spec), spec.instruments.spectrometer
    with RobotServer("Flex") as server:
        robot = OpentronsHTTP("opentrons_flex", spec.instruments.liquid_handler, "Flex", port=server.port,
                              poll_interval_s=0.02, run_timeout_s=20.0, stuck_grace_s=0.3, release_timeout_s=3.0,
                              connect_timeout_s=1.0, request_timeout_s=5.0)
        device = CuvetteBeam("FLMS01", server.robot, section.cuvette.slot, seed=4)
        driver = OceanOpticsSpectrometer("ocean_optics", section.model_copy(update={"serial": "FLMS01"}),
                                         backend=FakeSeaBreeze(device))
        driver.attach_robot(robot, deck)
        yield driver, device, robot, server, spec, deck
        robot.close()


def test_ocean_optics_reads_each_well_in_order_with_the_reference_on_the_solvent(bench):
    driver, device, robot, server, spec, deck = bench
    device.samples = {"P1-A1": 0.5, "P1-B1": 0.1, "P1-C1": 0.8}
    labels = list(device.samples)
    plan = plan_for(labels, spec, deck)
    stored = []
    robot.on_run_created = stored.append  # the loop's hook: it must keep the batch's dispensing run alone
    driver.use_plan(plan)
    spectra = driver.read_wells(labels)

    assert [s.well for s in spectra] == labels
    for spectrum, transmission in zip(spectra, device.samples.values()):
        # 1 % carry-over at most after two rinses, and the detector's noise
        assert np.nanmedian(spectrum.values) == pytest.approx(-np.log10(transmission), abs=0.02)
    lit = [contents for shutter_open, contents in device.seen if shutter_open]
    in_beam = [max(contents, key=contents.get) for contents in lit]
    assert [part for i, part in enumerate(in_beam) if i == 0 or part != in_beam[i - 1]] == [SOLVENT, *labels]
    assert lit[0] == {SOLVENT: ALIQUOT_UL}  # the reference: the cuvette filled with solvent alone
    assert device.cuvette() == {}  # emptied and rinsed after the last well
    runs = list(server.robot.runs.values())
    assert [r["status"] for r in runs] == ["succeeded"] * (len(labels) + 2)
    assert [server.robot.analyses[r["protocolId"]][-1]["result"] for r in runs] == ["ok"] * len(runs)
    racks = list(deck.tip_rack_slots["tiprack_large"])
    assert device.tips == rack_positions(racks, plan.cuvette.first_tip["tiprack_large"], hand_count_tips(3))
    assert stored == [] and robot.on_run_created == stored.append


def test_a_read_tried_again_goes_on_from_where_the_robot_is(bench):
    driver, device, _robot, server, spec, deck = bench
    device.samples = {"P1-A1": 0.5, "P1-B1": 0.1}
    labels = list(device.samples)
    driver.use_plan(plan_for(labels, spec, deck))
    sample, failed = driver.acquire_sample, []

    def flaky(label):  # the spectrometer fails once, with well B1 in the cuvette
        if label == "P1-B1" and not failed:
            failed.append(label)
            raise InstrumentError("USB dropped", hint="reconnect")
        return sample(label)

    driver.acquire_sample = flaky
    with pytest.raises(InstrumentError, match="USB dropped"):
        driver.read_wells(labels)
    first, second = driver.read_wells(labels)  # the loop's next try: no new tips, no new aliquots
    assert np.nanmedian(second.values) == pytest.approx(1.0, abs=0.02)
    assert device.cuvette() == {} and len(device.tips) == hand_count_tips(2)  # emptied; each tip taken once
    assert len(server.robot.runs) == len(labels) + 2


def test_a_failed_robot_step_stops_the_batch_in_one_line():
    spec = cuvette_spec()
    deck, section = cuvette_deck(spec), spec.instruments.spectrometer
    with RobotServer("Flex", fault="fail") as server:
        robot = OpentronsHTTP("opentrons_flex", spec.instruments.liquid_handler, "Flex", port=server.port,
                              poll_interval_s=0.02, run_timeout_s=20.0, release_timeout_s=3.0, check_protocols=False)
        device = CuvetteBeam("FLMS01", server.robot, section.cuvette.slot)
        driver = OceanOpticsSpectrometer("ocean_optics", section.model_copy(update={"serial": "FLMS01"}),
                                         backend=FakeSeaBreeze(device))
        driver.attach_robot(robot, deck)
        driver.use_plan(plan_for(["P1-A1"], spec, deck))
        with pytest.raises(InstrumentError) as failed:
            driver.read_wells(["P1-A1"])
        assert "cuvette station, robot step 1 of 3 (fill the cuvette with rinse solvent for the reference) failed" \
            in failed.value.one_line()
        runs = len(server.robot.runs)
        with pytest.raises(InstrumentError) as refused:  # the loop tries again: refused, the robot left alone
            driver.read_wells(["P1-A1"])
        assert "iteration 1 cannot be read any more" in refused.value.one_line()
        assert "\n" not in refused.value.one_line() and len(server.robot.runs) == runs
        robot.close()


# -- validation -----------------------------------------------------------------------------------


def with_cuvette(**changes):
    def mutate(document):
        document["instruments"]["spectrometer"]["cuvette"].update(changes)
    return mutate


def with_holder_of(ul: float):
    def mutate(document, folder):
        definition = json.loads((LABWARE / "sdl_1_cuvette_holder_1000ul.json").read_text())
        definition["wells"]["A1"]["totalLiquidVolume"] = ul
        (folder / "labware" / "sdl_1_cuvette_holder_1000ul.json").write_text(json.dumps(definition))
    return mutate


@pytest.mark.parametrize("change, expected", [
    (with_cuvette(aliquot_ul=320), "cuvette.aliquot_ul: 320 uL is more than the 300 uL each well is filled with"),
    (with_cuvette(rinse_ul=1200), "cuvette.rinse_ul: 1200 uL is more than the 1000 uL the cuvette"),
    (with_cuvette(slot="C2"), "cuvette.slot: slot C2 already holds the tiprack_large; give the cuvette holder a free"),
    (with_cuvette(slot="A3"), "cuvette.slot: 'A3' is not a deck slot of the Flex here; use a free one"),
    (with_cuvette(labware="nest_12_reservoir_15ml"), "nest_12_reservoir_15ml has 12 wells; a cuvette holder has one"),
    (with_cuvette(labware="sdl_no_such_holder"), "'sdl_no_such_holder' is not a standard Opentrons labware"),
    (with_cuvette(rinse_solvent={"well": "A13", "stock_ul": 5000}), "rinse_solvent.well: nest_12_reservoir_15ml has "
                                                                    "no well A13"),
    (with_cuvette(rinse_solvent={"well": "A5", "stock_ul": 20000}), "rinse_solvent.stock_ul: 20000 uL is more than"),
    (with_holder_of(240), "cuvette.aliquot_ul: 250 uL is more than the 240 uL the cuvette"),
    (with_holder_of(240), "cuvette.rinse_ul: 270 uL is more than the 240 uL the cuvette"),
])
def test_validation_refuses_a_station_that_cannot_work_in_one_line(tmp_path, capsys, change, expected):
    document = cuvette_document()
    path = write_cuvette_campaign(tmp_path, document)
    if change.__code__.co_argcount == 2:  # a change to the holder's definition beside the file
        change(document, tmp_path)
    else:
        change(document)
        path = write_campaign(tmp_path, document)
    assert main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert any(expected in line for line in lines), lines
    assert all(line.startswith(f"{path}: ") for line in lines), lines  # a problem a line, no traceback


def test_the_shipped_cuvette_campaign_validates():
    assert main(["validate", str(CAMPAIGN)]) == 0


# -- the dry run ----------------------------------------------------------------------------------


def test_a_dry_run_reads_every_well_in_the_cuvette_and_the_lab_matches_the_ledger(tmp_path):
    runner = make_runner(small_cuvette_campaign(tmp_path), dry_run=True, log=lambda _: None)
    runner.preflight()
    while not runner.is_finished():
        runner.run_iteration()
    experiments = runner.campaign.experiments()
    assert [e.status for e in experiments] == ["measured"] * 8
    lab = runner.instruments.lab
    plans = [it["plan"] for it in runner.store.iterations(runner.campaign.info.id)]
    ledger = tips_left(plans, [], runner.deck)
    assert lab.tips_used == 96 + 3 * 96 - sum(ledger.values())  # every tip the twin took, the ledger counted
    assert runner.stock_left()[RINSE_SOLVENT] == 15000 - 2 * 2410
    assert lab.stocks_ul[RINSE_SOLVENT] == pytest.approx(15000 - 2 * 2410, abs=60)
    for e in experiments:  # each well gave its aliquot to the cuvette
        assert lab.total_ul(e.well) == pytest.approx(300 - ALIQUOT_UL, abs=10)
    # emptied and rinsed after the batch: what is left (1 % pipetting noise on every move) is mostly solvent
    assert sum(lab.cuvette.values()) < 20 and sum(v for k, v in lab.cuvette.items() if k != RINSE_SOLVENT) < 0.1


@pytest.mark.slow
def test_the_shipped_cuvette_campaign_completes_its_dry_run(tmp_path, prefect_server):
    path = write_cuvette_campaign(tmp_path, cuvette_document())
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["run", str(path), "--dry-run", "--store", url]) == 0
    store = CampaignStore(url, must_exist=True)
    (campaign,) = store.campaigns()
    assert campaign.status == "completed"
    assert [e.status for e in store.experiments(campaign.id)] == ["measured"] * 24
