"""What a reader that a person loads adds to a driver: where the plate stands and what to ask.

No gripper reaches an off-deck reader, so a person carries each plate from the robot's deck to the
reader and back (``instruments.roles.SupportsPlateHandoff``); the loop shows them these requests and
waits for their confirmation. The driver and its twin share this class, so a dry run asks the same
things (and confirms them by itself).
"""

from __future__ import annotations

from typing import Any

from instruments.plate_moves import HANDOFF_STEPS


class HandedPlate:
    """Mix-in for a plate reader that a person loads: ``attach_robot`` keeps the campaign's deck (which
    plate labware, in which slot); ``handoff_request`` words each move. Subclasses set ``reader_words``
    (how a person recognises the reader)."""

    #: True for a twin: nobody has to move a simulated plate
    handoff_confirms_itself = False
    deck: Any = None

    @property
    def reader_words(self) -> str:
        return str(getattr(self, "name", "plate reader"))

    def attach_robot(self, liquid_handler: Any, deck: Any) -> None:
        """Keep the campaign's deck (``instruments.opentrons.deck.Deck``); the robot itself is not used."""
        self.deck = deck

    @property
    def plate_slot(self) -> str | None:
        """The deck slot of the campaign's plate, or None before ``attach_robot``."""
        return None if self.deck is None else self.deck.slots.get("plate")

    def handoff_request(self, step: str, plate: str, next_plate: str | None = None) -> str:
        """The line a person reads for hand-off ``step`` (``HANDOFF_STEPS``) of plate ``plate`` (``"P1"``)."""
        where = f"deck slot {self.plate_slot}" if self.plate_slot else "the robot's deck"
        reader = f"the reader {self.reader_words}"
        if step == "load":
            return f"put plate {plate} (from {where}) in {reader}, then confirm"
        if step == "return":
            return f"take plate {plate} out of {reader} and put it back in {where}, then confirm"
        if step == "replace":
            return (f"take plate {plate} out of {reader} (it is full) and put an empty plate, {next_plate}, "
                    f"in {where}, then confirm")
        raise ValueError(f"unknown hand-off step {step!r}; one of {', '.join(HANDOFF_STEPS)}")
