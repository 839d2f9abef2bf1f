"""A cuvette station on the bench of the tests: the loopback robot runs the station's protocols, and a fake
spectrometer's beam sees what those runs left in the cuvette.

``CuvetteBeam`` replays the commands each robot run executed (the protocol engine's own ``aspirate``,
``dispense`` and ``dispenseInPlace``, from the loopback server's runs), independently of the station's code,
so what the spectrometer reads follows from what the robot really did. A plate well holds a liquid of known
transmission (``samples``); the rinse solvent transmits everything; a mixture in the cuvette has the
volume-weighted absorbance of its parts (Beer-Lambert in one light path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from instruments.opentrons.deck import Deck
from instruments.opentrons.deck_layout import build_deck
from instruments.plate_plan import BatchItem, PlatePlan, compile_plan
from orchestrator.spec.loader import load_spec
from tests.fake_seabreeze import FakeDevice

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN = REPO / "campaigns" / "colour_match_cuvette.yaml"
SOLVENT = "solvent"


def cuvette_spec(host: str = "127.0.0.1") -> Any:
    """The shipped cuvette campaign, its robot at ``host``."""
    spec, _ = load_spec(CAMPAIGN)
    handler = spec.instruments.liquid_handler.model_copy(update={"host": host})
    return spec.model_copy(update={"instruments": spec.instruments.model_copy(update={"liquid_handler": handler})})


def cuvette_deck(spec: Any) -> Deck:
    """The campaign's Flex deck with its cuvette holder's definition read from ``campaigns/labware``."""
    return build_deck(spec.instruments.liquid_handler, "Flex", CAMPAIGN.parent)


def plan_for(labels: Sequence[str], spec: Any, deck: Deck, iteration: int = 1) -> PlatePlan:
    """A plan whose wells are exactly ``labels`` (all of one plate, ``P1-B2``...), each 60 uL of red made up with
    water, with the campaign's cuvette station setting aside its tips and solvent after the plate's."""
    batch = [BatchItem(i + 1, {"red": 60.0, "yellow": 0.0, "blue": 0.0}) for i in range(len(labels))]
    plan = compile_plan(spec.instruments.liquid_handler, deck, iteration, batch, 0,
                        cuvette=spec.instruments.spectrometer.cuvette)
    plate = int(labels[0].split("-")[0][1:])
    wells = [w.model_copy(update={"well": label.split("-", 1)[1]}) for w, label in zip(plan.wells, labels)]
    return plan.model_copy(update={"plate": plate, "wells": wells})


class CuvetteBeam(FakeDevice):
    """A fake spectrometer whose ``transmission`` is that of what the loopback robot's runs left in the cuvette.

    ``samples``: plate well label (``P1-B2``) -> its transmission (0-1, or above 1 for a too bright well);
    ``seen`` lists ``(shutter open, cuvette contents)`` at every scan; ``tips`` the ``(slot, well)`` of every tip
    picked up, in order.
    """

    def __init__(self, serial: str, robot: Any, cuvette_slot: str, **kwargs: Any) -> None:
        super().__init__(serial, **kwargs)
        self.robot, self.cuvette_slot = robot, cuvette_slot
        self.samples: dict[str, float] = {}
        self.seen: list[tuple[bool, dict[str, float]]] = []
        self.tips: list[tuple[str, str]] = []

    @property
    def transmission(self) -> float:  # type: ignore[override]
        contents = self.cuvette()
        self.seen.append((self.shutter_open, contents))
        total = sum(contents.values())
        if total <= 0:
            return 1.0
        absorbance = sum(ul / total * -np.log10(self.samples.get(part, 1.0)) for part, ul in contents.items())
        return float(10 ** -absorbance)

    @transmission.setter
    def transmission(self, value: float) -> None:  # FakeDevice sets 1.0: the beam follows the cuvette instead
        pass

    def cuvette(self) -> dict[str, float]:
        """What the robot's finished runs left in the cuvette: plate well label or ``SOLVENT`` -> uL."""
        cuvette: dict[str, float] = {}
        self.tips = []
        for run in list(self.robot.runs.values()):
            if run["status"] != "succeeded":
                continue
            labware = {item["id"]: (item["location"].get("slotName"), item["loadName"])
                       for item in self.robot.analyses[run["protocolId"]][-1]["labware"]}
            self._replay(run["commands"], labware, cuvette)
        return {part: ul for part, ul in cuvette.items() if ul > 1e-9}

    def _replay(self, commands: list[dict[str, Any]], labware: dict[str, tuple[str, str]],
                cuvette: dict[str, float]) -> None:
        held: dict[str, dict[str, float]] = {}  # pipette id -> what its tip holds
        for command in commands:
            kind, params = command["commandType"], command.get("params", {})
            tip = held.setdefault(params.get("pipetteId", ""), {})
            slot, load_name = labware.get(params.get("labwareId", ""), ("", ""))
            if kind == "pickUpTip":
                self.tips.append((slot, params["wellName"]))
            elif kind == "aspirate":
                taken = self._take(cuvette, params["volume"]) if slot == self.cuvette_slot else \
                    {SOLVENT if "reservoir" in load_name else f"P1-{params['wellName']}": params["volume"]}
                for part, ul in taken.items():
                    tip[part] = tip.get(part, 0.0) + ul
            elif kind == "dispense" and slot == self.cuvette_slot:
                for part, ul in self._take(tip, params["volume"]).items():
                    cuvette[part] = cuvette.get(part, 0.0) + ul
            elif kind in ("dispense", "dispenseInPlace"):
                self._take(tip, params["volume"])

    @staticmethod
    def _take(contents: dict[str, float], volume: float) -> dict[str, float]:
        total = sum(contents.values())
        share = min(1.0, volume / total) if total > 0 else 0.0
        taken = {part: ul * share for part, ul in contents.items()}
        for part, ul in taken.items():
            contents[part] -= ul
        return taken
