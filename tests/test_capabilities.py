"""Optional driver capabilities are protocols the loop checks with ``isinstance``, and instrument
errors declare the fields the loop reads (``cause``, ``run_log``, ``protocol_text``)."""

from __future__ import annotations

import pytest

from instruments.errors import InstrumentError, InstrumentFault
from instruments.opentrons.http_driver import OpentronsHTTP
from instruments.opentrons.twin import SimulatedOpentrons
from instruments.roles import SupportsCloseUnplayedRun, SupportsReadyCheck, SupportsRunCreatedHook, SupportsRunStatus
from instruments.spectrometers.ocean_optics import OceanOpticsSpectrometer
from instruments.spectrometers.twin import SimulatedSpectrometer


def test_the_built_in_drivers_offer_the_capabilities_the_loop_asks_for():
    assert issubclass(OpentronsHTTP, SupportsRunStatus) and issubclass(OpentronsHTTP, SupportsCloseUnplayedRun)
    assert issubclass(SimulatedOpentrons, SupportsRunStatus)
    assert not issubclass(SimulatedOpentrons, SupportsCloseUnplayedRun)
    assert issubclass(OceanOpticsSpectrometer, SupportsReadyCheck)
    assert not issubclass(SimulatedSpectrometer, SupportsReadyCheck)


def test_the_run_created_hook_is_an_attribute_a_driver_may_lack_or_drop():
    class Hooked:
        def __init__(self) -> None:
            self.on_run_created = None

    driver = Hooked()
    assert isinstance(driver, SupportsRunCreatedHook)
    del driver.on_run_created
    assert not isinstance(driver, SupportsRunCreatedHook)


def test_a_verb_set_to_none_is_not_offered():
    class Switched:
        check_ready = None

    assert not isinstance(Switched(), SupportsReadyCheck)


def test_instrument_errors_carry_cause_run_log_and_protocol_text():
    plain = InstrumentError("robot unreachable", hint="check the cable")
    assert (plain.cause, plain.run_log, plain.protocol_text) == (None, "", "")
    ran = InstrumentError("run failed", cause="robot_stop", run_log="play\nstop", protocol_text="def run(p): ...")
    assert (ran.cause, ran.run_log, ran.protocol_text) == ("robot_stop", "play\nstop", "def run(p): ...")
    fault = InstrumentFault("tip", "see the deck", "tip_pickup_failure", ["A1"], run_log="log")
    assert (fault.cause, fault.wells_done, fault.run_log, fault.protocol_text) == ("tip_pickup_failure", ["A1"], "log", "")
    assert InstrumentFault("part-way").cause == "instrument_fault"


def test_a_subclass_that_skips_the_base_constructor_still_has_the_fields():
    class Terse(InstrumentError):
        def __init__(self) -> None:
            Exception.__init__(self, "terse")
            self.message, self.hint = "terse", None

    with pytest.raises(InstrumentError) as caught:
        raise Terse()
    assert (caught.value.cause, caught.value.run_log, caught.value.protocol_text) == (None, "", "")
