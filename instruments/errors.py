"""Errors of the instruments package: each names the instrument and the step."""

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
    """Base of every instrument failure; ``hint`` tells the user what to do."""


class PlanLimitError(InstrumentError, ValueError):
    """A plate plan exceeds a declared limit; nothing was dispatched."""


class ProtocolSimulationError(InstrumentError):
    """A generated Opentrons protocol failed ``opentrons.simulate``; the batch is stopped."""


class DriverNotAvailableError(InstrumentError):
    """The configured driver is not built or its optional dependency is missing."""


class InstrumentFault(InstrumentError):
    """An instrument failed part-way (tip pick-up, reagent shortage, stop, timeout).

    ``cause`` is short and machine-readable (e.g. ``"tip_pickup_failure"``); ``wells_done``
    lists the well labels already dispensed (robot) or read (spectrometer) before the fault.
    """

    def __init__(self, message: str, hint: str | None = None, cause: str = "instrument_fault",
                 wells_done: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message, hint)
        self.cause = cause
        self.wells_done = list(wells_done)
