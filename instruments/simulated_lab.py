"""The simulated lab shared by every twin: plate contents and reagent stocks.

The simulated robot writes what it dispensed into ``wells``; the simulated
spectrometer reads the same wells. Volumes are in uL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SimulatedLab:
    """State of the simulated bench.

    Args:
        model: the simulator model that turns well contents into spectra.
        rng: the one random stream every twin draws from (seeded by the campaign).
        noise: noise settings of the campaign's ``simulation`` section.
    """

    model: Any
    rng: np.random.Generator
    noise: dict[str, float] = field(default_factory=dict)
    wells: dict[str, dict[str, float]] = field(default_factory=dict)  # "P1-A1" -> reagent -> uL

    def add(self, label: str, reagent: str, volume_ul: float) -> None:
        contents = self.wells.setdefault(label, {})
        contents[reagent] = contents.get(reagent, 0.0) + volume_ul

    def total_ul(self, label: str) -> float:
        return sum(self.wells.get(label, {}).values())


class SimulatedInstrument:
    """What every twin shares: a name, the shared lab, its config, and the Instrument verbs."""

    def __init__(self, name: str, lab: SimulatedLab, config: Any = None) -> None:
        self.name = name
        self.lab = lab
        self.config = config
        self.connected = False

    def connect(self) -> None:
        self.connected = True

    def close(self) -> None:
        self.connected = False

    def health(self) -> dict[str, Any]:
        return {"ok": True, "simulated": True, "connected": self.connected}
