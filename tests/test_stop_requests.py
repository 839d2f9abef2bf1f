"""A stop signal (Ctrl-C's SIGINT, SIGTERM) is never lost on its way up, whatever the main thread was doing.

A signal handler's exception is raised at an arbitrary bytecode: inside a finalizer Python swallows it,
and a library's clean-up may replace it with its own error (Prefect's task engine did: ``ValueError:
Task run is not set``). CI's slow test met both, by chance (tests/test_signals.py). These tests
deliver the signal at such a moment on purpose, in a real run of a small campaign through ``sdl``
(Prefect, the store and the twins all real), and check that the run still ends interrupted: exit
130 or 143, one line, no traceback, the store and Prefect saying so, and ``sdl resume`` finishing it
with no step repeated or lost (``orchestrator.run.stop_request``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading

import pytest

from orchestrator.cli import commands, main
from orchestrator.run import stop_request
from orchestrator.run.steps import CampaignRunner
from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import demo_document, write_campaign

STOPS = [pytest.param(signal.SIGINT, 130, "interrupted", id="SIGINT"),
         pytest.param(signal.SIGTERM, 143, "terminated", id="SIGTERM")]

#: the handlers this test process started with (a job started in the background ignores SIGINT), put back
#: after every command
BEFORE = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}


class SignalsWhenCollected:
    """Raises ``signum`` from its finalizer, as the signal landed in ``_SelectorTransport.__del__`` in CI."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        signal.raise_signal(self.signum)  # the handler runs here, inside __del__: Python swallows its exception


def small_campaign(tmp_path, name: str):
    """Two iterations of two Sobol experiments: the loop, not the planner."""
    doc = demo_document()
    doc["name"] = name
    doc["budget"] = {"experiments": 4, "batch_size": 2}
    doc["planner"] = {"initial_experiments": 4}
    return write_campaign(tmp_path, doc)


def flow_run_state(name: str) -> str:
    """The state type of the newest Prefect flow run of campaign ``name``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    async def newest():
        async with get_client() as client:
            runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])),
                                               sort=FlowRunSort.START_TIME_DESC, limit=1)
            return runs[0].state.type.value

    return asyncio.run(newest())


def check_stopped(capsys, code: int, exit_code: int, said: str, url: str, name: str) -> CampaignStore:
    """The run ended as the stop asks: its status, its one line, no traceback, the store and Prefect agree."""
    err = capsys.readouterr().err
    assert code == exit_code, err[-3000:]
    assert f"{said}: every finished step is in the store" in err
    assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    store = CampaignStore(url)
    campaign = store.get_campaign(name)
    assert campaign.status == "interrupted"
    (event,) = store.events(campaign.id, "campaign_interrupted")
    assert event["detail"] == {"signal": signal.Signals(exit_code - 128).name}
    assert flow_run_state(name) == "CRASHED"  # Prefect's engine saw the stop, as for one that was not lost
    assert stop_request.stop_requested() is None  # forgotten once the command ended: a notebook goes on
    assert signal.getsignal(signal.SIGINT) == BEFORE[signal.SIGINT]  # pytest's handlers are back
    return store


@pytest.mark.parametrize("signum, exit_code, said", STOPS)
def test_a_stop_swallowed_by_a_finalizer_ends_the_run_at_the_next_step_and_resume_finishes_it(
        prefect_server, tmp_path, monkeypatch, capsys, signum, exit_code, said):
    name = f"stop-in-finalizer-{signum.name.lower()}"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    record = CampaignRunner.record

    def record_then_collect_a_signalling_object(self, outcomes):
        record(self, outcomes)
        if self.campaign.next_iteration() == 2:  # after iteration 1: the signal is lost in a finalizer
            SignalsWhenCollected(signum)  # collected at once, at the end of this statement

    monkeypatch.setattr(CampaignRunner, "record", record_then_collect_a_signalling_object)
    code = main(["run", str(small_campaign(tmp_path, name)), "--dry-run", "--store", url])
    store = check_stopped(capsys, code, exit_code, said, url, name)
    campaign = store.get_campaign(name)
    # stopped between iterations: the first batch measured, the second never proposed
    assert [(e.iteration, e.status) for e in store.experiments(campaign.id)] == [(1, "measured")] * 2

    monkeypatch.setattr(CampaignRunner, "record", record)
    assert main(["resume", name, "--store", url]) == 0
    experiments = store.experiments(campaign.id)
    assert [(e.iteration, e.status) for e in experiments] == [(1, "measured")] * 2 + [(2, "measured")] * 2
    assert [len(store.measurements(e.id)) for e in experiments] == [1] * 4  # nothing measured twice
    assert [it["iteration"] for it in store.iterations(campaign.id)] == [1, 2]  # each plate made once
    assert store.get_campaign(name).status == "completed"


@pytest.mark.parametrize("signum, exit_code, said", STOPS)
@pytest.mark.parametrize("lost", ["replaced in a clean-up", "swallowed, then another error"])
def test_a_stop_that_another_error_replaced_still_ends_the_run_interrupted(
        prefect_server, tmp_path, monkeypatch, capsys, signum, exit_code, said, lost):
    """A stop inside the preflight task (as in CI), turned into a ValueError before it reached the flow."""
    name = f"stop-replaced-{signum.name.lower()}-{lost.split(',')[0].replace(' ', '-')}"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(logging.Formatter().format(record))

    log = Lines()

    def preflight_stopped_and_spoiled(self):
        logging.getLogger("prefect.task_runs").addHandler(log)  # inside the run: Prefect sets its logging up then
        try:
            signal.raise_signal(signum)
        except BaseException:
            if lost == "replaced in a clean-up":  # as Prefect's handle_crash: a new error, the stop its context
                raise ValueError("Task run is not set")
        raise ValueError("the instrument's connection was closed")  # the stop is in no chain of this one

    monkeypatch.setattr(CampaignRunner, "preflight", preflight_stopped_and_spoiled)
    try:
        code = main(["run", str(small_campaign(tmp_path, name)), "--dry-run", "--store", url])
    finally:
        logging.getLogger("prefect.task_runs").removeHandler(log)
    store = check_stopped(capsys, code, exit_code, said, url, name)
    assert store.experiments(store.get_campaign(name).id) == []  # stopped before anything was proposed
    failed = [line for line in lines if "failed with exception: ValueError" in line]
    assert len(failed) == 1 and "Traceback" not in failed[0]  # Prefect's log line of the task, without the traceback


@pytest.mark.parametrize("signum, exit_code, said", STOPS)
def test_sdl_reports_a_stop_the_command_swallowed_even_when_it_returned(monkeypatch, capsys, signum, exit_code, said):
    def run_that_swallows_the_stop(args):
        SignalsWhenCollected(signum)
        return 0

    monkeypatch.setattr(commands, "cmd_run", run_that_swallows_the_stop)
    assert main(["run", "campaign.yaml"]) == exit_code
    err = capsys.readouterr().err
    assert err == f"{said}: every finished step is in the store\n"


def test_prefects_termination_signal_behind_another_error_is_reported_as_terminated(monkeypatch, capsys):
    """Prefect raises TerminationSignal from its own SIGTERM handler, outside any handler of sdl's."""
    from prefect.exceptions import TerminationSignal

    def run_whose_clean_up_failed(args):
        try:
            raise TerminationSignal(signal.SIGTERM)
        except TerminationSignal:
            raise ValueError("Task run is not set")

    monkeypatch.setattr(commands, "cmd_run", run_whose_clean_up_failed)
    assert main(["run", "campaign.yaml"]) == 143
    assert capsys.readouterr().err == "terminated: every finished step is in the store\n"


