"""One contract, every driver: real drivers on their fake transports and every simulated twin."""

from __future__ import annotations

import pytest

from instruments.registry import DRIVERS
from tests.contract import harnesses
from tests.contract.checks import INSTRUMENT_CHECKS, LIQUID_HANDLER_CHECKS, SPECTROMETER_CHECKS, check_id


@pytest.fixture(scope="module", autouse=True)
def opentrons_simulator():
    """Import opentrons.simulate once for the module (the first import takes seconds)."""
    import opentrons.simulate

    return opentrons.simulate


def test_the_suite_covers_every_built_in_driver():
    assert sorted(harnesses.LIQUID_HANDLERS + harnesses.SPECTROMETERS) == sorted(DRIVERS)


@pytest.mark.parametrize("check", INSTRUMENT_CHECKS + LIQUID_HANDLER_CHECKS, ids=check_id)
@pytest.mark.parametrize("driver", harnesses.LIQUID_HANDLERS)
def test_liquid_handler_contract(driver, check):
    with harnesses.liquid_handler(driver) as harness:
        check(harness)


@pytest.mark.parametrize("check", INSTRUMENT_CHECKS + SPECTROMETER_CHECKS, ids=check_id)
@pytest.mark.parametrize("driver", harnesses.SPECTROMETERS)
def test_spectrometer_contract(driver, check):
    with harnesses.spectrometer(driver) as harness:
        check(harness)
