"""The contract every driver keeps, as checks on a ``Harness`` (tests/contract/harnesses.py).

The test modules of this package run each check on every driver of its role; a plugin's
test (tests/test_plugins.py) runs the same checks on the plugin's driver.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import pytest

from instruments.errors import InstrumentError, PlanLimitError
from instruments.plate_plan import BatchItem, PlatePlan, check_plan, compile_plan
from instruments.registry import all_drivers
from instruments.roles import INFO_KEYS, Instrument, LiquidHandler, RunReport, Spectrometer
from tests.contract.harnesses import Harness, handler_config

Check = Callable[[Harness], None]


def use(h: Harness) -> Any:
    """One call of the driver's role verb: read well P1-B2 (filled by ``ready``), or run a small plan."""
    if isinstance(h.driver, Spectrometer):
        return h.driver.read_wells(["P1-B2"])
    return h.driver.run_plan(small_plan(h.robot_type))


def ready(h: Harness) -> None:
    """What ``use`` needs on the bench: a sample in well P1-B2 for a spectrometer."""
    if isinstance(h.driver, Spectrometer):
        h.fill(["P1-B2"])


def small_plan(robot_type: str, wells_used: int = 0) -> PlatePlan:
    """Two wells, small and large pipette transfers, diluent fill to 300 uL."""
    batch = [BatchItem(1, {"red": 10.0, "yellow": 20.0, "blue": 30.0}), BatchItem(2, {"red": 60.0, "yellow": 5.0, "blue": 0.0})]
    return compile_plan(handler_config(), robot_type, iteration=1, batch=batch, wells_used=wells_used)


def assert_one_line(err: InstrumentError) -> None:
    text = err.one_line()
    assert "\n" not in text and err.hint, text


# -- every instrument -------------------------------------------------------------------------

def check_implements_its_role_protocol(h: Harness) -> None:
    assert isinstance(h.driver, Instrument)
    assert isinstance(h.driver, LiquidHandler) != isinstance(h.driver, Spectrometer)  # exactly one role


def check_info_names_the_instrument(h: Harness) -> None:
    for stage in ("before connect", "after connect"):
        info = h.driver.info()
        assert set(INFO_KEYS) <= set(info), (stage, info)
        assert info["name"] == h.driver.name == h.name and info["kind"] == h.kind, (stage, info)
        json.dumps(info)  # stored with the campaign as it is
        h.driver.connect()
    assert info["model"], info
    if h.kind == "real":
        assert info["serial"] or info["host"], info  # a real device says which one it is


def check_connect_health_close_lifecycle(h: Harness) -> None:
    ready(h)
    h.driver.connect()
    health = h.driver.health()
    assert isinstance(health, dict) and health
    h.driver.close()
    h.driver.close()  # closing twice is harmless
    before = h.calls()
    with pytest.raises(InstrumentError, match="close") as caught:
        use(h)
    assert_one_line(caught.value)
    assert h.calls() == before  # nothing reached the instrument
    h.driver.connect()  # a closed driver can be connected again and used
    assert use(h)


INSTRUMENT_CHECKS: list[Check] = [
    check_implements_its_role_protocol, check_info_names_the_instrument, check_connect_health_close_lifecycle,
]


# -- liquid handlers --------------------------------------------------------------------------

def check_a_small_plan_runs_and_reports(h: Harness) -> None:
    plan = small_plan(h.robot_type)
    check_plan(plan, {})
    h.driver.connect()
    report = h.driver.run_plan(plan)
    assert isinstance(report, RunReport)
    assert report.instrument == h.name and report.duration_s > 0 and math.isfinite(report.duration_s)
    assert f"robotType': '{h.robot_type}'" in report.protocol_text.replace('"', "'")
    assert report.run_log.strip() and report.run_log.count("\n") >= 4  # one line per robot step, at least


def _over_capacity(plan: PlatePlan) -> PlatePlan:
    first = plan.wells[0]
    flooded = first.model_copy(update={"volumes_ul": {**first.volumes_ul, "diluent": first.volumes_ul["diluent"] + 100}})
    return plan.model_copy(update={"wells": [flooded, *plan.wells[1:]]})


def _too_many_tips(robot_type: str) -> PlatePlan:
    """49 wells with two small-pipette transfers each: 98 small tips, one rack holds 96."""
    batch = [BatchItem(i, {"red": 5.0, "yellow": 5.0, "blue": 0.0}) for i in range(1, 50)]
    return compile_plan(handler_config(), robot_type, iteration=1, batch=batch, wells_used=0)


