"""Tips rack by rack: a pipette's racks are used in order, the part-used one first; a rack replaced on its
own (``sdl refill --rack SLOT``) is used again once the one in use is empty; an empty deck never passes
the plan check. Protocols go through the real ``opentrons.simulate``."""

from __future__ import annotations

import pytest

from instruments.errors import PlanLimitError
from instruments.opentrons.protocol_script import render_protocol, simulate_protocol
from instruments.plate_plan import check_plan, compile_plan, tips_needed
from instruments.tip_racks import initial_state, rack_order, state_after, tips_left
from orchestrator.cli import main
from orchestrator.run.campaign import Campaign
from orchestrator.run.consumables import next_racks, tips_used
from tests.test_deck_config import GEN1, batch, built, copy_campaign

LARGE = "tiprack_large"


@pytest.fixture()
def gen1(tmp_path):
    spec, deck = built(tmp_path, GEN1.read_text())
    return spec.instruments.liquid_handler, deck


def plan_after(handler, deck, stored, refills, iteration, n_wells=4):
    """The next plan, placed as the runner places it (``next_racks`` of what is stored and refilled)."""
    events = [{"kind": "refilled", "detail": r} for r in refills]
    start, order = next_racks([p.model_dump(mode="json") for p in stored], events, deck)
    return compile_plan(handler, deck, iteration, batch(n_wells), 0, tips_used=start, rack_order=order)


def test_a_pipettes_racks_are_used_in_order_across_batches(gen1):
    handler, deck = gen1
    first = plan_after(handler, deck, [], [], 1)
    assert first.racks_in_order(LARGE) == ["1", "5"] and first.tips_start == {}
    state = state_after([first], [], deck)
    per_batch = tips_needed(first)["large"]
    assert state[LARGE] == {"1": per_batch, "5": 0}
    assert tips_left(state)[LARGE] == 192 - per_batch


def test_a_rack_replaced_on_its_own_is_used_once_the_one_in_use_is_empty(gen1):
    """Rack 1 emptied, rack 5 part-used: the lab swaps rack 1 for a full one. The next batch starts in rack 5
    where the last stopped, and goes on into the new rack 1; no tip is taken twice, none is passed over."""
    handler, deck = gen1
    state = {LARGE: {"1": 96, "5": 94}, "tiprack_small": {"4": 0}}
    assert rack_order(state, deck)[LARGE] == (["5"], 94)
    state[LARGE]["1"] = 0  # sdl refill --rack 1
    assert rack_order(state, deck)[LARGE] == (["5", "1"], 94)
    plan = compile_plan(handler, deck, 7, batch(4), 0, tips_used={LARGE: 94}, rack_order={LARGE: ["5", "1"]})
    check_plan(plan, {})  # 2 + 96 left: enough for this batch's large tips
    run_log, _ = simulate_protocol(render_protocol(plan))
    picks = [line for line in run_log.splitlines() if "Picking up tip" in line and "300" in line]
    assert "G12 of Opentrons OT-2 96 Tip Rack 300 µL on slot 5" in picks[0]
    assert "H12 of Opentrons OT-2 96 Tip Rack 300 µL on slot 5" in picks[1]
    assert "A1 of Opentrons OT-2 96 Tip Rack 300 µL on slot 1" in picks[2]


def test_refills_by_slot_and_by_pipette_reset_what_they_name(gen1):
    handler, deck = gen1
    plans = []
    for iteration in range(1, 14):  # 8 large tips a batch: rack 1 runs out, rack 5 is in use
        plans.append(plan_after(handler, deck, plans, [], iteration))
    state = state_after(plans, [], deck)
    assert state[LARGE]["1"] == 96 and 0 < state[LARGE]["5"] < 96
    slot_refill = {"after_iteration": 13, "tip_racks": [], "tip_slots": ["1"], "stock_ul": {}}
    assert state_after(plans, [slot_refill], deck)[LARGE] == {"1": 0, "5": state[LARGE]["5"]}
    whole = {"after_iteration": 13, "tip_racks": [LARGE], "stock_ul": {}}
    assert state_after(plans, [whole], deck)[LARGE] == {"1": 0, "5": 0}
    after = plan_after(handler, deck, plans, [slot_refill], 14)
    start = state[LARGE]["5"]
    assert after.racks_in_order(LARGE) == ["5", "1"] and after.tips_start[LARGE] == start
    taken = start + tips_needed(after)["large"]  # replayed with the refill in its place: the batch after it took these
    assert state_after(plans + [after], [slot_refill], deck)[LARGE] == {"5": min(96, taken), "1": max(0, taken - 96)}


def test_every_rack_empty_is_refused_before_anything_moves(gen1):
    handler, deck = gen1
    state = {LARGE: {"1": 96, "5": 96}, "tiprack_small": {"4": 0}}
    order = rack_order(state, deck)
    assert order[LARGE] == ([], 0)
    plan = compile_plan(handler, deck, 30, batch(4), 0, tips_used={r: s for r, (_, s) in order.items()},
                        rack_order={r: o for r, (o, _) in order.items()})
    with pytest.raises(PlanLimitError) as refused:
        check_plan(plan, {}, campaign="gen1")
    assert "only 0 are left in tiprack_large (slots 1, 5; 192 used by earlier batches)" in refused.value.message
    assert "--rack SLOT" in refused.value.message


def test_a_starting_tip_counts_until_its_rack_is_replaced(tmp_path):
    text = GEN1.read_text().replace('right: {slots: ["1", "5"]}', 'right: {slots: ["1", "5"], starting_tip: A12}')
    spec, deck = built(tmp_path, text)
    assert initial_state(deck)[LARGE] == {"1": 88, "5": 0}
    assert tips_used([], [], deck)[LARGE] == 88
    refill = [{"kind": "refilled", "detail": {"after_iteration": 0, "tip_racks": [], "tip_slots": ["1"], "stock_ul": {}}}]
    assert tips_used([], refill, deck)[LARGE] == 0


def test_sdl_refill_by_rack_on_a_dry_run(tmp_path, prefect_server, capsys):
    path = copy_campaign(tmp_path, GEN1.read_text().replace("experiments: 24", "experiments: 8"))
    url = f"sqlite:///{tmp_path / 'racks.db'}"
    assert main(["run", str(path), "--dry-run", "--store", url]) == 0
    capsys.readouterr()
    assert main(["refill", "colour-match-ot2-gen1", "--rack", "9", "--store", url]) == 2
    err = capsys.readouterr().err
    assert "--rack '9': no tip rack stands in that slot on this campaign's deck; its tip racks are in slots 4, 1, 5" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["refill", "colour-match-ot2-gen1", "--rack", "1", "--store", url]) == 0
    assert "deck: tips left" in capsys.readouterr().out
    campaign = Campaign.from_yaml(path, store=url)
    (event,) = campaign.store.events(campaign.info.id, "refilled")
    assert event["detail"]["tip_slots"] == ["1"] and event["detail"]["tip_racks"] == []
