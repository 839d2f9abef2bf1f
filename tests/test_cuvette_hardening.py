"""The cuvette station against a user trying to break it (issue 29, part 2, reviewed as a lab automation engineer).

Protects, each found broken before:

- validation refuses in one line what would make the robot move wrongly: a rinse below the small pipette's
  minimum, or below the aliquot (it would not rinse the walls the sample wetted); an aliquot that a well cannot
  give (with no diluent a well holds only its reagents; a filled well keeps what lies below the tip, 1 mm above
  its bottom); an aliquot or rinse that, with what the tip leaves in the cuvette's bottom, rises to where the
  tip lets liquid go (the tip would come back wet to the solvent); a holder deeper than the tips of a pipette
  that empties it stick out (an OT-2's p20 tips into a 40 mm cuvette), or of no depth at all;
- the plan check before every dispatch refuses a well holding less than the aliquot, nothing dispatched;
- a batch the loop gives up reading (the spectrometer failed on every try) does not leave a sample in the
  cuvette: the robot empties and rinses it with the tips the plan set aside for that, and no others;
- a simulated mixture's target spectrum is read through the cuvette's light path in a real run and in the
  report, as the dry run's readings and target are (not through the plate's).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from instruments.cuvette.station import RINSE_SOLVENT, robot_steps, tips_of
from instruments.errors import InstrumentFault, PlanLimitError
from instruments.plate_plan import BatchItem, PlatePlan, check_plan, compile_plan, dispensing_tips, tips_needed
from orchestrator.cli import main
from orchestrator.report.data import _simulator_and_target
from orchestrator.run.steps import make_runner
from tests.cuvette_bench import cuvette_deck, cuvette_spec
from tests.test_cuvette_station import LABWARE, cuvette_document, small_cuvette_campaign, write_cuvette_campaign


def with_cuvette(**changes):
    def mutate(document):
        document["instruments"]["spectrometer"]["cuvette"].update(changes)
    return mutate


def without_diluent(*constraints: str):
    def mutate(document):
        del document["instruments"]["liquid_handler"]["diluent"]
        document["constraints"] = list(constraints)
    return mutate


def on_an_ot2(**changes):
    """The same campaign on an OT-2 (p20 and p300 GEN2, its default deck), the holder in slot 5."""
    def mutate(document):
        handler = document["instruments"]["liquid_handler"]
        handler["driver"] = "opentrons_ot2"
        handler["deck"] = {"custom_labware": handler["deck"]["custom_labware"]}
        document["instruments"]["spectrometer"]["cuvette"].update(slot="5", **changes)
    return mutate


def validate(tmp_path, capsys, mutate, holder=None) -> tuple[int, list[str]]:
    """``sdl validate`` of the shipped cuvette campaign changed by ``mutate`` (and its holder's well by ``holder``):
    the exit code and the lines it wrote."""
    document = cuvette_document()
    mutate(document)
    path = write_cuvette_campaign(tmp_path, document)
    if holder is not None:
        definition = json.loads((LABWARE / "sdl_1_cuvette_holder_1000ul.json").read_text())
        holder(definition)
        (tmp_path / "labware" / "sdl_1_cuvette_holder_1000ul.json").write_text(json.dumps(definition))
    code = main(["validate", str(path)])
    out = capsys.readouterr()
    return code, (out.out + out.err).strip().splitlines()


def deeper(depth_mm: float):
    def change(definition):
        definition["wells"]["A1"].update(depth=depth_mm, z=1.0, totalLiquidVolume=25.0 * depth_mm)
        definition["dimensions"]["zDimension"] = depth_mm + 5
    return change


@pytest.mark.parametrize("mutate, holder, expected", [
    (with_cuvette(rinse_ul=0.5), None, "cuvette.rinse_ul: 0.5 uL is below the 1 uL the small pipette can move"),
    (with_cuvette(rinse_ul=100), None, "cuvette.rinse_ul: 100 uL is less than the 250 uL aliquot, so a rinse would "
                                       "not reach the cuvette's walls"),
    (without_diluent("red + yellow + blue <= 300"), None,
     "cuvette.aliquot_ul: 250 uL is more than a well may hold: with no diluent a well holds only its reagents, as "
     "little as 0 uL"),
    (without_diluent("red + yellow + blue <= 300", "red + yellow + blue >= 200"), None, "as little as 200 uL"),
    (with_cuvette(aliquot_ul=300), None, "cuvette.aliquot_ul: 300 uL cannot be drawn from a well filled with 300 uL "
                                         "(fill_volume_ul): the tip, 1 mm above the bottom of a "
                                         "corning_96_wellplate_360ul_flat well, cannot take its last 33.7 uL; lower "
                                         "it to at most 266.3 uL"),
    (with_cuvette(rinse_ul=980), None, "cuvette.rinse_ul: 980 uL, with the 25 uL the tip leaves in the cuvette's "
                                       "bottom 1 mm, would rise above 2 mm below its top"),
    (on_an_ot2(aliquot_ul=15, rinse_ul=15), None,
     "the cuvette (sdl_1_cuvette_holder_1000ul well A1) is 40 mm deep, and the p20_single_gen2 pipette's tips "
     "(opentrons_96_tiprack_20ul) stick out only 31 mm: the pipette would hit the holder"),
    (lambda document: None, deeper(90), "is 90 mm deep, and the flex_1channel_1000 pipette's tips"),
    (lambda document: None, lambda definition: definition["wells"]["A1"].update(depth=0),
     "the cuvette (sdl_1_cuvette_holder_1000ul well A1) is 0 mm deep; give its definition the cuvette's inner depth"),
])
def test_validation_refuses_a_station_the_robot_cannot_work_safely(tmp_path, capsys, mutate, holder, expected):
    code, lines = validate(tmp_path, capsys, mutate, holder)
    assert code == 2
    assert any(expected in line for line in lines), lines
    assert all(": instruments." in line for line in lines), lines  # a problem a line, no traceback


@pytest.mark.parametrize("mutate", [
    without_diluent("red + yellow + blue <= 300", "red + yellow + blue >= 290"),  # every well holds enough
    on_an_ot2(),  # 250 uL and 270 uL: the p300's tips reach the bottom of the 40 mm cuvette
    with_cuvette(rinse_ul=925),  # up to 2 mm below the top, with the 25 uL left in the bottom
    with_cuvette(rinse_ul=100, rinse_count=0),  # no rinses (a flow cell the next sample flushes): the volume is unused
])
def test_a_station_that_can_work_still_validates(tmp_path, capsys, mutate):
    code, lines = validate(tmp_path, capsys, mutate)
    assert code == 0, lines


def test_a_well_holding_less_than_the_aliquot_is_refused_before_anything_moves():
    spec = cuvette_spec()
    handler = spec.instruments.liquid_handler.model_copy(update={"diluent": None})
    plan = compile_plan(handler, cuvette_deck(spec), 1,
                        [BatchItem(1, {"red": 150.0, "yellow": 150.0, "blue": 0.0}),
                         BatchItem(2, {"red": 60.0, "yellow": 0.0, "blue": 0.0})], 0,
                        cuvette=spec.instruments.spectrometer.cuvette)
    with pytest.raises(PlanLimitError) as refused:
        check_plan(plan, {})
    line = refused.value.one_line()
    assert "nothing dispatched" in line and "experiment 1" not in line
    assert "well P1-B1 (experiment 2): 60 uL is less than the 250 uL aliquot the cuvette station takes from it" in line


def test_a_batch_no_try_could_read_leaves_the_cuvette_emptied_and_rinsed(tmp_path):
    logged: list[str] = []
    runner = make_runner(small_cuvette_campaign(tmp_path), dry_run=True, log=logged.append)
    runner.preflight()
    spectrometer = runner.instruments.spectrometer
    read = spectrometer.acquire_sample

    def dead_on_the_second_well(label):  # the spectrometer stops answering with well B1 in the cuvette, for good
        if label == "P1-B1":
            raise InstrumentFault(f"no answer from the spectrometer while reading {label}",
                                  cause="spectrometer_timeout", hint="reconnect the spectrometer")
        return read(label)

    spectrometer.acquire_sample = dead_on_the_second_well
    runner.run_iteration()
    campaign_id = runner.campaign.info.id
    assert {e.status for e in runner.campaign.experiments() if e.iteration == 1} == {"failed"}
    assert len(runner.store.events(campaign_id, "read_failed")) == 3
    lab = runner.instruments.lab
    sample = {part: ul for part, ul in lab.cuvette.items() if part != RINSE_SOLVENT}
    assert sum(sample.values()) < 1.0, lab.cuvette  # no well's aliquot left behind; only traces of the rinses
    assert sum(lab.cuvette.values()) < 20
    assert any("iteration 1 not read; the cuvette was emptied and rinsed" in line for line in logged), logged
    (stored,) = [PlatePlan.model_validate(it["plan"]) for it in runner.store.iterations(campaign_id)]
    steps = robot_steps(stored.cuvette, [w.well for w in stored.wells], stored.plate, stored.deck)
    # the plate's tips, the steps up to well B1's and the last step's (set aside for emptying and rinsing): no other
    ran = [*steps[:3], steps[-1]]
    assert lab.tips_used == sum(dispensing_tips(stored).values()) + sum(tips_of(ran).values())
    assert lab.tips_used < sum(tips_needed(stored).values())  # all within what the ledger counted for the batch


def test_a_mixture_target_is_read_through_the_cuvette_in_a_real_run_and_in_the_report(tmp_path, seabreeze_device):
    campaign = small_cuvette_campaign(tmp_path)
    dry = make_runner(campaign, dry_run=True, log=lambda _: None).targets["distance"]
    real = make_runner(campaign, dry_run=False, log=lambda _: None).targets["distance"]
    _, report, _ = _simulator_and_target(campaign.spec)
    np.testing.assert_allclose(real.absorbance, dry.absorbance)
    np.testing.assert_allclose(report.absorbance, dry.absorbance)
    plate = campaign.spec.simulation_model.clean_spectrum({"red": 40, "yellow": 95, "blue": 22}, 300)
    np.testing.assert_allclose(dry.absorbance, plate * 10 / 9)  # 10 mm of cuvette, not the plate's 9 mm
