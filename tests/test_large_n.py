"""Many observations: the planner switches to subset-fitted hyperparameters and stays fast."""

from __future__ import annotations

import time

import numpy as np
import pytest

from orchestrator.planning import surrogates
from orchestrator.planning.constraints import parse_linear_constraint
from orchestrator.planning.planner import Planner
from orchestrator.planning.space import SearchSpace
from orchestrator.spec.parameters import Parameter

DIM = 4
CONSTRAINT = parse_linear_constraint("x0 + x1 <= 1.2")


def observations(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.random((2 * n + 10, DIM))
    X = X[X[:, 0] + X[:, 1] <= 1.2]
    y = np.sin(3 * X).sum(axis=1) + 0.05 * rng.standard_normal(len(X))
    return [({f"x{i}": float(r[i]) for i in range(DIM)}, {"y": float(v)}) for r, v in zip(X[:n], y[:n])]


def planner(**options) -> Planner:
    space = SearchSpace([Parameter(name=f"x{i}", type="continuous", bounds=(0, 1)) for i in range(DIM)], [CONSTRAINT])
    return Planner(space, "y", True, seed=0, initial_experiments=10, **options)


def test_above_the_threshold_hyperparameters_come_from_a_subset(monkeypatch):
    monkeypatch.setattr(surrogates, "EXACT_FIT_MAX", 30)
    monkeypatch.setattr(surrogates, "SUBSET_SIZE", 20)
    small = planner(num_restarts=2, raw_samples=32).suggest(observations(30), [], 1, n_proposed=30)[0]
    large = planner(num_restarts=2, raw_samples=32).suggest(observations(60), [], 1, n_proposed=60)[0]
    assert small.info["model"] == "SingleTaskGP"
    assert large.info["model"] == "SingleTaskGP (hyperparameters fitted on 20 of 60)"
    assert large.info["models"]["y"]["n_train"] == 60  # conditioned on every observation
    assert CONSTRAINT.is_satisfied(large.params)


def _timed(planner_: Planner, data) -> tuple[object, float, float]:
    """(suggestion, wall s, CPU s of this process) of one proposal after ``data``."""
    start, cpu = time.perf_counter(), time.process_time()
    (suggestion,) = planner_.suggest(data, [], 1, n_proposed=len(data))
    return suggestion, time.perf_counter() - start, time.process_time() - cpu


@pytest.mark.slow  # two proposals at n = 2000
def test_proposals_at_2000_observations_are_feasible_and_fast():
    """Both the unconstrained and the linearly constrained space, in CPU seconds (the machine is shared).

    The constraint sends the optimiser through its constrained refinement (SLSQP); the bound is a
    guard against a proposal that spins, not a benchmark (those are ``bench/large_n.py``'s).
    """
    free = SearchSpace([Parameter(name=f"x{i}", type="continuous", bounds=(0, 1)) for i in range(DIM)])
    Planner(free, "y", True, seed=0, initial_experiments=10).suggest(observations(20), [], 1, n_proposed=20)
    data = observations(2000)
    assert len(data) == 2000
    suggestion, wall, cpu = _timed(Planner(free, "y", True, seed=0, initial_experiments=10), data)
    constrained, c_wall, c_cpu = _timed(planner(), data)
    print(f"n=2000 proposal: unconstrained wall {wall:.1f} s, cpu {cpu:.1f} s; "
          f"constrained wall {c_wall:.1f} s, cpu {c_cpu:.1f} s")
    assert cpu <= 30.0 and c_cpu <= 30.0, (wall, cpu, c_wall, c_cpu)
    assert all(0.0 <= suggestion.params[f"x{i}"] <= 1.0 for i in range(DIM))
    assert suggestion.info["n_observations"] == constrained.info["n_observations"] == 2000
    assert "fitted on" in suggestion.info["model"] and "fitted on" in constrained.info["model"]
    assert CONSTRAINT.is_satisfied(constrained.params)
