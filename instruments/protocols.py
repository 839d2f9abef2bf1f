"""Role protocols: the few verbs every driver of a role offers, real or simulated."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from instruments.plan import PlatePlan


@dataclass(frozen=True)
class Spectrum:
    """One reading of one well.

    ``wavelengths_nm`` and ``values`` have shape ``(n_wavelengths,)``; ``values`` are in
    absorbance units [AU] for ``kind == "absorbance"``.
    """

    well: str
    kind: str
    wavelengths_nm: np.ndarray
    values: np.ndarray
    saturated: bool
    instrument: str
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunReport:
    """What a liquid handler did with a plan: the protocol it ran and its log."""

    protocol_text: str
    run_log: str
    duration_s: float
    instrument: str


@runtime_checkable
class Instrument(Protocol):
    name: str

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


@runtime_checkable
class LiquidHandler(Instrument, Protocol):
    def run_plan(self, plan: PlatePlan) -> RunReport:
        """Carry out every transfer of ``plan``; raises ``InstrumentError`` on failure."""
        ...


@runtime_checkable
class Spectrometer(Instrument, Protocol):
    def read_wells(self, wells: Sequence[str]) -> list[Spectrum]:
        """One spectrum per well label, in the order given."""
        ...
