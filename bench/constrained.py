"""Our planner under constraints on what it measures: two acquisition settings side by side.

Two problems, each through the real ``Campaign`` ask/tell on a temporary SQLite store:

- ``branin_g``: Branin with an outcome constraint ``g <= 50``, ``g = (x1 - 2.5)^2 + (x2 - 7.5)^2``
  measured with ``y`` (Gardner et al., ICML 2014); only the minimum at (pi, 2.275) is feasible.
- ``hartmann6_fail``: Hartmann6 where every experiment with ``x5 > 0.5`` fails for a chemical
  reason (``Campaign.fail``); the minimum (x5 = 0.31) is feasible. Half of the space fails,
  so the feasibility model is on from the first Sobol design.

Score: simple regret of the best feasible value measured (inf when none was). Each run starts
from the same Sobol design (our campaign's first proposals, measured once); ``--peers ax`` adds
Ax 1.3.1 from that design (the outcome constraint in its optimization config, a failed
experiment marked as a failed trial). Printed: the median regret of each method and, paired by
seed against the first ``planner.acquisition``, the geometric mean of the per-seed ratios, the
seeds better / worse and the sign test's p-value.

    uv run python bench/constrained.py --seeds 20            # about 20 min on 2 cores
    uv run --group bench python bench/constrained.py --seeds 10 --acquisitions qLogEI --peers ax
                                                             # 45 min a problem here, other benchmarks beside it
"""

from __future__ import annotations

import argparse
import dataclasses
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

from bench.peers.common import load_peers  # noqa: E402
from bench.planner_suite import paired_signs  # noqa: E402
from orchestrator import Campaign  # noqa: E402
from orchestrator.planning.acquisition_registry import ACQUISITIONS  # noqa: E402
from simulators.benchmarks import BenchmarkProblem  # noqa: E402
from simulators.benchmarks.synthetic import BRANIN, HARTMANN6, branin_value, hartmann6_value  # noqa: E402

H6_NAMES = [p.name for p in HARTMANN6.parameters]


def _branin_g(p: dict[str, Any]) -> tuple[dict[str, float] | None, bool]:
    g = (p["x1"] - 2.5) ** 2 + (p["x2"] - 7.5) ** 2
    return {"y": branin_value(p["x1"], p["x2"]), "g": g}, g <= 50.0


def _hartmann6_fail(p: dict[str, Any]) -> tuple[dict[str, float] | None, bool]:
    if p["x5"] > 0.5:
        return None, False
    return {"y": hartmann6_value(np.array([p[n] for n in H6_NAMES]))}, True


@dataclasses.dataclass(frozen=True)
class ConstrainedProblem:
    """A benchmark space (its one objective ``y``, minimised) measured under constraints."""

    space: BenchmarkProblem
    outcome_constraints: tuple[str, ...]  # "outcome op bound", as the campaign file writes them
    evaluate: Callable[[dict[str, Any]], tuple[dict[str, float] | None, bool]]  # values (None: failed), feasible


PROBLEMS: dict[str, ConstrainedProblem] = {
    "branin_g": ConstrainedProblem(BRANIN, ("g <= 50",), _branin_g),
    "hartmann6_fail": ConstrainedProblem(HARTMANN6, (), _hartmann6_fail),
}

History = list[tuple[dict[str, Any], "dict[str, float] | None", bool]]  # params, values (None: failed), feasible


def run_ours(problem: ConstrainedProblem, acquisition: str, seed: int, budget: int, batch: int, n_initial: int,
             workdir: Path) -> History:
    """Every experiment of one campaign run through the real ``Campaign`` ask/tell, in order."""
    text = problem.space.to_campaign_yaml(budget=budget, batch_size=batch, seed=seed, initial_experiments=n_initial,
                                          planner={"acquisition": acquisition})
    if problem.outcome_constraints:
        text += f"outcome_constraints: {list(problem.outcome_constraints)}\n"
    campaign = Campaign.from_text(text, store=f"sqlite:///{workdir / f'{problem.space.name}-{acquisition}-{seed}.db'}")
    history: History = []
    while len(history) < budget:
        for p in campaign.ask(n_initial if not history else min(batch, budget - len(history))):
            values, feasible = problem.evaluate(p.params)
            if values is None:
                campaign.fail(p.id, reason="nothing formed", kind="chemistry")
            else:
                campaign.tell(p.id, values)
            history.append((p.params, values, feasible))
    return history


def run_peer(peer, problem: ConstrainedProblem, initial: History, seed: int, budget: int, batch: int) -> History:
    """``peer`` continued from ``initial`` to ``budget`` experiments."""
    feasible: list[bool] = []  # in the order the peer evaluated its points

    def evaluate(params: dict[str, Any]) -> dict[str, float] | None:
        values, ok = problem.evaluate(params)
        feasible.append(ok)
        return values

    done = peer.run(problem.space, [(p, v) for p, v, _ in initial], budget, batch, seed, evaluate)
    return list(initial) + [(p, v, ok) for (p, v), ok in zip(done[len(initial):], feasible, strict=True)]


def regret(problem: ConstrainedProblem, history: History) -> float:
    """Regret of the best feasible ``y`` in ``history`` (inf when none was feasible)."""
    best = min((v["y"] for _, v, ok in history if ok), default=math.inf)
    return best - problem.space.optimum


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--initial", type=int, default=6, help="Sobol experiments before the first model")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--acquisitions", nargs="+", default=list(ACQUISITIONS), choices=ACQUISITIONS,
                        metavar="ACQ", help=f"planner.acquisition settings to run (from {ACQUISITIONS}); "
                                            "the first is the one every other method is paired against")
    parser.add_argument("--peers", nargs="*", default=[], choices=["ax"],
                        help="peers to run from the same initial design (the bench dependency group)")
    args = parser.parse_args(argv)
    acquisitions = list(dict.fromkeys(args.acquisitions))
    loaded, skipped = load_peers(args.peers)
    for line in skipped:
        print(line, flush=True)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.problems:
            problem = PROBLEMS[name]
            peers = [type(peer)(outcome_constraints=problem.outcome_constraints) for peer in loaded]
            regrets: dict[str, list[float]] = {m: [] for m in acquisitions + [peer.name for peer in peers]}
            for seed in seeds:
                initial: History = []
                for acquisition in acquisitions:
                    history = run_ours(problem, acquisition, seed, args.budget, args.batch, args.initial, Path(tmp))
                    initial = initial or history[:args.initial]
                    regrets[acquisition].append(regret(problem, history))
                for peer in peers:
                    history = run_peer(peer, problem, initial, seed, args.budget, args.batch)
                    regrets[peer.name].append(regret(problem, history))
                print(f"  {name} seed {seed}: " + ", ".join(f"{m} {r[-1]:.4g}" for m, r in regrets.items()), flush=True)
            print(f"{name}: median regret " + ", ".join(f"{m} {statistics.median(r):.4g}" for m, r in regrets.items()))
            ours = regrets[acquisitions[0]]
            for other, theirs in list(regrets.items())[1:]:
                ratios = [math.log(max(x, 1e-9) / max(y, 1e-9)) for x, y in zip(ours, theirs) if math.isfinite(x + y)]
                better, worse, p = paired_signs(ours, theirs, higher_is_better=False)
                print(f"  {acquisitions[0]} / {other}: geometric mean of per-seed ratios "
                      f"{math.exp(statistics.mean(ratios)) if ratios else float('nan'):.3g}, "
                      f"better on {better}, worse on {worse} of {len(ours)} seeds (sign test p = {p:.2g})")


if __name__ == "__main__":
    main()