def _after_earlier_batches(robot_type: str) -> PlatePlan:
    """A small plan once earlier batches used 95 of the 96 large tips."""
    plan = small_plan(robot_type)
    return plan.model_copy(update={"tips_start": {"tiprack_large": 95}})


def check_plans_beyond_a_limit_are_refused_before_any_call(h: Harness) -> None:
    h.driver.connect()
    stock = {"red": 15000.0, "yellow": 15000.0, "blue": 15000.0, "diluent": 15000.0}
    cases = {"well capacity": _over_capacity(small_plan(h.robot_type)), "tips": _too_many_tips(h.robot_type),
             "refill": _after_earlier_batches(h.robot_type),
             "stock": small_plan(h.robot_type)}
    before = h.calls()
    for expected, plan in cases.items():
        left = {**stock, "red": 1.0} if expected == "stock" else stock
        with pytest.raises(PlanLimitError, match=expected) as caught:
            check_plan(plan, left)  # the loop's order: check, then run_plan only if it passes
            h.driver.run_plan(plan)
        assert "nothing dispatched" in caught.value.one_line()
    assert h.calls() == before


LIQUID_HANDLER_CHECKS: list[Check] = [check_a_small_plan_runs_and_reports, check_plans_beyond_a_limit_are_refused_before_any_call]


# -- spectrometers ----------------------------------------------------------------------------

def _assert_spectrum(h: Harness, s: Any, kinds: tuple[str, ...]) -> None:
    assert s.kind in kinds and s.instrument == h.name
    info = all_drivers().get(h.name)
    least = 1 if info is not None and info.reads == "wavelengths" else 10  # a plate reader reads a few wavelengths
    assert s.wavelengths_nm.ndim == 1 and s.wavelengths_nm.shape == s.values.shape and s.values.size >= least
    assert np.all(np.diff(s.wavelengths_nm) > 0)
    np.testing.assert_array_equal(s.wavelengths_nm, h.driver.wavelengths_nm)
    assert type(s.saturated) is bool  # a numpy bool is not JSON: the store writes this flag as it is
    assert s.timestamp.tzinfo is not None and s.timestamp.utcoffset().total_seconds() == 0
    json.dumps(s.meta)


def check_read_wells_gives_one_spectrum_per_well_in_order(h: Harness) -> None:
    labels = ["P1-A1", "P1-B1", "P1-C1"]
    h.fill(labels)
    started = datetime.now(timezone.utc)
    spectra = h.driver.read_wells(labels)
    ended = datetime.now(timezone.utc)
    assert [s.well for s in spectra] == labels
    for s in spectra:
        _assert_spectrum(h, s, ("absorbance", "fluorescence"))
        assert started <= s.timestamp <= ended and np.isfinite(s.values).all() and not s.saturated
    assert [s.timestamp for s in spectra] == sorted(s.timestamp for s in spectra)
    assert len({s.values.tobytes() for s in spectra}) == 3  # different wells, different readings


def check_dark_reference_and_sample_acquisition(h: Harness) -> None:
    h.fill(["P1-D1"])
    h.driver.connect()
    dark, reference = h.driver.acquire_dark(), h.driver.acquire_reference()
    _assert_spectrum(h, dark, ("dark",))
    _assert_spectrum(h, reference, ("reference",))
    assert reference.values.mean() > dark.values.mean()  # light through the blank, none in the dark
    sample = h.driver.acquire_sample("P1-D1")
    _assert_spectrum(h, sample, ("absorbance", "fluorescence"))
    assert sample.well == "P1-D1"


def check_settings_are_reported_with_each_sample(h: Harness) -> None:
    ms, n = h.driver.integration_time_ms, h.driver.averages
    assert isinstance(ms, float) and ms > 0 and isinstance(n, int) and n >= 1
    ready(h)
    (sample,) = use(h)
    assert sample.meta["integration_time_ms"] == pytest.approx(ms) and sample.meta["averages"] == n


def check_a_saturated_reading_is_flagged(h: Harness) -> None:
    h.fill(["P1-E1"])
    h.saturate("P1-F1")
    good, clipped = h.driver.read_wells(["P1-E1", "P1-F1"])
    assert (good.saturated, clipped.saturated) == (False, True)


SPECTROMETER_CHECKS: list[Check] = [
    check_read_wells_gives_one_spectrum_per_well_in_order, check_dark_reference_and_sample_acquisition,
    check_settings_are_reported_with_each_sample, check_a_saturated_reading_is_flagged,
]


def check_id(check: Check) -> str:
    return check.__name__.removeprefix("check_")
