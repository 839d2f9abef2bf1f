"""Our planner under constraints on what it measures: two acquisition settings side by side.

Two problems, each through the real ``Campaign`` ask/tell on a temporary SQLite store:

- ``branin_g``: Branin with an outcome constraint ``g <= 50``, ``g = (x1 - 2.5)^2 + (x2 - 7.5)^2``
  measured with ``y`` (Gardner et al., ICML 2014); only the minimum at (pi, 2.275) is feasible.
- ``hartmann6_fail``: Hartmann6 where every experiment with ``x5 > 0.5`` fails for a chemical
  reason (``Campaign.fail``); the minimum (x5 = 0.31) is feasible. Half of the space fails,
  so the feasibility model is on from the first Sobol design.

Score: simple regret of the best feasible value measured (inf when none was). Printed: the
median regret of each ``planner.acquisition`` and, paired by seed, the geometric mean of the
per-seed ratios, the seeds better / worse and the sign test's p-value.

    uv run python bench/constrained.py --seeds 20            # about 20 min on 2 cores
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

from bench.planner_suite import paired_signs  # noqa: E402
from orchestrator import Campaign  # noqa: E402
from orchestrator.acquisition import ACQUISITIONS  # noqa: E402
from simulators.benchmarks.synthetic import BRANIN, HARTMANN6, branin_value, hartmann6_value  # noqa: E402

H6_NAMES = [p.name for p in HARTMANN6.parameters]


def _branin_g(p: dict[str, Any]) -> tuple[dict[str, float] | None, bool]:
    g = (p["x1"] - 2.5) ** 2 + (p["x2"] - 7.5) ** 2
    return {"y": branin_value(p["x1"], p["x2"]), "g": g}, g <= 50.0


def _hartmann6_fail(p: dict[str, Any]) -> tuple[dict[str, float] | None, bool]:
    if p["x5"] > 0.5:
        return None, False
    return {"y": hartmann6_value(np.array([p[n] for n in H6_NAMES]))}, True


#: name -> (campaign parameters and outcome constraints as YAML, evaluate, feasible optimum)
PROBLEMS: dict[str, tuple[str, Callable, float]] = {
    "branin_g": (
        "parameters:\n"
        "  - {name: x1, type: continuous, bounds: [-5, 10]}\n"
        "  - {name: x2, type: continuous, bounds: [0, 15]}\n"
        'outcome_constraints: ["g <= 50"]\n',
        _branin_g, BRANIN.optimum,
    ),
    "hartmann6_fail": (
        "parameters:\n" + "".join(f"  - {{name: {n}, type: continuous, bounds: [0, 1]}}\n" for n in H6_NAMES),
        _hartmann6_fail, HARTMANN6.optimum,
    ),
}


def run(problem: str, acquisition: str, seed: int, budget: int, batch: int, n_initial: int, workdir: Path) -> float:
    """Regret of the best feasible ``y`` after ``budget`` experiments (inf when none was feasible)."""
    space, evaluate, optimum = PROBLEMS[problem]
    text = (f"name: {problem.replace('_', '-')}-{acquisition}-{seed}\nseed: {seed}\n"
            f"budget: {{experiments: {budget}, batch_size: {batch}}}\n{space}"
            "objectives:\n  - {name: y, direction: minimize}\n"
            f"planner: {{initial_experiments: {n_initial}, acquisition: {acquisition}}}\n")
    campaign = Campaign.from_text(text, store=f"sqlite:///{workdir / f'{problem}-{acquisition}-{seed}.db'}")
    best, done = math.inf, 0
    while done < budget:
        for p in campaign.ask(n_initial if done == 0 else min(batch, budget - done)):
            values, feasible = evaluate(p.params)
            if values is None:
                campaign.fail(p.id, reason="nothing formed", kind="chemistry")
            else:
                campaign.tell(p.id, values)
            if feasible:
                best = min(best, values["y"])
            done += 1
    return best - optimum


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--initial", type=int, default=6, help="Sobol experiments before the first model")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--acquisitions", nargs=2, default=list(ACQUISITIONS), choices=ACQUISITIONS,
                        metavar="ACQ", help=f"the two planner.acquisition settings to pair (from {ACQUISITIONS})")
    args = parser.parse_args(argv)
    first, second = args.acquisitions
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        for problem in args.problems:
            regrets: dict[str, list[float]] = {first: [], second: []}
            for seed in seeds:
                for acquisition in (first, second):
                    regrets[acquisition].append(run(problem, acquisition, seed, args.budget, args.batch,
                                                    args.initial, Path(tmp)))
                print(f"  {problem} seed {seed}: " + ", ".join(f"{a} {r[-1]:.4g}" for a, r in regrets.items()),
                      flush=True)
            a, b = regrets[first], regrets[second]
            ratios = [math.log(max(y, 1e-9) / max(x, 1e-9)) for x, y in zip(a, b) if math.isfinite(x + y)]
            better, worse, p = paired_signs(b, a, higher_is_better=False)
            print(f"{problem}: median regret {first} {statistics.median(a):.4g}, {second} {statistics.median(b):.4g}; "
                  f"{second} / {first}: geometric mean of per-seed ratios "
                  f"{math.exp(statistics.mean(ratios)) if ratios else float('nan'):.3g}, "
                  f"better on {better}, worse on {worse} of {len(a)} seeds (sign test p = {p:.2g})")


if __name__ == "__main__":
    main()
