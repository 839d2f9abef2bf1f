"""Instrument faults at configurable rates, reproducible under the campaign seed.

Rates are probabilities in [0, 1]:

- robot faults, per robot run (one plate plan): ``tip_pickup`` (a tip is not picked up),
  ``reagent_shortage`` (a reservoir runs dry), ``robot_stop`` (the run is stopped, e.g. an
  emergency stop or an opened door). A fault strikes at a transfer drawn uniformly from the
  run's transfers, so the wells before it are already dispensed.
- spectrometer faults, per ``read_wells`` call: ``spectrometer_timeout``, at a well drawn
  uniformly from the call's wells.
- reading faults, per well read: ``nan_reading`` (the spectrum is NaN), ``saturated_reading``
  (the detector clips).

The injector draws from its own random stream (so turning faults on does not change the
noise of the readings), and draws the same count of numbers per call whatever the rates,
so one rate's value never changes when another kind fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

ROBOT_FAULTS = ("tip_pickup", "reagent_shortage", "robot_stop")
SPECTROMETER_FAULTS = ("spectrometer_timeout",)
READING_FAULTS = ("nan_reading", "saturated_reading")
FAULT_NAMES = ROBOT_FAULTS + SPECTROMETER_FAULTS + READING_FAULTS

#: Fault name -> the short, machine-readable cause an ``InstrumentFault`` carries.
CAUSES = {
    "tip_pickup": "tip_pickup_failure",
    "reagent_shortage": "reagent_shortage",
    "robot_stop": "robot_stopped",
    "spectrometer_timeout": "spectrometer_timeout",
    "nan_reading": "nan_reading",
    "saturated_reading": "saturated_reading",
}

_STREAM_SALT = 0x5D1FA17  # separates the fault stream from the lab's noise stream


def check_rates(rates: Mapping[str, float]) -> dict[str, float]:
    """The rates as floats; raises ``ValueError`` for an unknown name or a rate outside [0, 1]."""
    checked = {}
    for name, rate in rates.items():
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {name!r}; use one of: {', '.join(FAULT_NAMES)}")
        rate = float(rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate {name}: {rate:g} is not a probability; give a value in [0, 1]")
        checked[name] = rate
    return checked


@dataclass(frozen=True)
class Fault:
    """A fault that strikes: its ``name`` (a key of ``CAUSES``) and the ``index`` of the
    transfer (robot) or well (spectrometer) at which it strikes."""

    name: str
    index: int

    @property
    def cause(self) -> str:
        return CAUSES[self.name]


class FaultInjector:
    """Decides, reproducibly, which faults strike.

    Args:
        rates: fault name -> probability (see the module docstring for what each counts).
        seed: the campaign seed.
    """

    def __init__(self, rates: Mapping[str, float], seed: int) -> None:
        self.rates = check_rates(rates)
        self._rng = np.random.default_rng([_STREAM_SALT, int(seed) & 0xFFFFFFFF])

    def _first(self, names: tuple[str, ...], n_steps: int) -> Fault | None:
        """Of the kinds in ``names`` that fire, the one striking at the earliest step."""
        fires = self._rng.random(len(names))
        steps = self._rng.integers(0, max(n_steps, 1), size=len(names))
        struck = [Fault(name, int(step)) for name, u, step in zip(names, fires, steps) if u < self.rates.get(name, 0.0)]
        if n_steps <= 0 or not struck:
            return None
        return min(struck, key=lambda f: f.index)

    def robot_fault(self, n_transfers: int) -> Fault | None:
        """The fault of one robot run of ``n_transfers`` transfers, or None."""
        return self._first(ROBOT_FAULTS, n_transfers)

    def spectrometer_fault(self, n_wells: int) -> Fault | None:
        """The timeout of one ``read_wells`` call over ``n_wells`` wells, or None."""
        return self._first(SPECTROMETER_FAULTS, n_wells)

    def reading_fault(self) -> str | None:
        """``"nan_reading"``, ``"saturated_reading"`` or None for one well's reading."""
        fires = self._rng.random(len(READING_FAULTS))
        for name, u in zip(READING_FAULTS, fires):
            if u < self.rates.get(name, 0.0):
                return name
        return None
