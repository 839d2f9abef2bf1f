"""Errors of the instruments package: each names the instrument and the step.

``HintedError`` is also the root of ``orchestrator.errors``: it lives here, in the lower
layer, because the orchestrator may import instruments and not the other way round.
"""

from __future__ import annotations


class HintedError(Exception):
    """An error with a one-line ``message`` and a ``hint`` that says how to fix it.

    The base of both the instruments' and the orchestrator's errors: the CLI prints
    ``one_line()`` and never a traceback for these.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and its hint as one line."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InstrumentError(HintedError, RuntimeError):
    """Base of every instrument failure; ``hint`` tells the user what to do.

    ``cause`` is short and machine-readable (e.g. ``"tip_pickup_failure"``) for a fault
    part-way through a run, and ``None`` for an error before anything moved (a refused plan,
    an unreachable robot). ``run_log`` is the robot's command log up to the failure and
    ``protocol_text`` the protocol it was running (``""`` when unknown or not read).
    """

    # class-level defaults too, for a plugin's subclass whose __init__ does not call this one
    cause: str | None = None
    run_log: str = ""
    protocol_text: str = ""

    def __init__(self, message: str, hint: str | None = None, *, cause: str | None = None,
                 run_log: str = "", protocol_text: str = "") -> None:
        super().__init__(message, hint)
        self.cause = cause
        self.run_log = run_log
        self.protocol_text = protocol_text


class PlanLimitError(InstrumentError, ValueError):
    """A plate plan exceeds a declared limit; nothing was dispatched."""


class ProtocolSimulationError(InstrumentError):
    """A generated Opentrons protocol failed ``opentrons.simulate``; the batch is stopped."""


class DriverNotAvailableError(InstrumentError):
    """The configured driver is not built or its optional dependency is missing."""


class InstrumentFault(InstrumentError):
    """An instrument failed part-way (tip pick-up, reagent shortage, stop, timeout).

    ``cause`` is never ``None`` here; ``wells_done`` lists the well labels already dispensed
    (robot) or read (spectrometer) before the fault.
    """

    def __init__(self, message: str, hint: str | None = None, cause: str = "instrument_fault",
                 wells_done: tuple[str, ...] | list[str] = (), *, run_log: str = "", protocol_text: str = "") -> None:
        super().__init__(message, hint, cause=cause, run_log=run_log, protocol_text=protocol_text)
        self.wells_done = list(wells_done)


class PlateOutOfPlace(InstrumentFault):
    """A fault that may have left the plate away from its deck slot (in a reader, in the gripper): the next read
    or dispense would miss it, so the loop stops without reading again until a person puts the plate back."""