def test_the_handlers_record_raise_and_are_put_back():
    hook = sys.unraisablehook
    with stop_request.recording_stops(signal.SIGINT, signal.SIGTERM):
        assert stop_request.stop_requested() is None
        stop_request.raise_if_stop_requested()  # nothing asked: nothing raised
        with pytest.raises(stop_request.StopRequested) as raised:
            signal.raise_signal(signal.SIGTERM)
        assert raised.value.signum == signal.SIGTERM and isinstance(raised.value, KeyboardInterrupt)
        with pytest.raises(stop_request.StopRequested):
            signal.raise_signal(signal.SIGINT)
        request = stop_request.current_request()
        assert request.signum == signal.SIGTERM and request.name == "SIGTERM"  # the first one is kept
        with pytest.raises(stop_request.StopRequested) as again:
            stop_request.raise_if_stop_requested()
        assert again.value.signum == signal.SIGTERM
    assert stop_request.stop_requested() is None
    assert signal.getsignal(signal.SIGINT) == BEFORE[signal.SIGINT]
    assert signal.getsignal(signal.SIGTERM) == BEFORE[signal.SIGTERM]
    assert sys.unraisablehook is hook


def test_a_library_handler_over_ours_still_runs_and_the_stop_is_recorded_under_it():
    class LibrarysOwnStop(BaseException):
        pass

    def librarys_handler(signum, frame):  # as Prefect's flow engine raises TerminationSignal
        raise LibrarysOwnStop()

    with stop_request.recording_stops(signal.SIGTERM):
        signal.signal(signal.SIGTERM, librarys_handler)
        with stop_request.recording_under_other_handlers():
            with pytest.raises(LibrarysOwnStop):
                signal.raise_signal(signal.SIGTERM)
            assert stop_request.stop_requested() == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is librarys_handler  # theirs again once the block ends
    assert signal.getsignal(signal.SIGTERM) == BEFORE[signal.SIGTERM]


def test_outside_sdl_and_off_the_main_thread_nothing_is_changed():
    with stop_request.recording_under_other_handlers():  # no command records stops: a deployment's flow run
        assert signal.getsignal(signal.SIGTERM) == BEFORE[signal.SIGTERM]
    seen = []

    def in_a_thread():
        with stop_request.recording_stops(signal.SIGINT, signal.SIGTERM):
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert seen == [BEFORE[signal.SIGTERM]]


def test_the_signal_behind_an_error_is_found_along_its_chain():
    try:
        try:
            raise stop_request.StopRequested(signal.SIGTERM)
        except KeyboardInterrupt:
            raise ValueError("replaced")
    except ValueError as err:
        replaced = err
    assert stop_request.signal_behind(replaced) == signal.SIGTERM
    assert stop_request.signal_behind(KeyboardInterrupt()) == signal.SIGINT
    assert stop_request.signal_behind(ValueError("no signal behind this")) is None
    assert stop_request.signal_behind(None) is None
