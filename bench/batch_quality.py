"""Quality and time of one large batch (a 96-well plate by default) after n observations, ours against Ax.

For each seed: the first ``n`` points of our campaign's Sobol design of a problem, with their noise-free
values, then one batch of ``q`` from the same observations by each method:

- ``believer``: our planner as a campaign gets it (the kriging believer for q > 8);
- ``penalized``: our planner with local penalisation instead (its choice for acquisitions the believer does
  not serve);
- ``greedy``: our planner's sequential greedy qLogEI at every q (what a batch of up to 8 gets; minutes at 96);
- ``ax``: Ax 1.3.1, ``q`` trials asked at once (``bench/peers/ax_peer.py``).

Printed per method, means over the seeds: regret of the best point of the batch, mean regret of its points,
how many of them beat the best observation, and the seconds the batch took; with ratios to Ax.

    python3 -m uv run --frozen --group bench python bench/batch_quality.py [--problems hartmann6 decomposition_ridge]
        [--seeds 10] [--n 96] [--q 96] [--methods believer penalized greedy ax]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

from bench.planner_suite import OurPlanner, told_design  # noqa: E402
from orchestrator.planning import believer, optimizer  # noqa: E402
from simulators.benchmarks import PROBLEMS  # noqa: E402

METHODS = ("believer", "penalized", "greedy", "ax")


def our_batch(ours: OurPlanner, problem, observed, q: int, seed: int, method: str) -> list[dict]:
    """Our planner's batch of ``q`` after ``observed`` (the campaign's own Sobol points), by ``method``."""
    campaign = ours.campaign(problem, len(observed) + q, q, seed, n_initial=len(observed))
    told_design(campaign, problem, observed)
    # the bench switches the optimiser's large-batch route by its module attributes, as nothing else does
    large, believe = optimizer.LARGE_BATCH, optimizer.believer_batch
    if method == "greedy":
        optimizer.LARGE_BATCH = q
    if method == "penalized":
        optimizer.believer_batch = lambda *args, **kwargs: None
    try:
        return [problem.checked(p.params) for p in campaign.ask(q)]
    finally:
        optimizer.LARGE_BATCH, optimizer.believer_batch = large, believe


def ax_batch(problem, observed, q: int, seed: int) -> list[dict]:
    # Ax loads only when it is one of the methods
    from bench.peers.ax_peer import _client, _next

    client = _client(problem, observed, seed)
    return [problem.checked(params) for params in _next(client, q).values()]


def scored(problem, observed, batch) -> dict[str, float]:
    """Best-of-batch regret, mean-of-batch regret and the count of batch points better than the best observed."""
    objective = problem.objectives[0]
    sign = 1.0 if objective.direction == "minimize" else -1.0  # regret grows with sign * value
    values = [problem.function(params)[objective.name] for params in batch]
    incumbent = min(sign * v[objective.name] for _, v in observed)
    regrets = [max(problem.regret(v), 0.0) for v in values]
    return {"best": min(regrets), "mean": statistics.fmean(regrets),
            "better": float(sum(sign * v < incumbent for v in values))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=["hartmann6", "decomposition_ridge"], choices=sorted(PROBLEMS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=96, help="observations before the batch")
    parser.add_argument("--q", type=int, default=96, help="batch size")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args()
    print(f"one batch of q={args.q} after n={args.n} Sobol observations; seeds {args.first_seed}.."
          f"{args.first_seed + args.seeds - 1}; methods {', '.join(args.methods)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ours = OurPlanner(Path(tmp))
        for name in args.problems:
            problem = PROBLEMS[name]
            table: dict[str, list[dict[str, float]]] = {m: [] for m in args.methods}
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                observed = ours.design(problem, args.n, seed)
                line = []
                for method in args.methods:
                    started = time.perf_counter()
                    batch = (ax_batch(problem, observed, args.q, seed) if method == "ax"
                             else our_batch(ours, problem, observed, args.q, seed, method))
                    row = {**scored(problem, observed, batch), "seconds": time.perf_counter() - started}
                    table[method].append(row)
                    line.append(f"{method} best {row['best']:.3g} mean {row['mean']:.3g} better {row['better']:.0f} "
                                f"{row['seconds']:.1f}s")
                print(f"  {name} seed {seed}: " + "; ".join(line), flush=True)
            _print_table(name, table)


def _print_table(name: str, table: dict[str, list[dict[str, float]]]) -> None:
    means = {m: {k: statistics.fmean(r[k] for r in rows) for k in ("best", "mean", "better", "seconds")}
             for m, rows in table.items() if rows}
    print(f"\n{name}: means over {len(next(iter(table.values())))} seeds (regret: lower is better)")
    print(f"{'method':<11}{'best regret':>12}{'mean regret':>12}{'better':>8}{'seconds':>9}"
          f"{'best/ax':>9}{'mean/ax':>9}{'time/ax':>9}")
    ax = means.get("ax")
    for method, m in means.items():
        ratios = "".join(f"{m[k] / ax[k]:>9.3g}" if ax and ax[k] else f"{'-':>9}" for k in ("best", "mean", "seconds"))
        print(f"{method:<11}{m['best']:>12.4g}{m['mean']:>12.4g}{m['better']:>8.1f}{m['seconds']:>9.2f}{ratios}")
    print(flush=True)


if __name__ == "__main__":
    main()
