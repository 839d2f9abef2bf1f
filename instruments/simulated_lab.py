"""The simulated lab shared by every twin: plate contents, reagent stocks and a cuvette station.

The simulated robot writes what it dispensed into ``wells``; the simulated
spectrometer reads the same wells, or, with a cuvette station, what the robot moved into
the ``cuvette``. Volumes are in uL.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from instruments.errors import InstrumentError
from simulators.faults import FaultInjector
from simulators.model import SimulatorModel
from simulators.timing import TIMING_MODES

#: The place name of the cuvette station's cuvette, beside the plate's well labels (``"P1-A1"``).
CUVETTE = "cuvette"


@dataclass
class SimulatedLab:
    """State of the simulated bench: the plate, the reservoirs, the robot's run memory, the clock.

    Args:
        model: the simulator model that turns well contents into spectra.
        rng: the one random stream every twin draws from (seeded by the campaign).
        noise: noise settings of the campaign's ``simulation`` section.
        wells: plate well label (``"P1-A1"``) -> reagent -> volume dispensed [uL].
        runs: robot run id -> ``{"iteration", "status", "wells", "error", "experiment_ids"}``
            with ``status`` one of ``"running"``, ``"succeeded"``, ``"failed"``.
        faults: decides which instrument faults strike (None: no faults).
        timing: ``"instant"`` (never sleeps) or ``"realistic"`` (sleeps every simulated
            duration times ``time_scale``). Simulated time advances the same in both.
        time_scale: factor on the realistic sleeps (0.05: twenty times faster than life).
        stocks_ul: reagent -> volume left in its reservoir [uL]; a reagent not listed is not
            tracked (never runs dry).
        clock_s: simulated seconds since the campaign started (drives baseline drift).
        tips_used: tips picked up so far.
        refills_done: ids of the refills (store events) already poured into ``stocks_ul``.
        cuvette: what the cuvette station's cuvette holds: reagent -> volume [uL].
        state_path: JSON file that keeps wells, runs, stocks, clock and tips across a crash of
            the orchestrator (the plate and the robot's memory survive it); loaded at
            construction when it exists, rewritten atomically after every change (each
            transfer, run update and clock step).
        sleep: how realistic mode waits [s] (``time.sleep``).
    """

    model: SimulatorModel
    rng: np.random.Generator
    noise: dict[str, float] = field(default_factory=dict)
    wells: dict[str, dict[str, float]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: FaultInjector | None = None
    timing: str = "instant"
    time_scale: float = 1.0
    stocks_ul: dict[str, float] = field(default_factory=dict)
    clock_s: float = 0.0
    tips_used: int = 0
    refills_done: list[int] = field(default_factory=list)
    cuvette: dict[str, float] = field(default_factory=dict)
    state_path: Path | None = None
    sleep: Callable[[float], None] = time.sleep

    _SAVED = ("wells", "runs", "stocks_ul", "clock_s", "tips_used", "refills_done", "cuvette")

    def __post_init__(self) -> None:
        if self.timing not in TIMING_MODES:
            raise ValueError(f"unknown timing {self.timing!r}; use one of: {', '.join(TIMING_MODES)}")
        if self.time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {self.time_scale}")
        if self.state_path is not None:
            self.state_path = Path(self.state_path)
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            if self.state_path.exists():
                self._load()

    # the plate -------------------------------------------------------------------------

    def add(self, label: str, reagent: str, volume_ul: float) -> None:
        contents = self.wells.setdefault(label, {})
        contents[reagent] = contents.get(reagent, 0.0) + volume_ul
        self.save()

    def contents(self, place: str) -> dict[str, float]:
        """What plate well ``place`` (a label) or the cuvette (``CUVETTE``) holds: reagent -> uL."""
        return self.cuvette if place == CUVETTE else self.wells.get(place, {})

    def total_ul(self, label: str) -> float:
        return sum(self.contents(label).values())

    def take(self, place: str, volume_ul: float) -> dict[str, float]:
        """Draw ``volume_ul`` from plate well ``place`` or the cuvette, the mixture it holds; what was drawn
        (all of it, when it holds less)."""
        contents = self.contents(place)
        total = sum(contents.values())
        share = min(1.0, volume_ul / total) if total > 0 else 0.0
        drawn = {reagent: volume * share for reagent, volume in contents.items()}
        for reagent, volume in drawn.items():
            contents[reagent] -= volume
            if contents[reagent] <= 1e-9:
                del contents[reagent]
        self.save()
        return drawn

    def pour(self, place: str, liquid: dict[str, float]) -> None:
        """Add ``liquid`` (reagent -> uL) to plate well ``place`` or the cuvette."""
        contents = self.cuvette if place == CUVETTE else self.wells.setdefault(place, {})
        for reagent, volume in liquid.items():
            contents[reagent] = contents.get(reagent, 0.0) + volume
        self.save()

    def draw_stock(self, reagent: str, volume_ul: float) -> bool:
        """Take ``volume_ul`` from the reservoir of ``reagent``; False (nothing taken) if it is short."""
        if reagent not in self.stocks_ul:
            return True
        if self.stocks_ul[reagent] < volume_ul:
            return False
        self.stocks_ul[reagent] -= volume_ul
        return True

    def refill(self, refill_id: int, levels_ul: dict[str, float]) -> None:
        """Top reservoir wells up to ``levels_ul`` (reagent -> uL), once per ``refill_id``."""
        if refill_id in self.refills_done:
            return
        for reagent, level in levels_ul.items():
            if reagent in self.stocks_ul:
                self.stocks_ul[reagent] = float(level)
        self.refills_done.append(refill_id)
        self.save()

    # the robot's run memory ---------------------------------------------------------------

    def start_run(self, run_id: str, iteration: int, experiment_ids: list[int],
                  offsets: list[dict] | None = None) -> None:
        """Remember run ``run_id``; ``offsets``: the Labware Position Check offsets it was sent, as the robot
        takes them (``LabwareOffset.as_run_offset``)."""
        self.runs[run_id] = {"iteration": iteration, "status": "running", "wells": [], "error": None,
                             "experiment_ids": list(experiment_ids), "offsets": list(offsets or [])}
        self.save()

    def well_done(self, run_id: str, label: str) -> None:
        self.runs[run_id]["wells"].append(label)
        self.save()

    def finish_run(self, run_id: str, error: str | None = None) -> None:
        self.runs[run_id].update(status="failed" if error else "succeeded", error=error)
        self.save()

    # the clock ---------------------------------------------------------------------------

    @property
    def elapsed_h(self) -> float:
        """Simulated hours since the campaign started."""
        return self.clock_s / 3600.0

    def pass_time(self, seconds: float, save: bool = True) -> None:
        """Advance the simulated clock by ``seconds``; realistic timing also sleeps (scaled).

        ``save=False`` when a change that saves follows at once (a transfer's ``add``).
        """
        self.clock_s += seconds
        if save:
            self.save()
        if self.timing == "realistic" and seconds * self.time_scale > 0:
            self.sleep(seconds * self.time_scale)

    # persistence -------------------------------------------------------------------------

    def save(self) -> None:
        """Write the state to ``state_path`` atomically (temp file + ``os.replace``); no-op without one."""
        if self.state_path is None:
            return
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({name: getattr(self, name) for name in self._SAVED}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_path)
        except OSError as err:  # e.g. a full disk: one line, as for the store beside it
            raise InstrumentError(f"simulated lab: cannot save its state to {self.state_path}: {err.strerror or err}",
                                  hint="free space on that disk, then: sdl resume CAMPAIGN") from err

    def _load(self) -> None:
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
            for name in self._SAVED:
                if name in state:
                    setattr(self, name, state[name])
            # The twin robot lives in the orchestrator's process: a run it was carrying out when
            # that process died stopped there, part-way, as a real robot stopped by its e-stop.
            for run in self.runs.values():
                if run["status"] == "running":
                    run.update(status="stopped", error="interrupted: the simulated robot stopped with the "
                                                       "orchestrator process")
        except (OSError, ValueError, TypeError) as err:
            raise InstrumentError(f"simulated lab state {self.state_path} cannot be read: {err}",
                                  hint="delete the file to start with an empty plate") from None


class SimulatedInstrument:
    """What every twin shares: a name, the shared lab, its config, and the Instrument verbs.

    A twin starts usable (the loop need not call ``connect``), like the real drivers that
    connect on first use. After ``close`` every role verb a subclass defines (``run_plan``,
    ``read_wells``, ``acquire_*``) raises ``InstrumentError`` until ``connect`` is called again,
    as a real driver's closed connection would.
    """

    #: Role verbs that a closed twin refuses; wrapped in every subclass that defines them.
    GUARDED_VERBS = ("run_plan", "run_protocol", "read_wells", "acquire_sample", "acquire_dark", "acquire_reference")

    def __init__(self, name: str, lab: SimulatedLab, config: Any = None) -> None:
        self.name = name
        self.lab = lab
        self.config = config
        self.connected = False
        self.closed = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for verb in cls.GUARDED_VERBS:
            if verb in cls.__dict__:
                setattr(cls, verb, _refused_when_closed(cls.__dict__[verb]))

    def connect(self) -> None:
        self.connected, self.closed = True, False

    def close(self) -> None:
        self.connected, self.closed = False, True

    def health(self) -> dict[str, Any]:
        return {"ok": not self.closed, "simulated": True, "connected": self.connected}

    def info(self) -> dict[str, Any]:
        """Identity of the twin: ``kind`` is ``"simulated"``; no serial, host or firmware."""
        model = getattr(self, "robot_type", None) or type(self).__name__
        return {"name": self.name, "kind": "simulated", "model": f"simulated {model}",
                "serial": None, "host": None, "firmware": None}


def _refused_when_closed(verb: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(verb)
    def guarded(self: SimulatedInstrument, *args: Any, **kwargs: Any) -> Any:
        if self.closed:
            raise InstrumentError(f"{self.name}: {verb.__name__} called after close()",
                                  hint="call connect() again before using a closed instrument")
        return verb(self, *args, **kwargs)

    return guarded
