"""Simulated twin of the Opentrons Flex Absorbance Plate Reader.

The physics is the generic plate reader twin's (``instruments.plate_readers.twin``): the simulator model's
reading of each well at the campaign's wavelengths, with its noise, drift and faults. Like the real driver,
each ``read_wells`` renders the read protocol of the plate (``instruments.opentrons.reader_script``) and
runs it through ``opentrons.simulate`` for the Flex, the gate the real driver passes before the robot sees
it; so a dry run refuses what the robot would (a reader slot that holds labware, a plate the gripper may not
move, a plate too tall for the module).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from instruments.errors import InstrumentError
from instruments.opentrons.absorbance_reader import plate_wells
from instruments.opentrons.deck import DECKS, FLEX, Deck
from instruments.opentrons.protocol_script import simulate_protocol
from instruments.opentrons.reader_script import (
    DEFAULT_READER_SLOT, MIN_READER_API, READER_MODULE, read_file_name, reader_deck_problem, render_read_protocol,
)
from instruments.opentrons.robot_api import api_text
from instruments.plate_readers.twin import SimulatedPlateReader
from instruments.roles import Spectrum
from instruments.simulated_lab import SimulatedLab


class SimulatedAbsorbanceReader(SimulatedPlateReader):
    """``Spectrometer`` twin of the Absorbance Plate Reader on a simulated Flex.

    ``attach_robot`` keeps the campaign's deck (without one, the Flex's default deck is read). ``check_protocols``
    False skips ``opentrons.simulate`` (a fraction of a second per read): only for tests of the twin's own
    behaviour. ``last_protocol`` is the read protocol of the latest ``read_wells``.
    """

    def __init__(self, name: str, lab: SimulatedLab, config: Any = None, robot_type: str = FLEX,
                 check_protocols: bool = True) -> None:
        super().__init__(name, lab, config)
        self.robot_type, self.check_protocols = robot_type, check_protocols
        self.reader_slot: str = getattr(config, "reader_slot", None) or DEFAULT_READER_SLOT
        self.deck: Deck | None = None
        self.last_protocol = ""

    def attach_robot(self, liquid_handler: Any, deck: Deck) -> None:
        """Read on ``deck`` of ``liquid_handler`` (a Flex, real or twin); the same one-line refusals as the real
        driver for a reader slot that holds labware or a plate the reader cannot take."""
        if getattr(liquid_handler, "robot_type", None) != FLEX:
            raise InstrumentError(f"{self.name}: the Absorbance Plate Reader is a module of the Opentrons Flex, and "
                                  f"{getattr(liquid_handler, 'name', 'the liquid handler')} is not one",
                                  hint="use simulated_flex (opentrons_flex) as the liquid handler")
        problem = reader_deck_problem(deck, self.reader_slot)
        if problem:
            raise InstrumentError(f"{self.name}: {problem}", hint="fix the deck or reader_slot in the campaign file")
        self.deck = deck

    def info(self) -> dict[str, Any]:
        return {**super().info(), "model": f"simulated Opentrons Flex Absorbance Plate Reader ({READER_MODULE})"}

    def read_wells(self, wells: Sequence[str]) -> list[Spectrum]:
        """The read protocol of the wells' plate through ``opentrons.simulate``, then the model's reading of each
        well (``SimulatedPlateReader``), in the order given. A ``blank_well`` is subtracted as the real driver
        does: the model's absorbance is already relative to the solvent, so its blank reads 0 at every wavelength."""
        plate, _ = plate_wells(self.name, wells)
        self.last_protocol = render_read_protocol(self.deck or DECKS[FLEX], plate, self.wavelengths_nm,
                                                  self.reader_slot, api_text(MIN_READER_API))
        if self.check_protocols:
            simulate_protocol(self.last_protocol, file_name=read_file_name(plate))
        spectra = super().read_wells(wells)
        extra: dict[str, Any] = {"reader_slot": self.reader_slot}
        blank = getattr(self.config, "blank_well", None)
        if blank:
            extra.update(blank_well=f"P{plate}-{blank}", blank_subtracted_au=[0.0] * len(self.wavelengths_nm))
        return [replace(s, meta={**s.meta, **extra}) for s in spectra]
