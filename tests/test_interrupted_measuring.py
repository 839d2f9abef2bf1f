"""A run that stops while an instrument that moves the robot is reading: what ``sdl resume`` does with the batch.

Protects the rule "never repeat a physical step by accident" for the measuring set-ups of issue 29:

- a cuvette station's batch whose reading had begun is never read again (its aliquots were taken with the
  tips the plan set aside): it is recorded as failed, and the robot does nothing more for it;
- a Flex Absorbance Plate Reader's batch whose reading had begun may have left the plate in the reader:
  the resume stops with one line asking a person, and reads it again only with ``--in-doubt measure``;
- a reading that ended (the plate back in place) before the crash is read again as any plate is;
- reconcile asks the robot about the batch's dispensing run, not a later measuring run on the robot.

The crash is a ``KeyboardInterrupt`` raised inside the twin robot's or reader's verb, as a killed process
would leave the store: the steps before it stored, the one in progress not.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from orchestrator.run.campaign import Campaign
from orchestrator.run.measuring import MEASURING
from orchestrator.run.reconcile import InDoubtError
from orchestrator.run.steps import make_runner

REPO = Path(__file__).resolve().parents[1]


def campaign_of(tmp_path: Path, example: str) -> Campaign:
    """``campaigns/<example>`` with 8 experiments in batches of 4, in ``tmp_path`` beside its labware."""
    document = yaml.safe_load((REPO / "campaigns" / example).read_text())
    document["budget"] = {"experiments": 8, "batch_size": 4}
    document["planner"] = {"initial_experiments": 8}
    shutil.copytree(REPO / "campaigns" / "labware", tmp_path / "labware", dirs_exist_ok=True)
    path = tmp_path / example
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return Campaign.from_yaml(path, store=f"sqlite:///{tmp_path / 'store.db'}")


def crash_on_call(obj, verb: str, call: int) -> list[int]:
    """Make ``obj.verb`` raise KeyboardInterrupt at its ``call``-th call (1-based); the list counts the calls."""
    original, calls = getattr(obj, verb), []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    setattr(obj, verb, wrapped)
    return calls


def restarted(campaign: Campaign) -> "object":
    """A fresh runner over the same store and file, as ``sdl resume`` builds one."""
    again = Campaign.from_yaml(campaign.source, store=campaign.store)
    return make_runner(again, dry_run=True, log=lambda _: None)


def test_a_cuvette_batch_interrupted_while_reading_is_recorded_failed_and_nothing_moves_again(tmp_path):
    runner = make_runner(campaign_of(tmp_path, "colour_match_cuvette.yaml"), dry_run=True, log=lambda _: None)
    runner.preflight()
    robot_steps = crash_on_call(runner.instruments.liquid_handler, "run_protocol", 3)  # the 3rd cuvette step
    with pytest.raises(KeyboardInterrupt):
        runner.run_iteration()
    assert len(robot_steps) == 3
    campaign_id = runner.campaign.info.id
    assert [e["detail"]["stage"] for e in runner.store.events(campaign_id, MEASURING)] == ["started"]
    assert {e.status for e in runner.campaign.experiments()} == {"dispatched"}

    after = restarted(runner.campaign)
    steps_after = crash_on_call(after.instruments.liquid_handler, "run_protocol", 10_000)  # only counts
    reads_after = crash_on_call(after.instruments.spectrometer, "read_wells", 10_000)
    (line,) = after.reconcile("ask")
    assert "its reading had begun (aliquots taken)" in line and "recorded as failed (instrument)" in line
    assert (steps_after, reads_after) == ([], [])  # no aliquot, no tip, no read again
    failed = after.campaign.experiments()
    assert {(e.status, e.failure_kind) for e in failed} == {("failed", "instrument")}
    assert "reading again would reuse them" in failed[0].failure_reason


def test_a_flex_reader_batch_interrupted_while_reading_asks_a_person_then_reads_again(tmp_path):
    runner = make_runner(campaign_of(tmp_path, "colour_match_flex_reader.yaml"), dry_run=True, log=lambda _: None)
    runner.preflight()
    crash_on_call(runner.instruments.spectrometer, "read_wells", 1)
    with pytest.raises(KeyboardInterrupt):
        runner.run_iteration()

    after = restarted(runner.campaign)
    with pytest.raises(InDoubtError) as caught:
        after.reconcile("ask")
    line = caught.value.one_line()
    assert "\n" not in line and "was reading plate P1 when the run stopped" in line
    assert "--in-doubt measure" in line
    assert {e.status for e in after.campaign.experiments()} == {"dispatched"}  # nothing decided for the person

    (done,) = after.reconcile("measure")  # the person put the plate back
    assert "measured now" in done
    assert {e.status for e in after.campaign.experiments()} == {"measured"}


def test_a_flex_reader_batch_read_to_the_end_before_the_crash_is_simply_read_again(tmp_path):
    runner = make_runner(campaign_of(tmp_path, "colour_match_flex_reader.yaml"), dry_run=True, log=lambda _: None)
    runner.preflight()
    crash_on_call(runner, "analyse", 1)  # the plate was read and is back on the deck; the crash came after
    with pytest.raises(KeyboardInterrupt):
        runner.run_iteration()
    stages = [e["detail"]["stage"] for e in runner.store.events(runner.campaign.info.id, MEASURING)]
    assert stages == ["started", "ended"]

    after = restarted(runner.campaign)
    (done,) = after.reconcile("ask")
    assert "measured now" in done
    assert {e.status for e in after.campaign.experiments()} == {"measured"}


def test_reconcile_asks_the_robot_about_the_dispensing_run_not_a_measuring_run(tmp_path):
    runner = make_runner(campaign_of(tmp_path, "colour_match_cuvette.yaml"), dry_run=True, log=lambda _: None)
    runner.preflight()
    runner.run_iteration()
    handler = runner.instruments.liquid_handler
    assert handler.on_run_created is None  # cleared once the batch's own run ended
    runs = runner.store.events(runner.campaign.info.id, "robot_run_created")
    assert [r["detail"]["iteration"] for r in runs] == [1]  # the dispense only, not the six cuvette steps
