"""Numpy models of the lab that back the dry run and the benchmark problems.

Imports neither prefect nor opentrons (nor anything of ``orchestrator`` or ``instruments``).
"""

from simulators.colour_mixing import ColourMixingModel, Dye
from simulators.registry import SIMULATORS, build_simulator

__all__ = ["ColourMixingModel", "Dye", "SIMULATORS", "build_simulator"]
