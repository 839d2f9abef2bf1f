"""Benchmark problems with known optima, for the planner suite (``bench/planner_suite.py``).

``PROBLEMS`` maps a name to its ``BenchmarkProblem``. ``mit_catalyst`` and
``mit_catalyst_plant`` are the two scales of one reaction, for transfer learning.
"""

from simulators.benchmarks.base import BenchmarkProblem, LinearConstraintDef, ObjectiveDef, ParameterDef, hypervolume_2d
from simulators.benchmarks.colour import COLOUR_MATCH
from simulators.benchmarks.kinetics import CONSECUTIVE_YIELD, DECOMPOSITION_RIDGE, PARALLEL_SELECTIVITY
from simulators.benchmarks.mit_kinetics import MIT_LAB, MIT_PLANT
from simulators.benchmarks.snar import SNAR
from simulators.benchmarks.synthetic import ACKLEY10, BRANIN, HARTMANN6, MIXED

PROBLEMS: dict[str, BenchmarkProblem] = {
    p.name: p for p in (BRANIN, HARTMANN6, ACKLEY10, MIXED, SNAR, MIT_LAB, MIT_PLANT, COLOUR_MATCH,
                        CONSECUTIVE_YIELD, PARALLEL_SELECTIVITY, DECOMPOSITION_RIDGE)
}

#: (lab-scale problem, larger-scale problem) pairs over the same inputs
TWO_SCALE_PAIRS: dict[str, tuple[str, str]] = {"mit_catalyst": ("mit_catalyst", "mit_catalyst_plant")}

__all__ = ["BenchmarkProblem", "LinearConstraintDef", "ObjectiveDef", "ParameterDef", "PROBLEMS", "TWO_SCALE_PAIRS", "hypervolume_2d"]
