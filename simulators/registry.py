"""Which simulator models exist, by the name a campaign's ``simulation.model`` uses."""

from __future__ import annotations

from typing import Any, Mapping

from simulators.colour_mixing import ColourMixingModel
from simulators.fluorescence import FluorescenceModel
from simulators.model import SimulatorFactory, SimulatorModel
from simulators.silver_nanoparticles import SilverNanoparticleModel

#: model name -> factory(settings, noise)
SIMULATORS: dict[str, SimulatorFactory] = {
    "colour_mixing": ColourMixingModel.from_settings,
    "fluorescence": FluorescenceModel.from_settings,
    "silver_nanoparticles": SilverNanoparticleModel.from_settings,
}


def build_simulator(name: str, settings: Mapping[str, Any], noise: Mapping[str, Any]) -> SimulatorModel:
    """Build simulator ``name``; raises ``KeyError`` naming the known models."""
    try:
        factory = SIMULATORS[name]
    except KeyError:
        raise KeyError(f"unknown simulator {name!r}; known: {', '.join(sorted(SIMULATORS))}") from None
    return factory(settings, noise)
