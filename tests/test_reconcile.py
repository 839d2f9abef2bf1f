"""After a crash, in-doubt experiments are settled by asking the robot; nothing is made twice.

Each test stops a batch at one moment of ``prepare`` (the process "dies": a
``SystemExit`` raised from inside the robot twin), then builds a new runner on the same
store and the same twin memory, as ``sdl resume`` does after a restart.
"""

from __future__ import annotations

import pytest

from orchestrator.run.campaign import Campaign
from orchestrator.run.steps import make_runner
from orchestrator.run.reconcile import InDoubtError
from tests.conftest import demo_document, write_campaign


class Crash(SystemExit):
    """The orchestrator process dies here."""


def runner_for(tmp_path):
    doc = demo_document()
    doc["budget"] = {"experiments": 8, "batch_size": 4}
    doc["planner"] = {"initial_experiments": 8}
    campaign = Campaign.from_yaml(write_campaign(tmp_path, doc), store=f"sqlite:///{tmp_path / 's.db'}")
    return make_runner(campaign, dry_run=True, log=lambda _: None)


def restarted(runner):
    """A new process: the same store and the twin's memory file, nothing else."""
    return make_runner(Campaign.from_yaml(runner.campaign.source, store=runner.campaign.store.url), dry_run=True,
                       log=lambda _: None)


def crash_after(runner, transfers: int):
    """Make the twin robot's process die after ``transfers`` transfers into the plate."""
    lab, add, count = runner.instruments.lab, runner.instruments.lab.add, [0]

    def add_then_maybe_die(*args, **kwargs):
        if count[0] == transfers:
            raise Crash()
        count[0] += 1
        add(*args, **kwargs)

    lab.add = add_then_maybe_die


def statuses(runner):
    return [e.status for e in runner.campaign.experiments()]


def test_a_finished_robot_run_is_measured_on_restart_not_made_again(tmp_path):
    runner = runner_for(tmp_path)
    batch = runner.propose()
    runner.prepare(batch)  # the robot finished; the process dies before measuring
    again = restarted(runner)
    assert statuses(again) == ["dispatched"] * 4
    done = again.reconcile()
    assert len(done) == 1 and "succeeded" in done[0] and "measured now" in done[0]
    assert statuses(again) == ["measured"] * 4
    assert len(again.instruments.lab.runs) == 1  # one robot run in all: nothing dispensed twice
    assert all(len(again.store.measurements(p.id)) == 1 for p in batch)
    (event,) = [e for e in again.store.events(again.campaign.info.id) if e["kind"] == "reconciled"]
    assert event["detail"]["policy"] == "ask" and event["detail"]["experiment_ids"] == [p.id for p in batch]


def test_a_run_cut_short_by_the_crash_is_recorded_as_failed_and_its_wells_never_reused(tmp_path):
    runner = runner_for(tmp_path)
    batch = runner.propose()
    crash_after(runner, transfers=5)
    with pytest.raises(Crash):
        runner.prepare(batch)
    again = restarted(runner)
    (run,) = again.instruments.lab.runs.values()
    assert run["status"] == "stopped"  # the twin went down with the process
    again.reconcile()
    experiments = again.campaign.experiments()
    assert [e.status for e in experiments] == ["failed"] * 4
    assert all(e.failure_kind == "instrument" and "stopped" in e.failure_reason for e in experiments)
    filled_before = dict(again.instruments.lab.wells)
    again.run_iteration()  # the next batch goes to fresh wells
    new = [e for e in again.campaign.experiments() if e.iteration == 2]
    assert len(new) == 4 and not {e.well for e in new} & set(filled_before)
    assert {e.well for e in new} & {e.well for e in experiments} == set()


def test_a_batch_that_never_reached_the_robot_is_abandoned_and_its_budget_freed(tmp_path):
    runner = runner_for(tmp_path)
    batch = runner.propose()

    def die_before_the_run(plan):
        raise Crash()

    runner.instruments.liquid_handler.run_plan = die_before_the_run
    with pytest.raises(Crash):
        runner.prepare(batch)
    again = restarted(runner)
    (line,) = again.reconcile()
    assert "never reached the robot" in line
    assert statuses(again) == ["abandoned"] * 4
    assert again.campaign.remaining_budget() == 8
    assert again.instruments.lab.runs == {}


def test_a_settled_batch_is_named_by_the_numbers_sdl_status_shows_not_by_store_ids(tmp_path):
    """In a store shared with another campaign the store ids of this campaign's experiments start later; the
    lines a person reads name them 1..n, as ``sdl status`` lists them."""
    other = demo_document()
    other["name"] = "earlier-campaign"
    Campaign.from_yaml(write_campaign(tmp_path, other, "earlier.yaml"), store=f"sqlite:///{tmp_path / 's.db'}").ask(3)
    runner = runner_for(tmp_path)
    batch = runner.propose()
    assert [p.id for p in batch] == [4, 5, 6, 7]

    def die_before_the_run(plan):
        raise Crash()

    runner.instruments.liquid_handler.run_plan = die_before_the_run
    with pytest.raises(Crash):
        runner.prepare(batch)
    (line,) = restarted(runner).reconcile()
    assert "experiments 1, 2, 3, 4 never reached the robot" in line


def test_a_run_the_robot_cannot_account_for_is_shown_to_the_user_then_settled_as_told(tmp_path):
    runner = runner_for(tmp_path)
    batch = runner.propose()
    runner.prepare(batch)
    again = restarted(runner)
    again.instruments.liquid_handler.run_status = lambda run_id: {"status": "running", "error": None}
    with pytest.raises(InDoubtError, match=r"in doubt: robot run \w+ is running") as caught:
        again.reconcile()
    assert "--in-doubt measure" in caught.value.hint
    assert statuses(again) == ["dispatched"] * 4  # nothing decided for the user
    again.reconcile("failed")
    assert statuses(again) == ["failed"] * 4


