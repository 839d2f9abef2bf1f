"""A plate-reader device for tests, under PyLabRobot's real front end: the chatterbox that answers with physics.

PyLabRobot's own ``PlateReaderChatterboxBackend`` answers every read with a grid of zeros, so a campaign
read through it would learn nothing. ``PhysicsPlateReaderBackend`` subclasses it (setup, stop and the
drawer are the chatterbox's own, and so is the masking of wells not asked for) and answers
``read_absorbance`` as a reader would: each well's absorbance at the wavelength, from the colour-mixing
model for what is in the well, plus the plate's own background (which a blank well cancels), capped at
the reader's photometric ceiling.

What is in each well comes from a ``Bench`` registered under the backend's ``device_id`` (a campaign's
``backend_settings: {device_id: NAME}``): filled by hand (``Bench.fill``), or read from what the loopback
Opentrons robot (tests/opentrons_robot_server.py) actually played (``robot_contents``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from pylabrobot.plate_reading import PlateReaderChatterboxBackend

#: absorbance [AU] of the plate and water in every well: a blank well reads this
PLATE_BACKGROUND_AU = 0.045
#: the most a reader reports [AU] (instruments.pylabrobot_reader.plate_reader.MAX_ABSORBANCE)
READER_CEILING_AU = 4.0
ROWS = "ABCDEFGHIJKLMNOP"
#: the backend's name in a campaign file
BACKEND = "tests.pylabrobot_backend:PhysicsPlateReaderBackend"


@dataclass
class Bench:
    """The wells a test reader reads: ``contents()`` maps plate well (``"A1"``) -> reagent -> volume [uL].

    ``model`` gives a well's absorbance spectrum (``absorbance(volumes_ul, total_ul)`` on its
    ``wavelengths_nm``); ``reads`` lists (plate name, wavelength [nm]) of every read the reader made.
    """

    model: Any
    contents: Callable[[], Mapping[str, Mapping[str, float]]]
    reads: list[tuple[str, int]] = field(default_factory=list)

    def absorbance(self, well: str, wavelength_nm: float) -> float:
        """What the reader reports for ``well`` at ``wavelength_nm`` [AU]."""
        volumes = dict(self.contents().get(well, {}))
        spectrum = self.model.absorbance(volumes, sum(volumes.values()))
        value = PLATE_BACKGROUND_AU + float(np.interp(wavelength_nm, self.model.wavelengths_nm, spectrum))
        return min(value, READER_CEILING_AU)


#: device_id -> its bench; a test registers one before the reader is built
BENCHES: dict[str, Bench] = {}


class PhysicsPlateReaderBackend(PlateReaderChatterboxBackend):
    """PyLabRobot's chatterbox, reading absorbance from the bench registered as ``device_id``."""

    def __init__(self, device_id: str) -> None:
        super().__init__()
        self.device_id = device_id

    async def setup(self) -> None:
        if self.device_id not in BENCHES:
            raise ConnectionError(f"no reader {self.device_id!r} answers")
        await super().setup()

    async def read_absorbance(self, plate: Any, wells: list, wavelength: int) -> list[dict]:
        bench = BENCHES[self.device_id]
        bench.reads.append((plate.name, wavelength))
        grid = [[bench.absorbance(f"{ROWS[row]}{column + 1}", wavelength) for column in range(plate.num_items_x)]
                for row in range(plate.num_items_y)]
        return [{"wavelength": wavelength, "time": time.time(), "temperature": 25.0,
                 "data": self._mask_result(grid, wells, plate)}]


def robot_contents(server: Any, reservoir: Mapping[str, str], plate_load_name: str) -> dict[str, dict[str, float]]:
    """Plate well -> reagent -> volume [uL] that the loopback robot ``server`` dispensed in its succeeded runs.

    ``reservoir`` maps reservoir well -> reagent. Each pipette carries what it last aspirated from the
    reservoir; a dispense into the plate adds that reagent (mixing in the well moves nothing between wells).
    """
    contents: dict[str, dict[str, float]] = {}
    for run in list(server.robot.runs.values()):
        if run["status"] != "succeeded" or not run["protocolId"]:
            continue
        analysis = server.robot.analyses[run["protocolId"]][-1]
        labware = {c["result"]["labwareId"]: c["params"]["loadName"]
                   for c in analysis["commands"] if c["commandType"] == "loadLabware"}
        carrying: dict[str, str | None] = {}
        for command in run["commands"]:
            params = command.get("params", {})
            on_plate = labware.get(params.get("labwareId")) == plate_load_name
            if command["commandType"] == "aspirate":
                carrying[params["pipetteId"]] = None if on_plate else reservoir.get(params["wellName"])
            elif command["commandType"] == "dispense" and on_plate:
                reagent = carrying.get(params["pipetteId"])
                if reagent is not None:
                    well = contents.setdefault(params["wellName"], {})
                    well[reagent] = well.get(reagent, 0.0) + float(params["volume"])
    return contents
