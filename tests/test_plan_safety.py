"""Plate plans: volumes the pipettes can dispense, the diluent fill, and the safety check before dispatch."""

from __future__ import annotations

from pathlib import Path

import pytest

from instruments.opentrons.deck import DECKS, FLEX, OT2, TIPS_PER_RACK, WELLS_PER_PLATE
from instruments.errors import InstrumentError, PlanLimitError
from instruments.plate_plan import DILUENT, BatchItem, PlatePlan, WellPlan, check_plan, compile_plan, floor_volume, place_batch, tips_needed
from orchestrator.spec.loader import load_spec

DEMO = Path(__file__).resolve().parents[1] / "campaigns" / "colour_match.yaml"


@pytest.fixture(scope="module")
def handler():
    """The demo's liquid handler: red/yellow/blue in A1-A3, water (diluent) in A4, fill 300 uL, wells 360 uL."""
    spec, _ = load_spec(DEMO)
    return spec.instruments.liquid_handler


def full_stock(handler) -> dict[str, float]:
    return {**{n: r.stock_ul for n, r in handler.reagents.items()}, DILUENT: handler.diluent.stock_ul}


def batch(*volumes, first_id=1):
    return [BatchItem(first_id + i, {"red": r, "yellow": y, "blue": b}) for i, (r, y, b) in enumerate(volumes)]


# compiling -------------------------------------------------------------------------------


@pytest.mark.parametrize("planned, dispensed", [
    (12.345, 12.3), (12.39999, 12.3), (1.05, 1.0), (1.0, 1.0), (2.7, 2.7), (8.3, 8.3), (0.7 + 0.6, 1.3),
    (149.99, 149.9), (150.0, 150.0), (0.95, 0.0), (0.99999, 0.0), (0.5, 0.0), (0.0, 0.0),
])
def test_floor_volume_steps_of_0_1_and_zero_below_the_minimum(planned, dispensed):
    assert floor_volume(planned, 1.0) == dispensed
    assert floor_volume(planned, 1.0) <= planned + 1e-9  # never more than planned


@pytest.mark.parametrize("robot_type", [OT2, FLEX])
def test_compile_plan_floors_volumes_and_fills_with_diluent(handler, robot_type):
    items = batch((12.345, 0.95, 150.0), (40.0, 95.0, 22.25), (0.3, 149.99, 1.05))
    plan = compile_plan(handler, robot_type, iteration=3, batch=items, wells_used=0)
    deck = DECKS[robot_type]
    assert deck.small.min_ul == 1.0
    assert (plan.iteration, plan.plate, plan.robot_type) == (3, 1, robot_type)
    assert [w.well for w in plan.wells] == ["A1", "B1", "C1"]
    assert [w.experiment_id for w in plan.wells] == [1, 2, 3]
    assert [{k: v for k, v in w.volumes_ul.items() if k != DILUENT} for w in plan.wells] == [
        {"red": 12.3, "yellow": 0.0, "blue": 150.0},
        {"red": 40.0, "yellow": 95.0, "blue": 22.2},
        {"red": 0.0, "yellow": 149.9, "blue": 1.0},
    ]
    for w in plan.wells:
        assert next(iter(w.volumes_ul)) == DILUENT  # water goes in first
        assert sum(w.volumes_ul.values()) == pytest.approx(300.0, abs=1e-9)
    assert [w.volumes_ul[DILUENT] for w in plan.wells] == [137.7, 142.8, 149.1]
    assert plan.reservoir_wells == {"red": "A1", "yellow": "A2", "blue": "A3", DILUENT: "A4"}
    assert plan.labware == deck.labware
    assert (plan.fill_volume_ul, plan.well_capacity_ul) == (300.0, 360.0)
    check_plan(plan, full_stock(handler))  # a sound plan passes
    # JSON round trip, as stored with the iteration
    assert PlatePlan.model_validate(plan.model_dump()) == plan


def test_labware_set_in_the_campaign_overrides_the_deck_default(handler):
    custom = handler.model_copy(update={"labware": handler.labware.model_copy(update={"plate": "nest_96_wellplate_200ul_flat"})})
    plan = compile_plan(custom, OT2, 1, batch((10, 10, 10)), 0)
    assert plan.labware["plate"] == "nest_96_wellplate_200ul_flat"
    assert plan.labware["reservoir"] == DECKS[OT2].labware["reservoir"]


def test_without_diluent_only_the_reagents_are_planned(handler):
    dry = handler.model_copy(update={"diluent": None})
    plan = compile_plan(dry, OT2, 1, batch((10.05, 20, 30)), 0)
    assert plan.wells[0].volumes_ul == {"red": 10.0, "yellow": 20.0, "blue": 30.0}
    assert DILUENT not in plan.reservoir_wells


# check_plan refusals --------------------------------------------------------------------------