def test_the_user_can_say_the_plate_was_made(tmp_path):
    runner = runner_for(tmp_path)
    runner.prepare(runner.propose())
    again = restarted(runner)
    del again.instruments.liquid_handler.on_run_created
    again.reconcile("measure")
    assert statuses(again) == ["measured"] * 4


def test_an_unknown_in_doubt_choice_is_refused(tmp_path):
    with pytest.raises(InDoubtError, match="unknown --in-doubt choice 'maybe'"):
        runner_for(tmp_path).reconcile("maybe")


def test_the_real_driver_reports_what_became_of_a_run(tmp_path):
    from instruments.plate_plan import BatchItem, compile_plan
    from tests.opentrons_robot_server import RobotServer
    from tests.test_opentrons_http import driver

    spec = runner_for(tmp_path).campaign.spec
    config = spec.instruments.liquid_handler.model_copy(update={"host": "127.0.0.1"})
    with RobotServer() as server:
        robot = driver(server, config)
        created = []
        robot.on_run_created = created.append
        robot.run_plan(compile_plan(config, "OT-2", 1, [BatchItem(1, {"red": 10.0, "yellow": 20.0, "blue": 30.0})], 0))
        assert robot.run_status(created[0]) == {"status": "succeeded", "error": None}
        assert robot.run_status("no-such-run")["status"] == "unknown"
        robot.close()


def killed_between_creating_and_playing(tmp_path, server):
    """A runner on the real driver whose process died after creating its first batch's robot run, before
    playing it; returns the restarted runner (on a fresh driver) and the robot's idle run."""
    from tests.test_opentrons_http import driver

    runner = runner_for(tmp_path)
    config = runner.handler_config.model_copy(update={"host": "127.0.0.1"})
    robot = driver(server, config)

    def die_before_play(run_id, kind):
        raise Crash()

    robot._action = die_before_play  # the process is killed between creating the run and playing it,
    robot._release = lambda run_id: None  # so it releases nothing either
    runner.instruments.liquid_handler = robot
    with pytest.raises(Crash):
        runner.prepare(runner.propose())
    (run,) = [r for r in server.robot.runs.values() if r["protocolId"]]
    assert run["status"] == "idle" and run["current"]  # it would block the robot's next run
    again = restarted(runner)
    again.instruments.liquid_handler = driver(server, config)
    return again, run


def test_a_real_robot_run_created_but_never_played_is_closed_and_its_batch_abandoned(tmp_path):
    from tests.opentrons_robot_server import RobotServer

    with RobotServer() as server:
        again, run = killed_between_creating_and_playing(tmp_path, server)
        (line,) = again.reconcile()
        assert f"robot run {run['id']} was never played" in line
        assert statuses(again) == ["abandoned"] * 4
        assert again.campaign.remaining_budget() == 8
        assert not run["current"] and not run["_started"] and run["actions"] == []
        assert server.robot.create_run("next-protocol")[0] == 201  # the robot is free for the next batch


def test_told_failed_an_unplayed_run_is_closed_too(tmp_path):
    from tests.opentrons_robot_server import RobotServer

    with RobotServer() as server:
        again, run = killed_between_creating_and_playing(tmp_path, server)
        (line,) = again.reconcile("failed")
        assert "recorded as failed, as the user said" in line and "never played; closed now" in line
        assert statuses(again) == ["failed"] * 4
        assert not run["current"] and run["actions"] == []
        assert server.robot.create_run("next-protocol")[0] == 201


def test_a_run_someone_played_is_never_taken_for_an_unplayed_one(tmp_path):
    from instruments.plate_plan import BatchItem, compile_plan
    from instruments.opentrons.protocol_script import render_protocol
    from tests.opentrons_robot_server import RobotServer
    from tests.test_opentrons_http import driver

    config = runner_for(tmp_path).handler_config.model_copy(update={"host": "127.0.0.1"})
    with RobotServer() as server:
        robot = driver(server, config)
        created = []
        robot.on_run_created = created.append
        plan = compile_plan(config, "OT-2", 1, [BatchItem(1, {"red": 10.0, "yellow": 20.0, "blue": 30.0})], 0)
        robot.run_plan(plan)
        assert robot.close_unplayed_run(created[0]) is False  # finished and released: it has a play action
        robot.close()
    with RobotServer(fault="never") as server:  # a run that never ends
        robot = driver(server, config)
        server.robot.protocols["played-from-the-app"] = render_protocol(plan)
        _, body = server.robot.create_run("played-from-the-app")
        going = server.robot.runs[body["data"]["id"]]
        server.robot.action(going, "play")
        assert robot.close_unplayed_run(going["id"]) is False  # going: the robot refuses to close it
        assert going["current"] and going["status"] == "running"
        robot.close()


class _CannotSay:
    """A liquid handler that offers no run questions (no ``run_status``, no ``close_unplayed_run``)."""

    def __init__(self, name: str) -> None:
        self.name = name


def test_a_driver_that_cannot_say_what_became_of_a_run_leaves_the_batch_to_the_user(tmp_path):
    runner = runner_for(tmp_path)
    runner.prepare(runner.propose())
    again = restarted(runner)
    again.instruments.liquid_handler = _CannotSay(again.instruments.liquid_handler.name)
    with pytest.raises(InDoubtError, match=r"is unknown: driver \w+ cannot report what became of a run"):
        again.reconcile()
    assert statuses(again) == ["dispatched"] * 4
    (line,) = again.reconcile("failed")
    assert "recorded as failed" in line and "closed now" not in line
    assert statuses(again) == ["failed"] * 4
