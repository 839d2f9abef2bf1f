"""The tip ledger: tip racks stay on the deck across batches, each protocol starts at the next unused tip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from instruments.opentrons.deck import DECKS, FLEX, OT2, TIP_RACKS, TIPS_PER_RACK, well_name
from instruments.errors import PlanLimitError
from instruments.opentrons.protocol_script import render_protocol, simulate_protocol
from instruments.plate_plan import (
    BatchItem, PlatePlan, WellPlan, check_plan, compile_plan, position_after, tips_needed, tips_used_before,
)
from orchestrator.spec.loader import load_spec

DEMO = Path(__file__).resolve().parents[1] / "campaigns" / "colour_match.yaml"
# per well: red and yellow 10 uL (small pipette), blue 100 uL and diluent 180 uL (large): 2 + 2 tips
ITEM = {"red": 10.0, "yellow": 10.0, "blue": 100.0}


@pytest.fixture(scope="module")
def handler():
    spec, _ = load_spec(DEMO)
    return spec.instruments.liquid_handler


@pytest.fixture(scope="module")
def simulator():
    import opentrons.simulate

    return opentrons.simulate


def plan_for(handler, robot_type, iteration, n_wells, stored=()):
    """The plan of batch ``iteration`` after the ``stored`` plans, as the loop compiles it."""
    batch = [BatchItem(iteration * 100 + i, ITEM) for i in range(n_wells)]
    wells_used = sum(len(p.wells) for p in stored)
    return compile_plan(handler, robot_type, iteration, batch, wells_used, tips_used=tips_used_before(stored))


def picked_tips(run_log: str) -> list[tuple[str, str]]:
    """(tip well, rack slot) of every tip pick-up in an ``opentrons.simulate`` run log."""
    return re.findall(r"Picking up tip from (\w+) of .*? on slot (\w+)", run_log)


def test_tips_used_before_sums_the_stored_plans_per_rack(handler):
    first = plan_for(handler, OT2, 1, 4)
    second = plan_for(handler, OT2, 2, 3, [first])
    stored = [first.model_dump(), second]  # as the store keeps them, or as plans
    assert tips_used_before(stored) == {"tiprack_small": 2 * 7, "tiprack_large": 2 * 7}
    assert tips_used_before([]) == {"tiprack_small": 0, "tiprack_large": 0}
    assert tips_used_before(stored, refilled_after={"tiprack_small": 1}) == {"tiprack_small": 2 * 3, "tiprack_large": 14}


def test_the_plan_carries_where_each_rack_starts_and_survives_the_store(handler):
    first = plan_for(handler, FLEX, 1, 4)
    second = plan_for(handler, FLEX, 2, 2, [first])
    assert first.tips_start == {}  # fresh racks
    assert second.tips_start == {rack: count for rack, count in tips_used_before([first]).items()}
    assert PlatePlan.model_validate(second.model_dump()) == second
    legacy = second.model_dump()
    del legacy["tips_start"]  # plans stored before the ledger existed
    assert PlatePlan.model_validate(legacy).tips_start == {}


@pytest.mark.parametrize("robot_type", [OT2, FLEX])
def test_consecutive_batches_never_reuse_a_tip(simulator, handler, robot_type):
    stored: list[PlatePlan] = []
    picks: list[tuple[str, str]] = []
    for iteration, n_wells in ((1, 5), (2, 3), (3, 4)):
        plan = plan_for(handler, robot_type, iteration, n_wells, stored)
        check_plan(plan, {})
        run_log, _ = simulate_protocol(render_protocol(plan), file_name=f"iteration_{iteration}.py")
        batch_picks = picked_tips(run_log)
        assert len(batch_picks) == sum(tips_needed(plan).values())
        for pipette, rack in TIP_RACKS.items():  # each rack resumes where the last batch stopped
            slot = DECKS[robot_type].tip_rack_slots[rack][0]
            first = next(tip for tip, s in batch_picks if s == slot)
            assert first == well_name(plan.tips_start.get(rack, 0)), (pipette, iteration)
        picks += batch_picks
        stored.append(plan)
    assert len(picks) == len(set(picks)) == 2 * 12 + 2 * 12


@pytest.mark.parametrize("robot_type", [OT2, FLEX])
def test_the_last_tips_of_a_rack_are_used_and_one_more_is_refused(simulator, handler, robot_type):
    plan = plan_for(handler, robot_type, 9, 4)
    need = tips_needed(plan)
    last = plan.model_copy(update={"tips_start": {TIP_RACKS[p]: TIPS_PER_RACK - n for p, n in need.items()}})
    check_plan(last, {})
    run_log, _ = simulate_protocol(render_protocol(last))
    assert {tip for tip, _ in picked_tips(run_log)} >= {"H12"}

    short = plan.model_copy(update={"tips_start": {"tiprack_small": TIPS_PER_RACK - need["small"] + 1}})
    with pytest.raises(PlanLimitError) as caught:
        check_plan(short, {})
    message = caught.value.message
    slot = DECKS[robot_type].tip_rack_slots["tiprack_small"][0]
    assert (f"{need['small']} small-pipette tips needed but only {need['small'] - 1} are left in tiprack_small "
            f"(slot {slot}; {TIPS_PER_RACK - need['small'] + 1} used by earlier batches): put in a full rack") in message
    assert "nothing dispatched" in message and "large-pipette" not in message


def test_an_empty_rack_or_stock_names_the_campaign_to_refill_and_resume(handler):
    plan = plan_for(handler, OT2, 1, 4)
    short = plan.model_copy(update={"tips_start": {"tiprack_small": TIPS_PER_RACK - 1}})
    with pytest.raises(PlanLimitError) as caught:
        check_plan(short, {"red": 5.0}, campaign="plate-7")
    text = caught.value.one_line()
    assert "'sdl refill plate-7 --tips small'" in text and "'sdl refill plate-7 --stock red=UL'" in text
    assert text.endswith("(then: sdl resume plate-7)") and "CAMPAIGN" not in text
    overfull = plan.model_copy(update={"well_capacity_ul": 1.0})  # a limit a refill cannot fix: no resume hint
    with pytest.raises(PlanLimitError) as caught:
        check_plan(overfull, {"red": 5.0}, campaign="plate-7")
    assert "exceeds the well capacity" in caught.value.message and caught.value.hint is None


def test_a_volume_above_the_large_pipette_takes_a_tip_per_aspiration(simulator):
    deck = DECKS[OT2]
    plan = PlatePlan(iteration=1, plate=1, robot_type=OT2, fill_volume_ul=340, well_capacity_ul=360,
                     reservoir_wells={"diluent": "A4", "red": "A1"}, labware=deck.labware,
                     wells=[WellPlan(experiment_id=1, well="A1", volumes_ul={"diluent": 335.0, "red": 5.0})])
    assert deck.large.max_ul < 335.0
    need = tips_needed(plan)
    run_log, _ = simulate_protocol(render_protocol(plan))
    assert len(picked_tips(run_log)) == need["small"] + need["large"] and need["large"] == 2


# the same ledger for wells: where the next batch goes --------------------------------------


def labels_of(plans):
    return [p.label(w.well) for p in plans for w in p.wells]


@pytest.mark.parametrize("batch_size", [5, 7, 96])
def test_batches_that_skip_to_a_new_plate_never_land_on_a_filled_well(handler, batch_size):
    plans: list[PlatePlan] = []
    for iteration in range(1, 45):
        items = [BatchItem(iteration * 100 + i, ITEM) for i in range(batch_size)]
        plans.append(compile_plan(handler, OT2, iteration, items, wells_used=position_after(labels_of(plans))))
    labels = labels_of(plans)
    assert len(labels) == len(set(labels)) == 44 * batch_size


def test_the_blank_well_is_never_given_to_an_experiment(handler):
    plans: list[PlatePlan] = []
    for iteration in range(1, 30):
        items = [BatchItem(iteration * 100 + i, ITEM) for i in range(8)]
        plans.append(compile_plan(handler, FLEX, iteration, items, position_after(labels_of(plans)),
                                  reserved_wells=["A12"]))
        check_plan(plans[-1], {})
    labels = labels_of(plans)
    assert len(labels) == len(set(labels)) and not any(label.endswith("-A12") for label in labels)
    assert {p.plate for p in plans} == {1, 2, 3}  # 95 usable wells per plate: 11 batches of 8 each

    forced = plans[0].model_copy(update={"wells": [plans[0].wells[0].model_copy(update={"well": "A12"})]})
    with pytest.raises(PlanLimitError, match=r"well P1-A12 \(experiment 100\) is reserved"):
        check_plan(forced, {})
    with pytest.raises(PlanLimitError, match="lower batch_size to at most 95"):
        compile_plan(handler, OT2, 1, [BatchItem(i, ITEM) for i in range(96)], 0, reserved_wells=["A12"])


def test_position_after_the_last_used_well():
    assert position_after([]) == 0
    assert position_after(["P1-A1", "P1-C1"]) == 3
    assert position_after(["P1-H12", "P2-A1"]) == 96 + 1
    assert position_after(["P2-B1", "P1-G12"]) == 96 + 2  # the order of the labels does not matter
