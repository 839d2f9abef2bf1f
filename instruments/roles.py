"""Role protocols: the few verbs every driver of a role offers, real or simulated.

They are ``runtime_checkable``: ``isinstance(driver, Spectrometer)`` checks that every verb
below exists (not its signature), which is what the contract suite and the plugin loader use.
The ``Supports*`` protocols name optional capabilities a driver may add (a readiness check,
the run-id hook and the run questions asked after a restart); the loop asks for them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # annotations only: the registry reads the roles, and sdl status must not load the plate planner
    from instruments.plate_plan import PlatePlan

#: Keys of ``Instrument.info()``; a value that is not known (a twin's serial) is ``None``.
INFO_KEYS = ("name", "kind", "model", "serial", "host", "firmware")
#: ``Spectrum.kind`` values: processed spectra, and the raw counts they were computed from.
SPECTRUM_KINDS = ("absorbance", "fluorescence", "dark", "reference")


@dataclass(frozen=True)
class Spectrum:
    """One reading of one well (or a dark/reference scan, whose ``well`` may be ``""``).

    ``wavelengths_nm`` and ``values`` have shape ``(n_wavelengths,)``; ``values`` are in
    absorbance units [AU] for ``kind == "absorbance"``, counts [a.u.] for
    ``"fluorescence"``, ``"dark"`` and ``"reference"``. ``saturated`` is True when any pixel
    of the scan reached the detector's maximum. ``timestamp`` is when the scan ended (UTC).
    ``meta`` holds what the value was computed from (dark and reference counts, integration
    time [ms], averages) as JSON-serialisable values.
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
    """What every driver offers.

    ``connect`` may be called again after ``close``; ``close`` twice is harmless; a role verb
    called after ``close`` (and before a new ``connect``) raises ``InstrumentError``.
    ``info()`` returns a dict with the ``INFO_KEYS``: ``kind`` is ``"real"`` or
    ``"simulated"``; ``host`` (robots) or ``serial`` (USB devices) identify the device.
    """

    name: str

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def health(self) -> dict[str, Any]: ...

    def info(self) -> dict[str, Any]: ...


@runtime_checkable
class LiquidHandler(Instrument, Protocol):
    def run_plan(self, plan: PlatePlan) -> RunReport:
        """Carry out every transfer of ``plan``; raises ``InstrumentError`` on failure."""
        ...


@runtime_checkable
class Spectrometer(Instrument, Protocol):
    """A spectrometer, or a plate reader, that reads the wells the robot filled.

    ``acquire_dark`` and ``acquire_reference`` take and keep the scans that later samples are
    computed from; ``acquire_sample(well)`` returns the processed spectrum of what is in the
    beam for ``well`` (absorbance or fluorescence, by the instrument's mode).
    """

    @property
    def wavelengths_nm(self) -> np.ndarray:
        """Pixel wavelengths [nm] of the spectra this instrument returns, shape ``(n,)``."""
        ...

    @property
    def integration_time_ms(self) -> float: ...

    @property
    def averages(self) -> int: ...

    def acquire_dark(self) -> Spectrum: ...

    def acquire_reference(self) -> Spectrum: ...

    def acquire_sample(self, well: str) -> Spectrum: ...

    def read_wells(self, wells: Sequence[str]) -> list[Spectrum]:
        """One spectrum per well label, in the order given."""
        ...


ROLE_PROTOCOLS: dict[str, type] = {"liquid_handler": LiquidHandler, "spectrometer": Spectrometer}


# Optional capabilities: a driver of any role may offer these; the loop checks with ``isinstance``.


@runtime_checkable
class SupportsReadyCheck(Protocol):
    """Raises ``InstrumentError`` now, after ``connect``, for a setting that would fail every batch."""

    def check_ready(self) -> None: ...


@runtime_checkable
class SupportsRunCreatedHook(Protocol):
    """A liquid handler that calls ``on_run_created(run_id)`` before a run can move anything.

    The loop sets the attribute before each batch, so the store holds the run id first.
    """

    on_run_created: Callable[[str], None] | None


@runtime_checkable
class SupportsRunStatus(Protocol):
    """A liquid handler that can say, after a restart, what became of a run it was given."""

    def run_status(self, run_id: str) -> dict[str, Any]:
        """``{"status": "succeeded" | "failed" | "stopped" | "running" | "idle" | "unknown" | ..., "error": str | None}``."""
        ...


@runtime_checkable
class SupportsCloseUnplayedRun(Protocol):
    """A liquid handler that can close a run created but never played, so it never will be."""

    def close_unplayed_run(self, run_id: str) -> bool:
        """True when the run was never played and is now closed; False when it cannot say or it was played."""
        ...


@runtime_checkable
class SupportsRobotMeasuring(Protocol):
    """A measuring instrument that needs the campaign's robot: the Flex Absorbance Plate Reader (the gripper
    moves the plate into the module), a cuvette station (the pipette brings each well's aliquot), or a
    reader a person loads from the deck (``SupportsPlateHandoff``: the deck says which plate, in which slot).

    The loop calls ``attach_robot`` once, before it reconciles or checks anything, with the campaign's
    liquid handler and its deck (``instruments.opentrons.deck.Deck``); while such an instrument reads,
    the loop holds the robot's lock as well as its own.
    """

    def attach_robot(self, liquid_handler: Any, deck: Any) -> None: ...


@runtime_checkable
class SupportsBatchPlan(Protocol):
    """A measuring instrument that takes what the batch's plate plan set aside for its reading (a cuvette station:
    tips and rinse solvent, ``PlatePlan.cuvette``): the loop gives it the plan before each ``read_wells``."""

    def use_plan(self, plan: PlatePlan) -> None: ...




@runtime_checkable
class SupportsPlateHandoff(Protocol):
    """A plate reader that no gripper reaches: a person carries the plate from the robot's deck to it and back.

    Before the reader reads a plate the loop shows a person ``handoff_request("load", plate)`` and waits
    for their confirmation; before the robot dispenses the next batch, ``"return"`` (the same plate back on
    the deck) or ``"replace"`` (the full plate out, an empty one, ``next_plate``, on the deck). ``plate``
    is a plate label such as ``"P1"``. ``handoff_confirms_itself`` is True for a twin: a dry run runs
    unattended, so the loop logs the request and goes on.
    """

    handoff_confirms_itself: bool

    def handoff_request(self, step: str, plate: str, next_plate: str | None = None) -> str: ...


def protocol_members(protocol: type) -> list[str]:
    """Public verbs and attributes a runtime-checkable ``protocol`` requires, sorted."""
    names: set[str] = set()
    for base in protocol.__mro__:
        if base in (Protocol, object) or not getattr(base, "_is_protocol", False):
            continue
        names |= {n for n in vars(base) if not n.startswith("_")} | set(getattr(base, "__annotations__", {}))
    return sorted(names)


def missing_verbs(cls: type, role: str) -> list[str]:
    """Methods of ``role``'s protocol that class ``cls`` does not define.

    Only methods are checked on the class: attributes and properties (``name``, ``averages``)
    may be set in ``__init__``; ``isinstance`` on an instance checks those.
    """
    protocol = ROLE_PROTOCOLS[role]
    methods = [m for m in protocol_members(protocol) if callable(getattr(protocol, m, None))]
    return [m for m in methods if not callable(getattr(cls, m, None))]
