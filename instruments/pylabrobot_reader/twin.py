"""Twin of the PyLabRobot plate reader: the generic simulated plate reader, loaded by hand like the real one.

A dry run follows the same steps as a real run (the loop asks for each hand-off of the plate), and the
twin confirms each one by itself: nobody has to move a simulated plate, and dry runs run unattended.
"""

from __future__ import annotations

from instruments.plate_readers.twin import SimulatedPlateReader
from instruments.pylabrobot_reader.handoff import HandedPlate


class SimulatedPyLabRobotReader(HandedPlate, SimulatedPlateReader):
    """``SimulatedPlateReader`` that declares the hand-off of the real ``PyLabRobotPlateReader``."""

    handoff_confirms_itself = True

    @property
    def reader_words(self) -> str:
        settings = getattr(self.config, "pylabrobot", None)
        return f"{self.name} (simulating {settings.backend})" if settings is not None else self.name
