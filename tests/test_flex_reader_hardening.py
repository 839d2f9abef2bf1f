"""The Flex Absorbance Plate Reader when things go wrong on the robot or in the campaign file.

Protects: a read run that fails with the plate in the module stops the loop at once (no second read run, no next
batch dispensed into the empty slot), the batch stays dispatched, and ``sdl resume`` reads it again once the plate
is back (refused, nothing run, while the module senses a plate inside); only a failure before the plate moved (or
after it came back) is retried; a robot busy with a run not ours stops the reading rather than failing the batch;
the read run never takes the place of the batch's dispensing run, which reconcile asks about after a restart; a
robot whose software cannot run the read protocol, or a plate left in the reader, is refused before the first
batch (preflight and ``sdl check``), not after a plate was made; a custom plate too tall for the reader is refused
by ``sdl validate``; ``sdl deck`` shows the reader in its slot.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from instruments.errors import InstrumentError, PlateOutOfPlace
from instruments.opentrons.absorbance_reader import OpentronsAbsorbanceReader, plate_left_out
from instruments.opentrons.deck import DECKS, FLEX
from instruments.opentrons.labware import definition
from orchestrator.cli.check import role_lines
from orchestrator.cli.parser import main
from orchestrator.run.campaign import Campaign
from orchestrator.run.steps import LoopError, make_runner
from orchestrator.spec.loader import parse_spec
from tests.opentrons_robot_server import RobotServer
from tests.test_flex_absorbance_reader import EXAMPLE, FILTERS, attached_reader, module_reading, reader_section


def _campaign(tmp_path: Path, server: RobotServer) -> Campaign:
    """The example campaign, one batch of 4, on the loopback robot."""
    document = yaml.safe_load(EXAMPLE.read_text())
    document["budget"] = {"experiments": 4, "batch_size": 4}
    document["instruments"]["liquid_handler"].update(host="127.0.0.1", port=server.port)
    deck = document["instruments"]["liquid_handler"].get("deck") or {}
    for name, file in (deck.get("custom_labware") or {}).items():  # the example's files, from its copy here
        deck["custom_labware"][name] = str((EXAMPLE.parent / file).resolve())
    path = tmp_path / EXAMPLE.name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return Campaign.from_yaml(path, store=f"sqlite:///{tmp_path / 'store.db'}")


def _runner(campaign: Campaign):
    runner = make_runner(campaign, dry_run=False, log=lambda _: None)
    runner.instruments.liquid_handler.poll_interval_s = 0.02
    return runner


def _resume(campaign: Campaign) -> list[str]:
    """``sdl resume --in-doubt measure``'s settling of the in-doubt batch (a person says the plate is back), in a
    new process: the same store, nothing else."""
    resumed = _runner(Campaign.from_yaml(campaign.source, store=campaign.store.url))
    try:
        return resumed.reconcile("measure")
    finally:
        resumed.instruments.liquid_handler.close()


def _protocol_runs(server: RobotServer) -> list[dict[str, Any]]:
    return [r for r in server.robot.runs.values() if r["protocolId"]]


def test_a_read_that_fails_with_the_plate_in_the_reader_stops_the_loop_and_resume_reads_it_again(tmp_path):
    with RobotServer(FLEX, fault="fail_read", plate_reader=module_reading) as server:
        campaign = _campaign(tmp_path, server)
        runner = _runner(campaign)
        runner.preflight()
        with pytest.raises(LoopError) as caught:
            runner.run_iteration()
        runner.instruments.liquid_handler.close()
        after_fault = _protocol_runs(server)
        assert [e.status for e in campaign.experiments()] == ["dispatched"] * 4  # made, not yet read: nothing lost
        assert [r["status"] for r in after_fault] == ["succeeded", "failed"]  # no second read with the plate away
        server.robot.fault = None
        assert server.robot.plate_in_reader  # the module senses the plate: reading now is refused, nothing run
        with pytest.raises(LoopError) as still_inside:
            _resume(campaign)
        assert len(_protocol_runs(server)) == 2 and [e.status for e in campaign.experiments()] == ["dispatched"] * 4
        server.robot.plate_in_reader = False  # a person put the plate back in its slot
        done = _resume(campaign)
        runs = _protocol_runs(server)
    assert "senses a plate inside already; nothing was run" in still_inside.value.message
    err = caught.value
    assert "\n" not in err.one_line() and "still in the reader" in err.message
    assert err.hint.startswith("take plate 1 out of the reader (or the gripper) and put it back in slot D2, then: "
                               "sdl resume colour-match-flex-reader")
    assert [r["status"] for r in runs[2:]] == ["succeeded"]  # the resume read the plate once; nothing dispensed
    assert "measured now" in done[0]  # read again, as the person said the plate was back
    for experiment in campaign.experiments():
        (stored,) = campaign.store.measurements(experiment.id)
        well = experiment.well.split("-")[1]
        assert experiment.status == "measured"
        assert stored["values"] == [module_reading(w, well) for w in FILTERS]


def test_the_read_run_is_not_stored_as_the_batchs_dispensing_run(tmp_path):
    """Reconcile settles a batch by the run stored for it: a read run in its place, created but never played when
    the orchestrator crashed, would have the plate that was made abandoned as never made."""
    with RobotServer(FLEX, plate_reader=module_reading) as server:
        campaign = _campaign(tmp_path, server)
        runner = _runner(campaign)
        runner.preflight()
        runner.run_iteration()
        runner.instruments.liquid_handler.close()
        dispense, read = _protocol_runs(server)
    stored = [e["detail"]["run_id"] for e in campaign.store.events(campaign.info.id, "robot_run_created")]
    assert stored == [dispense["id"]]
    (first, *_) = campaign.experiments()
    assert campaign.store.measurements(first.id)[0]["meta"]["robot_run"] == read["id"]


def _summaries(*moves: str) -> Any:
    """``OpentronsHTTP.get`` of a robot whose read run has these ``moveLabware`` statuses among its commands."""
    commands = [{"id": "c0", "commandType": "absorbanceReader/openLid", "status": "succeeded"}]
    commands += [{"id": f"m{i}", "commandType": "moveLabware", "status": s} for i, s in enumerate(moves)]

    def get(path: str, doing: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        cursor, length = params["cursor"], params["pageLength"]
        return {"data": commands[cursor:cursor + length], "meta": {"cursor": cursor, "totalLength": len(commands)}}

    return get


@pytest.mark.parametrize("moves, away", [
    ((), False), (("succeeded", "succeeded"), False),
    (("succeeded",), True), (("succeeded", "failed"), True), (("failed",), True), (("running",), True),
], ids=["never moved", "moved back", "in the reader", "dropped on the way back", "gripper failed", "moving"])
def test_the_plate_is_away_from_its_slot_unless_the_read_run_never_moved_it_or_moved_it_back(moves, away):
    assert bool(plate_left_out(_summaries(*moves), "run-1")) is away


def test_a_read_runs_commands_that_cannot_be_listed_count_as_the_plate_away():
    def unreachable(path: str, doing: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        raise InstrumentError(f"robot unreachable while {doing}")

    assert plate_left_out(unreachable, "run-1").startswith("where the plate is cannot be told")


def test_a_robot_too_old_for_the_reader_is_refused_before_the_first_batch_and_by_sdl_check(tmp_path):
    with RobotServer(FLEX, plate_reader=module_reading, max_api=(2, 20), software="8.0.0") as server:
        campaign = _campaign(tmp_path, server)
        runner = _runner(campaign)
        with pytest.raises(LoopError) as caught:
            runner.preflight()
        runner.instruments.liquid_handler.close()
        instruments = parse_spec(Path(campaign.source).read_text()).instruments
        (line,) = role_lines("spectrometer", instruments.spectrometer, DECKS[FLEX], instruments.liquid_handler)
        assert not server.saw("POST", "/protocols")
    assert "needs 2.21; nothing was run" in caught.value.message and "8.2.0" in caught.value.hint
    assert campaign.experiments() == []
    assert not line.ok and "runs Protocol API up to 2.20; the Absorbance Plate Reader needs 2.21" in line.text


def test_a_robot_busy_with_another_run_stops_the_reading_instead_of_failing_the_batch():
    """Another run (the crashed process's own read, still going when ``sdl resume`` reads the batch again, or a run
    someone started) may be moving the plate: reading again at once would only fail the batch the robot made."""
    with RobotServer(FLEX, fault="busy", plate_reader=module_reading) as server:
        reader = attached_reader(server)
        with pytest.raises(PlateOutOfPlace) as caught:
            reader.read_wells(["P1-A1"])
        reader.robot.close()
    assert caught.value.cause == "robot_busy" and "\n" not in caught.value.one_line()
    assert caught.value.message.startswith("opentrons_absorbance_reader: plate 1 not read: opentrons_flex: robot busy")
    assert caught.value.hint == "let that run end, and see that plate 1 is in slot D2, not in the reader"


def test_the_deck_map_shows_the_reader_in_its_slot(capsys):
    """``sdl deck`` (and the report's deck) is what a person sets the deck up from: the reader's slot is taken."""
    assert main(["deck", str(EXAMPLE)]) == 0
    shown = capsys.readouterr().out
    row = next(line for line in shown.splitlines() if " D3 " in line)
    assert row.split("|")[3].strip() == "D3 plate reader" and "absorbanceReaderV1" in shown


def test_a_flex_the_reader_cannot_read_through_is_named_as_such():
    """A real reader beside a Flex twin (or a plugin's Flex driver): the line says why, not "simulated_flex is Flex"."""
    twin = SimpleNamespace(name="simulated_flex", robot_type=FLEX)
    reader = OpentronsAbsorbanceReader("opentrons_absorbance_reader", reader_section())
    with pytest.raises(InstrumentError) as caught:
        reader.attach_robot(twin, DECKS[FLEX])
    assert caught.value.message.endswith("and the liquid handler simulated_flex is a Flex not driven over HTTP "
                                         "(SimpleNamespace)")
    assert caught.value.hint == "set instruments.liquid_handler.driver: opentrons_flex (or --dry-run: both twins)"


def test_a_plate_left_in_the_reader_is_refused_before_the_first_batch():
    with RobotServer(FLEX, plate_reader=module_reading) as server:
        server.robot.plate_in_reader = True  # someone's plate, from a run before this campaign
        reader = attached_reader(server)
        reader.connect()
        with pytest.raises(PlateOutOfPlace) as caught:
            reader.check_ready()
        reader.robot.close()
        assert not server.saw("POST", "/protocols")
    assert caught.value.cause == "plate_in_reader" and "\n" not in caught.value.one_line()
    assert caught.value.hint == "take the plate out of the reader, and see that the plate to read is in slot D2"


def test_sdl_validate_refuses_a_custom_plate_too_tall_for_the_reader(tmp_path, capsys):
    """A lab's own plate is read from its file by ``sdl validate`` and ``sdl run``: refused there, not at the check
    before the first batch (which a dry run also reaches only after starting Prefect)."""
    tall = copy.deepcopy(definition("corning_96_wellplate_360ul_flat"))
    tall["parameters"]["loadName"], tall["namespace"] = "lab_tall_96", "custom_beta"
    tall["dimensions"]["zDimension"] = 20.0
    (tmp_path / "labware").mkdir()
    (tmp_path / "labware" / "lab_tall_96.json").write_text(json.dumps(tall))
    document = yaml.safe_load(EXAMPLE.read_text())
    document["instruments"]["liquid_handler"].update(deck={"custom_labware": {"lab_tall_96": "labware/lab_tall_96.json"}},
                                                     labware={"plate": "lab_tall_96"})
    path = tmp_path / "tall.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"{path}: instruments.liquid_handler.deck.custom_labware.lab_tall_96: plate labware lab_tall_96 is 20 mm "
        "tall; the Absorbance Plate Reader takes plates of at most 16 mm; fix its definition or use a plate the "
        "reader takes")
