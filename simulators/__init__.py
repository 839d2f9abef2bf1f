"""Numpy models of the lab that back the dry run and the benchmark problems.

Imports neither prefect nor opentrons (nor anything of ``orchestrator`` or ``instruments``).
"""

from simulators.colour_mixing import ColourMixingModel, Dye
from simulators.fluorescence import FluorescenceModel
from simulators.model import SimulatorModel
from simulators.registry import SIMULATORS, build_simulator
from simulators.silver_nanoparticles import SilverNanoparticleModel

__all__ = ["ColourMixingModel", "Dye", "FluorescenceModel", "SilverNanoparticleModel", "SimulatorModel", "SIMULATORS",
           "build_simulator"]