def test_negative_diluent_is_refused_naming_the_well_and_the_fill_volume(handler):
    plan = compile_plan(handler, OT2, 2, batch((10, 10, 10), (150, 150, 100), first_id=7), wells_used=4)
    assert plan.wells[1].volumes_ul[DILUENT] == -100.0
    with pytest.raises(PlanLimitError) as caught:
        check_plan(plan, full_stock(handler))
    message = caught.value.message
    assert "P1-F1" in message and "experiment 8" in message
    assert "-100" in message and "negative" in message and "300 uL" in message
    assert "P1-E1" not in message  # the sound well is not blamed
    assert "nothing dispatched" in message and "iteration 2" in message
    assert isinstance(caught.value, InstrumentError) and "\n" not in caught.value.one_line()


def test_over_well_capacity_is_refused(handler):
    dry = handler.model_copy(update={"diluent": None})
    plan = compile_plan(dry, OT2, 1, batch((100, 100, 100), (150, 150, 100)), 0)
    with pytest.raises(PlanLimitError) as caught:
        check_plan(plan, full_stock(handler))
    message = caught.value.message
    assert "P1-B1" in message and "400 uL exceeds the well capacity of 360 uL" in message
    assert "P1-A1" not in message


def test_volume_below_the_pipette_minimum_and_a_well_used_twice_are_refused():
    plan = PlatePlan(
        iteration=1, plate=1, robot_type=OT2, fill_volume_ul=300, well_capacity_ul=360,
        reservoir_wells={"red": "A1"}, labware=DECKS[OT2].labware,
        wells=[WellPlan(experiment_id=1, well="A1", volumes_ul={"red": 0.5}),
               WellPlan(experiment_id=2, well="A1", volumes_ul={"red": 5.0})],
    )
    with pytest.raises(PlanLimitError) as caught:
        check_plan(plan, {})
    message = caught.value.message
    assert "P1-A1 (experiment 1): red volume 0.5 uL is below the 1 uL pipette minimum" in message
    assert "P1-A1 (experiment 2) is used twice" in message


def test_too_many_tips_is_refused(handler):
    # three small-pipette transfers per well: 32 wells use exactly one rack of 96
    fits = compile_plan(handler, OT2, 1, batch(*[(10, 10, 10)] * 32), 0)
    assert tips_needed(fits) == {"small": 96, "large": 32}
    check_plan(fits, full_stock(handler))

    too_many = compile_plan(handler, OT2, 1, batch(*[(10, 10, 10)] * 33), 0)
    with pytest.raises(PlanLimitError) as caught:
        check_plan(too_many, full_stock(handler))
    message = caught.value.message
    assert f"99 small-pipette tips needed but one rack holds {TIPS_PER_RACK}" in message
    assert "large-pipette" not in message


def test_tips_are_counted_per_pipette_range():
    plan = PlatePlan(
        iteration=1, plate=1, robot_type=FLEX, fill_volume_ul=300, well_capacity_ul=360,
        reservoir_wells={"a": "A1", "b": "A2", "c": "A3"}, labware=DECKS[FLEX].labware,
        wells=[WellPlan(experiment_id=1, well="A1", volumes_ul={"a": 50.0, "b": 50.1, "c": 0.0})],
    )
    assert tips_needed(plan) == {"small": 1, "large": 1}  # Flex small pipette: up to 50 uL; zero needs no tip


def test_reagent_stock_exceeded_is_refused(handler):
    plan = compile_plan(handler, OT2, 5, batch(*[(100, 10, 10)] * 4), 0)
    stock = full_stock(handler)
    check_plan(plan, {**stock, "red": 400.0})  # exactly enough
    with pytest.raises(PlanLimitError) as caught:
        check_plan(plan, {**stock, "red": 350.0, DILUENT: 100.0})
    message = caught.value.message
    assert "red: needs 400 uL but only 350 uL of stock is left" in message
    assert "diluent: needs 720 uL but only 100 uL of stock is left" in message
    assert "yellow" not in message


# placement on plates -------------------------------------------------------------------------


@pytest.mark.parametrize("wells_used, n, placed", [
    (0, 4, (1, 0)), (92, 4, (1, 92)), (93, 4, (2, 0)), (95, 4, (2, 0)), (96, 4, (2, 0)), (100, 4, (2, 4)),
    (0, 96, (1, 0)), (1, 96, (2, 0)), (96, 96, (2, 0)), (190, 4, (3, 0)),
])
def test_place_batch_never_straddles_two_plates(wells_used, n, placed):
    assert place_batch(wells_used, n) == placed
    plate, first = placed
    assert first + n <= WELLS_PER_PLATE


def test_a_batch_that_does_not_fit_starts_a_new_plate(handler):
    plan = compile_plan(handler, FLEX, 24, batch((10, 10, 10), (20, 20, 20), (30, 30, 30), (40, 40, 40)), wells_used=94)
    assert plan.plate == 2
    assert [w.well for w in plan.wells] == ["A1", "B1", "C1", "D1"]
    assert [plan.label(w.well) for w in plan.wells] == ["P2-A1", "P2-B1", "P2-C1", "P2-D1"]
    same_plate = compile_plan(handler, FLEX, 24, batch((10, 10, 10)), wells_used=94)
    assert same_plate.plate == 1 and same_plate.wells[0].well == "G12"
