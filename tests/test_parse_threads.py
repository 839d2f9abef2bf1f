"""Every parse that parallel campaigns do waits for the process-wide parse lock.

CPython 3.11's ``ast`` module keeps one recursion-depth count per interpreter, so two
threads parsing at once can raise ``SystemError: AST constructor recursion depth mismatch``
(see ``instruments/python_source.py``; the load test hit it in CI). The race is too rare
to provoke on demand, so these tests check that each parsing path waits while the lock is
held elsewhere, and finishes once it is released.
"""

from __future__ import annotations

import threading

import pytest

from instruments.opentrons.protocol_script import simulate_protocol
from instruments.python_source import PARSE_LOCK
from orchestrator.planning.expressions import parse_nonlinear_constraint

PROTOCOL = '''
from opentrons import protocol_api
requirements = {"robotType": "OT-2", "apiLevel": "2.16"}
def run(protocol: protocol_api.ProtocolContext) -> None:
    protocol.comment("nothing to move")
'''


@pytest.mark.parametrize(
    "parse_something",
    [
        pytest.param(lambda: simulate_protocol(PROTOCOL), id="opentrons.simulate"),
        pytest.param(lambda: parse_nonlinear_constraint("a * a + b <= 4"), id="nonlinear constraint"),
    ],
)
def test_parsing_waits_for_the_parse_lock(parse_something):
    simulate_protocol(PROTOCOL)  # import opentrons outside the timed part
    finished = threading.Event()

    def work() -> None:
        parse_something()
        finished.set()

    with PARSE_LOCK:
        worker = threading.Thread(target=work)
        worker.start()
        assert not finished.wait(timeout=2.0), "parsed while another thread held PARSE_LOCK"
    assert finished.wait(timeout=60.0)
    worker.join()
