"""Time of one batch proposal of q = 8, 24 and 96 experiments after n measured ones.

The planner proposes a batch on Hartmann6 (6 continuous inputs) after ``n`` Sobol-placed
observations, as ``Campaign.ask`` would (same planner, same settings as a campaign's
defaults). ``--space mixed`` times a harder space instead: two categoricals (4 x 5 = 20
combinations), a discrete, a log-scale and an integer input, a mixture equality and a
nonlinear inequality. Prints one line per q: seconds in all, seconds spent in the batch
optimisation (the rest is the model fit and acquisition set-up), whether every proposal
is feasible, and how many are distinct.

    .venv/bin/python bench/batch_latency.py [--n 96] [--q 8 24 96] [--space continuous|mixed]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.planning.constraints import parse_constraint  # noqa: E402
from orchestrator.planning.planner import Planner  # noqa: E402
from orchestrator.planning.space import SearchSpace  # noqa: E402
from orchestrator.spec.parameters import Parameter  # noqa: E402
from simulators.benchmarks.synthetic import hartmann6_value  # noqa: E402


def continuous_space() -> tuple[SearchSpace, callable]:
    params = [Parameter(name=f"x{i}", type="continuous", bounds=(0.0, 1.0)) for i in range(6)]
    return SearchSpace(params), lambda p: hartmann6_value(np.array([p[f"x{i}"] for i in range(6)]))


def mixed_space() -> tuple[SearchSpace, callable]:
    params = [
        Parameter(name="a", type="continuous", bounds=(0.0, 100.0)),
        Parameter(name="b", type="continuous", bounds=(0.0, 100.0)),
        Parameter(name="c", type="continuous", bounds=(0.0, 100.0)),
        Parameter(name="conc", type="continuous", bounds=(0.01, 10.0), scale="log"),
        Parameter(name="steps", type="integer", bounds=(1, 8)),
        Parameter(name="ratio", type="discrete", values=[0.5, 1, 2, 5]),
        Parameter(name="solvent", type="categorical", values=["water", "ethanol", "dmso", "thf"]),
        Parameter(name="catalyst", type="categorical", values=["pd", "ni", "cu", "fe", "co"]),
        Parameter(name="temperature", type="fixed", value=25),
    ]
    constraints = [parse_constraint(t) for t in ("a + b + c == 100", "conc * ratio <= 20")]
    solvents = {"water": 0.0, "ethanol": 0.3, "dmso": -0.2, "thf": 0.1}
    catalysts = {"pd": 0.4, "ni": 0.0, "cu": -0.1, "fe": 0.2, "co": 0.1}

    def f(p):
        x = np.array([p["a"] / 100, p["b"] / 100, np.log10(p["conc"]) / 3 + 2 / 3, p["steps"] / 8, p["ratio"] / 5,
                      0.5])
        return hartmann6_value(x) - solvents[p["solvent"]] - catalysts[p["catalyst"]]

    return SearchSpace(params, constraints), f


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=96, help="observations before the batch")
    parser.add_argument("--q", type=int, nargs="+", default=[8, 24, 96], help="batch sizes to time")
    parser.add_argument("--space", choices=["continuous", "mixed"], default="continuous")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    space, f = continuous_space() if args.space == "continuous" else mixed_space()
    planner = Planner(space, "y", False, args.seed, initial_experiments=args.n)
    design = planner.initial_design(0, args.n)
    observations = [(s.params, {"y": float(f(s.params))}) for s in design]
    planner.suggest(observations, [], 1, n_proposed=args.n)  # imports and first-call costs out of the timings
    optimiser_seconds = []
    optimize = planner.optimizer.batch

    def timed_optimize(acqf, q, *args):
        start = time.perf_counter()
        try:
            return optimize(acqf, q, *args)
        finally:
            optimiser_seconds.append(time.perf_counter() - start)

    planner.optimizer.batch = timed_optimize  # to split the batch time into model fit and batch optimisation
    print(f"space={args.space} n={args.n} seed={args.seed}")
    for q in args.q:
        start = time.perf_counter()
        batch = planner.suggest(observations, [], q, n_proposed=args.n)
        seconds = time.perf_counter() - start
        feasible = all(space.is_feasible(s.params) for s in batch)
        distinct = len({tuple(sorted((k, str(v)) for k, v in s.params.items())) for s in batch})
        print(f"q={q:3d}  {seconds:7.2f} s  (of which batch optimisation {optimiser_seconds[-1]:6.2f} s)  "
              f"feasible={feasible}  distinct={distinct}/{q}", flush=True)


if __name__ == "__main__":
    main()
