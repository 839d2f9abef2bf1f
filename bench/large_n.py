"""Proposal time at many observations: the planner at n = 500/1000/2000 against an exact GP fit at 500.

    .venv/bin/python bench/large_n.py            # n = 500 1000 2000
    .venv/bin/python bench/large_n.py --n 2000   # one size

Data: a smooth 6-D function plus noise (sd 0.05), uniform random inputs, seed 0. Each size
is timed on the unconstrained space and under ``CONSTRAINT``. Each line is one ``Planner.suggest`` call (n=1, default restarts and raw samples) after a
warm-up proposal that pays the one-off imports, in wall and CPU seconds: on a shared
machine the CPU seconds say what the proposal costs when the machine is idle. Above
``EXACT_FIT_MAX`` observations the planner fits hyperparameters on ``SUBSET_SIZE`` of
them and conditions an exact GP on all; above 500 it also uses LOVE predictive
variances (``orchestrator.planning.surrogates``, ``orchestrator.planning.planner``); "exact fit" times the
full marginal-likelihood fit alone.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from orchestrator.planning.constraints import parse_linear_constraint
from orchestrator.planning.planner import Planner
from orchestrator.planning.space import SearchSpace
from orchestrator.spec.parameters import Parameter
from orchestrator.planning.surrogates import EXACT_FIT_MAX, SUBSET_SIZE, _fit_mll, _single_task

DIM = 6


def observations(n: int, seed: int = 0) -> list[tuple[dict, dict]]:
    rng = np.random.default_rng(seed)
    X = rng.random((n, DIM))
    y = np.sin(3 * X).sum(axis=1) + 0.05 * rng.standard_normal(n)
    return [({f"x{i}": float(r[i]) for i in range(DIM)}, {"y": float(v)}) for r, v in zip(X, y)]


#: the constrained rows: one linear inequality, which sends the optimiser through SLSQP
CONSTRAINT = "x0 + x1 <= 1.2"


def planner(constrained: bool = False) -> Planner:
    constraints = [parse_linear_constraint(CONSTRAINT)] if constrained else []
    space = SearchSpace([Parameter(name=f"x{i}", type="continuous", bounds=(0, 1)) for i in range(DIM)], constraints)
    return Planner(space, "y", True, seed=0, initial_experiments=10)


def time_proposal(n: int, constrained: bool = False) -> tuple[float, float, str]:
    """(wall s, CPU s of this process, model name) of one proposal at ``n`` observations."""
    data = observations(n)
    start, cpu = time.perf_counter(), time.process_time()
    suggestion = planner(constrained).suggest(data, [], 1, n_proposed=n)[0]
    return time.perf_counter() - start, time.process_time() - cpu, suggestion.info["model"]


def time_exact_fit(n: int) -> tuple[float, float]:
    """(wall s, CPU s) of the marginal-likelihood fit of an exact GP on ``n`` observations."""
    import torch

    data = observations(n)
    X = torch.tensor([[p[f"x{i}"] for i in range(DIM)] for p, _ in data], dtype=torch.float64)
    Y = torch.tensor([[v["y"]] for _, v in data], dtype=torch.float64)
    model = _single_task(X, Y, None, None)
    start, cpu = time.perf_counter(), time.process_time()
    _fit_mll(model)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[500, 1000, 2000])
    args = parser.parse_args()
    time_proposal(20)  # warm-up: imports and first-call compilation are paid once per process
    print(f"exact fit above {EXACT_FIT_MAX} observations is replaced by hyperparameters fitted on {SUBSET_SIZE}")
    print("wall: elapsed seconds; cpu: CPU seconds of this process (what the proposal costs on an idle machine)")
    print(f"{'n':>6}  {'space':<16}  {'wall s':>7}  {'cpu s':>7}  model")
    for n in args.n:
        for constrained in (False, True):
            wall, cpu, model = time_proposal(n, constrained)
            space = CONSTRAINT if constrained else "unconstrained"
            print(f"{n:>6}  {space:<16}  {wall:>7.1f}  {cpu:>7.1f}  {model}")
    wall, cpu = time_exact_fit(500)
    print(f"exact GP hyperparameter fit alone at n=500: wall {wall:.1f} s, cpu {cpu:.1f} s")


if __name__ == "__main__":
    main()
