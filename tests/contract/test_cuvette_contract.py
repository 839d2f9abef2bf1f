"""The spectrometer contract holds at a cuvette station too: the Ocean Optics driver and its twin with the built-in
sampler, which has a robot bring each well into the cuvette (tests/contract/harnesses.py ``cuvette_spectrometer``).

Protects: with ``cuvette`` in the file the drivers keep every promise of their role (one spectrum per well in
order, dark and reference, settings with each sample, saturation flagged, nothing reaches the instrument or the
robot after close)."""

from __future__ import annotations

import pytest

from tests.contract import harnesses
from tests.contract.checks import INSTRUMENT_CHECKS, SPECTROMETER_CHECKS, check_id


@pytest.fixture(scope="module", autouse=True)
def opentrons_simulator():
    """Import opentrons.simulate once for the module (the first import takes seconds)."""
    import opentrons.simulate

    return opentrons.simulate


@pytest.mark.parametrize("check", INSTRUMENT_CHECKS + SPECTROMETER_CHECKS, ids=check_id)
@pytest.mark.parametrize("driver", harnesses.CUVETTE_SPECTROMETERS)
def test_spectrometer_at_a_cuvette_station_keeps_the_contract(driver, check):
    with harnesses.cuvette_spectrometer(driver) as harness:
        check(harness)
