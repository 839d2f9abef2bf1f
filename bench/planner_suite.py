"""Our planner against Ax, BayBE and random search, side by side, on the benchmark problems.

Every method gets the same problems, seeds, budget and batch size, and the SAME initial
design: the Sobol points our campaign proposes first, measured once and handed to each
peer as completed experiments (Ax: attached trials counted as its initialisation;
BayBE: measurements added before its first recommendation; random: kept, then uniform
points). Our planner runs through the real ``Campaign`` ask/tell on a temporary SQLite
store. Printed: median regret (hypervolume for the two-objective SnAr) per problem with
our ratio to each peer, proposal latency p50/p95 at n = 10, 100, 500 observations and
the time of one q = 8/24/96 batch, each with our ratio to Ax.

    uv sync --group bench                 # the peers (see bench/peers/requirements-bench.txt)
    uv run --group bench python bench/planner_suite.py --quick    # about 5 min on 2 cores
    uv run --group bench python bench/planner_suite.py --full     # 30 paired seeds

A peer that is not installed is skipped with one printed line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

from bench.peers.common import Peer, load_peers  # noqa: E402
from instruments.opentrons.deck import WELLS_PER_PLATE  # noqa: E402
from orchestrator.planning.acquisition_registry import ACQUISITIONS  # noqa: E402
from orchestrator.run.campaign import Campaign  # noqa: E402
from orchestrator.planning.surrogates import KERNELS  # noqa: E402
from simulators.benchmarks import PROBLEMS, BenchmarkProblem  # noqa: E402


@dataclass(frozen=True)
class Mode:
    """How much of the suite to run."""

    problems: tuple[str, ...]
    seeds: int
    budget: int  # total experiments per run, initial design included
    batch: int
    latency_n: tuple[int, ...]
    latency_repeats: dict[int, int]
    batch_q: tuple[int, ...]
    batch_n: int
    baybe_latency_max_n: int  # BayBE q=1 latency timed only up to this many observations
    baybe_batch_max_q: int  # BayBE batches timed only up to this q
    ax_batch_max_q: int  # Ax batches timed only up to this q (its plate of 96 takes minutes: bench/batch_quality.py)
    run_time_limit_s: float | None  # one method's run on one seed is abandoned after this long (None: no limit)


#: Quick mode (CI's bench step) keeps to two synthetic problems and one reaction-kinetics one: on
#: mit_catalyst and colour_match one seed of Ax or BayBE took 2.5-22 min on 2 cores, and on mixed 2-4 min
#: (measured), so they are left to --full or --problems. A run over the time limit is reported as such,
#: not scored.
QUICK = Mode(problems=("branin", "hartmann6", "decomposition_ridge"), seeds=2, budget=20, batch=4,
             latency_n=(10, 100, 500), latency_repeats={10: 3, 100: 3, 500: 1}, batch_q=(8, 24, 96), batch_n=96,
             baybe_latency_max_n=100, baybe_batch_max_q=24, ax_batch_max_q=24, run_time_limit_s=120.0)
FULL = Mode(problems=tuple(PROBLEMS), seeds=30, budget=40, batch=4,
            latency_n=(10, 100, 500), latency_repeats={10: 10, 100: 10, 500: 5}, batch_q=(8, 24, 96), batch_n=96,
            baybe_latency_max_n=500, baybe_batch_max_q=96, ax_batch_max_q=96, run_time_limit_s=None)


class RunTimeLimit(Exception):
    """One method's run went over ``Mode.run_time_limit_s``."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise ``RunTimeLimit`` in the main thread once ``seconds`` have passed (None: no limit).

    Uses SIGALRM, so the check lands between Python bytecodes: a single long native call
    (one big Cholesky) finishes first.
    """
    if seconds is None:
        yield
        return

    def expire(signum, frame):
        raise RunTimeLimit(f"over the {seconds:g} s limit of this mode")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def initial_size(problem: BenchmarkProblem, mode: Mode) -> int:
    """Size of the shared Sobol design: 2(d+1), at most a third of the budget, as our campaigns' default
    (``design.default_design_size``) but not rounded to whole batches: every method is told the shared design
    at once."""
    return min(2 * (len(problem.parameters) + 1), max(mode.budget // 3, mode.batch))


# our planner ------------------------------------------------------------------------------


class OurPlanner(Peer):
    """``orchestrator`` through ``Campaign.ask``/``tell`` on a temporary SQLite store."""

    name = "ours"

    def __init__(self, workdir: Path, planner: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.planner = planner or {}  # entries of the campaigns' planner section (kernel, acquisition)
        self._count = 0

    def campaign(self, problem: BenchmarkProblem, budget: int, batch: int, seed: int, n_initial: int | None) -> Campaign:
        """A campaign of ``problem`` on a new SQLite store; ``n_initial`` None: the campaign file's default design."""
        self._count += 1
        text = problem.to_campaign_yaml(budget=budget, batch_size=min(batch, budget), seed=seed,
                                        initial_experiments=n_initial, planner=self.planner)
        return Campaign.from_text(text, store=f"sqlite:///{self.workdir / f'c{self._count}.db'}")

    def initial_design(self, problem, n_initial, budget, batch, seed, evaluate):
        """The shared design: our campaign's first ``n_initial`` (Sobol) proposals, measured."""
        campaign = self.campaign(problem, budget, batch, seed, n_initial)
        proposals = campaign.ask(n_initial)
        history = []
        for p in proposals:
            params = problem.checked(p.params)
            values = evaluate(params)
            campaign.tell(p.id, values)
            history.append((params, values))
        return campaign, history

    def continue_run(self, campaign: Campaign, problem, history, budget, batch, evaluate):
        history = list(history)
        while len(history) < budget:
            for p in campaign.ask(min(batch, budget - len(history))):
                params = problem.checked(p.params)
                values = evaluate(params)
                campaign.tell(p.id, values)
                history.append((params, values))
        return history

    def time_proposal(self, problem, observed, q, seed):
        campaign = self.campaign(problem, len(observed) + q, q, seed, n_initial=len(observed))
        told_design(campaign, problem, observed)
        start = time.perf_counter()
        campaign.ask(q)
        return time.perf_counter() - start

    def design(self, problem: BenchmarkProblem, n: int, seed: int) -> list[tuple[dict, dict]]:
        """``n`` Sobol points of a campaign seeded ``seed``, with their noise-free values."""
        campaign = self.campaign(problem, n, min(n, WELLS_PER_PLATE), seed, n_initial=n)
        return told_design(campaign, problem, n)


def told_design(campaign: Campaign, problem: BenchmarkProblem, observed: int | Sequence[tuple[dict, dict]]
                ) -> list[tuple[dict, dict]]:
    """The campaign's first design points with their values, asked a plate (``WELLS_PER_PLATE``) at a time and
    each plate told before the next: ``ask`` refuses more than a plate at once, and more than
    ``orchestrator.run.campaign.MAX_PENDING`` proposals waiting for ``tell``.

    ``observed``: a number of points, told their noise-free values; or the (params, values) to tell, which must
    be this campaign's own design (the same seed).
    """
    given = None if isinstance(observed, int) else list(observed)
    n = observed if given is None else len(given)
    told: list[tuple[dict, dict]] = []
    while len(told) < n:
        for p in campaign.ask(min(WELLS_PER_PLATE, n - len(told))):
            params = problem.checked(p.params)
            if given is not None and params != given[len(told)][0]:
                raise RuntimeError("the campaign's design differs from the observed points; same seed needed")
            values = problem.evaluate(params) if given is None else given[len(told)][1]
            campaign.tell(p.id, values)
            told.append((params, values))
    return told


# scoring -----------------------------------------------------------------------------------


def score(problem: BenchmarkProblem, history: Sequence[tuple[dict, dict]]) -> float:
    """Simple regret of the best noise-free value found, or the hypervolume (multi-objective)."""
    clean = [problem.function(params) for params, _ in history]
    if problem.is_multi_objective:
        return problem.hypervolume(clean)
    objective = problem.objectives[0]
    values = [v[objective.name] for v in clean]
    best = min(values) if objective.direction == "minimize" else max(values)
    return max(problem.regret(best), 0.0)


def run_problem(problem, mode, seeds, ours, peers, noise_frac, log, save=lambda scores: None,
                own_designs: bool = False) -> dict[str, list[float]]:
    """Scores per method over ``seeds``; ``save`` gets the partial scores after every seed.

    ``own_designs``: every method starts from nothing with its own default initial design (what a user
    who sets nothing gets: ours from the campaign file without ``planner.initial_experiments``, Ax's
    generation strategy, BayBE's initial recommender, random all random), instead of the shared one.
    """
    scores: dict[str, list[float]] = {m.name: [] for m in [ours, *peers]}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        noise_sd = noise_frac * problem.noise_scale

        def evaluate(params, rng=rng, noise_sd=noise_sd):
            return problem.evaluate(params, rng=rng, noise_sd=noise_sd)

        started = time.perf_counter()
        if own_designs:
            campaign, initial = ours.campaign(problem, mode.budget, mode.batch, seed, n_initial=None), []
        else:
            campaign, initial = ours.initial_design(problem, initial_size(problem, mode), mode.budget, mode.batch,
                                                    seed, evaluate)
        runs = [(ours.name, started, lambda: ours.continue_run(campaign, problem, initial, mode.budget, mode.batch,
                                                               evaluate))]
        runs += [(peer.name, None, lambda peer=peer: peer.run(problem, initial, mode.budget, mode.batch, seed, evaluate))
                 for peer in peers]
        line = []
        for name, since, run in runs:
            value, text = _scored_run(problem, name, run, mode.run_time_limit_s, since)
            scores[name].append(value)
            line.append(text)
        log(f"  {problem.name} seed {seed}: " + ", ".join(line) + "; scores: "
            + ", ".join(f"{name} {v[-1]:.4g}" for name, v in scores.items()))
        save(scores)
    return scores


def _scored_run(problem, name: str, run, limit_s: float | None, started: float | None) -> tuple[float, str]:
    """(score, log text) of one method's run on one seed: NaN when it failed or went over ``limit_s``.

    ``started``: when the method's clock started (our planner's includes the shared design);
    None: now.
    """
    started = time.perf_counter() if started is None else started
    try:
        with time_limit(limit_s):
            history = run()
        return score(problem, history), f"{name} {time.perf_counter() - started:.0f}s"
    except RunTimeLimit as err:  # not scored: a partial run is not comparable
        return float("nan"), f"{name} NOT SCORED ({err})"
    except Exception as err:  # a method that cannot do this problem is reported, so the others still run
        return float("nan"), f"{name} FAILED ({type(err).__name__}: {str(err)[:120]})"


# timing --------------------------------------------------------------------------------------


def latency_table(ours: OurPlanner, methods: Sequence[Peer], mode: Mode, log) -> dict[str, dict[int, list[float]]]:
    """Seconds per q=1 proposal on Hartmann6 after n observations, repeated per ``mode``.

    The n observed points are our campaign's Sobol design (seed 1000 + repeat), the same
    points for every method.
    """
    problem = PROBLEMS["hartmann6"]
    times: dict[str, dict[int, list[float]]] = {m.name: {} for m in methods}
    for n in mode.latency_n:
        for rep in range(mode.latency_repeats[n]):
            observed = ours.design(problem, n, seed=1000 + rep)
            for m in methods:
                if m.name == "baybe" and n > mode.baybe_latency_max_n:
                    continue
                times[m.name].setdefault(n, []).append(_timed(m, problem, observed, 1, 1000 + rep, log))
            log(f"  latency n={n} rep {rep}: " + ", ".join(
                f"{name} {t[n][-1]:.2f}s" for name, t in times.items() if n in t))
    return times


def batch_table(ours: OurPlanner, methods: Sequence[Peer], mode: Mode, log) -> dict[str, dict[int, float]]:
    """Seconds for one q-point batch on Hartmann6 after ``mode.batch_n`` observations (same points for all)."""
    problem = PROBLEMS["hartmann6"]
    observed = ours.design(problem, mode.batch_n, seed=7)
    times: dict[str, dict[int, float]] = {m.name: {} for m in methods}
    for q in mode.batch_q:
        for m in methods:
            if (m.name == "baybe" and q > mode.baybe_batch_max_q) or (m.name == "ax" and q > mode.ax_batch_max_q):
                continue
            times[m.name][q] = _timed(m, problem, observed, q, 7, log)
        log(f"  batch q={q}: " + ", ".join(f"{name} {t[q]:.1f}s" for name, t in times.items() if q in t))
    return times


def _timed(method: Peer, problem, observed, q: int, seed: int, log) -> float:
    try:
        return method.time_proposal(problem, observed, q, seed=seed)
    except Exception as err:  # one method failing a timing is reported, not fatal
        log(f"  {method.name} failed to propose q={q} after n={len(observed)}: {type(err).__name__}: {str(err)[:160]}")
        return float("nan")


# report --------------------------------------------------------------------------------------


def merge_results(parts: Sequence[dict[str, Any]], log) -> dict[str, Any]:
    """One result from several ``--json`` files: seeds split with ``--first-seed``, or a method rerun.

    Regret scores are matched by seed; where two files score the same problem, method and
    seed, the later file wins (rerun only our planner after a change, keep the peers' runs).
    A method missing some of a problem's seeds gets NaN there and is reported, since its
    median is then over other seeds than the rest. Latency and batch tables are taken
    whole per method from the last file that has them.
    """
    by_seed: dict[tuple[str, str], dict[str, dict[int, float]]] = {}  # (table, problem) -> method -> seed -> score
    merged: dict[str, Any] = {"regret": {}, "regret_own": {}, "latency": {}, "batch": {}, "batch_n": FULL.batch_n}
    for part in parts:
        for table in ("regret", "regret_own"):
            for problem, methods in part.get(table, {}).items():
                for method, values in methods.items():
                    by_seed.setdefault((table, problem), {}).setdefault(method, {}).update(zip(part["seeds"], values))
        for key in ("latency", "batch"):
            merged[key].update(part.get(key, {}))
        merged["batch_n"] = part.get("batch_n", merged["batch_n"])
    for (table, problem), methods in by_seed.items():
        seeds = sorted({s for scores in methods.values() for s in scores})
        merged[table][problem] = {m: [scores.get(s, float("nan")) for s in seeds] for m, scores in methods.items()}
        for method, scores in methods.items():
            if len(scores) < len(seeds):
                log(f"note: {problem}: {method} has {len(scores)} of {len(seeds)} seeds; its median is not paired")
    return merged


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return statistics.median(finite) if finite else float("nan")


def _ratio(a: float, b: float) -> str:
    if not (np.isfinite(a) and np.isfinite(b)) or b == 0:
        return "  n/a"
    return f"{a / b:.3g}"


def paired_signs(ours: Sequence[float], theirs: Sequence[float], higher_is_better: bool) -> tuple[int, int, float]:
    """Seeds on which ours scored better and worse (ties and unscored seeds left out), and the two-sided
    sign-test p-value of that split under "either is as likely to win a seed"."""
    pairs = [(a, b) for a, b in zip(ours, theirs) if np.isfinite(a) and np.isfinite(b) and a != b]
    better = sum((a > b) == higher_is_better for a, b in pairs)
    worse = len(pairs) - better
    tail = sum(math.comb(len(pairs), k) for k in range(min(better, worse) + 1)) / 2 ** len(pairs)
    return better, worse, min(1.0, 2 * tail)


def median_ratio_interval(ours: Sequence[float], theirs: Sequence[float], level: float = 0.9,
                          draws: int = 4000, seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap interval of ``median(ours) / median(theirs)``: seeds (scored by both) drawn with
    replacement ``draws`` times; the central ``level`` of the ratios. (nan, nan) when it is undefined."""
    pairs = np.array([(a, b) for a, b in zip(ours, theirs) if np.isfinite(a) and np.isfinite(b)], dtype=float)
    if len(pairs) < 2:
        return float("nan"), float("nan")
    rows = np.random.default_rng(seed).integers(0, len(pairs), size=(draws, len(pairs)))
    medians = np.median(pairs[rows], axis=1)  # (draws, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = medians[:, 0] / medians[:, 1]
    ratios = ratios[np.isfinite(ratios)]
    if len(ratios) < draws / 2:  # the peer's median is 0 in most draws: no ratio to speak of
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def printed_scores(name: str, scores: dict[str, list[float]]) -> tuple[dict[str, list[float]], str, bool]:
    """(scores, label, higher is better) of one problem as the report prints them: a regret as it is; a
    hypervolume as its gap to the problem's reference hypervolume when it declares one, so that a ratio
    compares what is left to find (hypervolumes of 2.41e5 and 2.43e5 against 2.48e5 are gaps 1.5x apart),
    else the hypervolume itself (higher is better)."""
    problem = PROBLEMS[name]
    if not problem.is_multi_objective:
        return scores, name, False
    if problem.reference_hypervolume is None:
        return scores, f"{name} [HV]", True
    gaps = {m: [problem.reference_hypervolume - v for v in values] for m, values in scores.items()}
    return gaps, f"{name} [HV gap]", False


def print_regret(regret: dict[str, dict[str, list[float]]], peer_names: Sequence[str], designs: str) -> None:
    """The median-score table of ``regret`` (problem -> method -> per-seed scores) and the paired-seeds lines."""
    print(f"\nmedian final score per problem, {designs} (regret, or [HV gap]: the reference hypervolume less the "
          "one reached: lower is better; hypervolume [HV]: higher is better)")
    width = max(20, *(len(printed_scores(name, raw)[1]) + 2 for name, raw in regret.items()))  # the problem column
    header = f"{'problem':<{width}}{'ours':>10}" + "".join(f"{n:>10}" for n in peer_names)
    header += "".join(f"{'ours/' + n:>12}" for n in peer_names if n != "random") + f"{'ours/random':>12}"
    rivals = [n for n in peer_names if n != "random"]
    if len(rivals) > 1:
        header += f"{'ours/better':>12}"
    print(header)
    for name, raw in regret.items():
        scores, label, higher_is_better = printed_scores(name, raw)
        med = {m: _median(scores.get(m, [])) for m in ["ours", *peer_names]}
        row = f"{label:<{width}}{med['ours']:>10.4g}" + "".join(f"{med[n]:>10.4g}" for n in peer_names)
        row += "".join(f"{_ratio(med['ours'], med[n]):>12}" for n in rivals)
        row += f"{_ratio(med['ours'], med['random']) if 'random' in med else '  n/a':>12}"
        if len(rivals) > 1:  # the better peer: lower regret, or higher hypervolume
            pick = max if higher_is_better else min
            finite = [med[n] for n in rivals if np.isfinite(med[n])]
            row += f"{_ratio(med['ours'], pick(finite)) if finite else '  n/a':>12}"
        print(row)
    rivals = [n for n in peer_names if n != "random"]
    if rivals:
        print("\npaired seeds: ours better / worse than each peer, the two-sided sign-test p-value, and a 90% "
              "paired-bootstrap interval of the median ratio\n"
              "(p > 0.05, or an interval across 1: may be luck of the seeds)")
        for name, raw in regret.items():
            scores, _, higher_is_better = printed_scores(name, raw)
            cells = []
            for n in rivals:
                better, worse, p = paired_signs(scores.get("ours", []), scores.get(n, []), higher_is_better)
                low, high = median_ratio_interval(scores.get("ours", []), scores.get(n, []))
                cells.append(f"{n} {better}/{worse} p={p:.2g} [{low:.2g}, {high:.2g}]")
            print(f"{name:<{width}}" + "   ".join(cells))


def print_report(results: dict[str, Any], peer_names: Sequence[str]) -> None:
    for key, designs in (("regret", "the same initial design for every method"),
                         ("regret_own", "each method's own default initial design")):
        if results.get(key):
            print_regret(results[key], peer_names, designs)
    for title, key, unit in (("proposal latency, q=1, Hartmann6 [s]", "latency", "n"),
                             ("one batch, Hartmann6 after %d observations [s]" % results["batch_n"], "batch", "q")):
        table = results[key]
        print(f"\n{title}")
        methods = list(table)
        sizes = sorted({s for t in table.values() for s in t}, key=int)
        if key == "latency":
            print(f"{unit:>5}" + "".join(f"{m + ' p50':>11}{m + ' p95':>11}" for m in methods) + f"{'ours/ax p50':>13}")
            for s in sizes:
                cells, p50 = "", {}
                for m in methods:
                    ts = table[m].get(s)
                    if ts:
                        p50[m] = float(np.percentile(ts, 50))
                        cells += f"{p50[m]:>11.2f}{float(np.percentile(ts, 95)):>11.2f}"
                    else:
                        cells += f"{'-':>11}{'-':>11}"
                print(f"{s:>5}{cells}{_ratio(p50.get('ours', np.nan), p50.get('ax', np.nan)):>13}")
        else:
            print(f"{unit:>5}" + "".join(f"{m:>11}" for m in methods) + f"{'ours/ax':>10}")
            for s in sizes:
                row = "".join(f"{table[m][s]:>11.2f}" if s in table[m] else f"{'-':>11}" for m in methods)
                print(f"{s:>5}{row}{_ratio(table['ours'].get(s, np.nan), table.get('ax', {}).get(s, np.nan)):>10}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="2 seeds, branin/hartmann6/decomposition_ridge, budget 20, 120 s per run, BayBE "
                            "timed up to n=100 and q=24, Ax up to q=24 (the default)")
    size.add_argument("--full", action="store_true", help="30 paired seeds, every problem, budget 40")
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS), help="override the mode's problems")
    parser.add_argument("--seeds", type=int, help="override the number of paired seeds")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="first paired seed (default 0): split a long run into parts, then merge them with --report")
    parser.add_argument("--budget", type=int, help="override the experiments per run")
    parser.add_argument("--peers", nargs="+", default=["ax", "baybe", "random"], choices=["ax", "baybe", "random"])
    parser.add_argument("--noise", type=float, default=0.0,
                        help="observation noise as a multiple of each problem's noise_scale (default 0: noise-free)")
    parser.add_argument("--kernel", choices=["auto", *KERNELS], help="our planner's planner.kernel (default: auto)")
    parser.add_argument("--acquisition", choices=ACQUISITIONS,
                        help="our planner's planner.acquisition (default: qLogEI)")
    parser.add_argument("--planner-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="another entry of our planner's planner section, e.g. num_restarts=20 (repeatable; "
                             "the value is read as YAML)")
    parser.add_argument("--own-designs", action="store_true",
                        help="also a regret table where every method starts with its own default initial design "
                             "(what a user who sets nothing gets), after the shared-design one")
    parser.add_argument("--only-own-designs", action="store_true", help="only the own-designs regret table")
    parser.add_argument("--skip-timing", action="store_true", help="only the regret table")
    parser.add_argument("--skip-regret", action="store_true", help="only the latency and batch tables")
    parser.add_argument("--json", type=Path, help="also write every raw number to this file")
    parser.add_argument("--report", type=Path, nargs="+", metavar="JSON",
                        help="print the tables of earlier --json files (merged) and exit")
    args = parser.parse_args(argv)
    if args.report:
        merged = merge_results([json.loads(path.read_text()) for path in args.report], print)
        names = sorted({m for table in ("regret", "regret_own") for scores in merged[table].values() for m in scores
                        if m != "ours"},
                       key=["ax", "baybe", "random"].index)
        print_report(merged, names)
        return

    mode = FULL if args.full else QUICK
    if args.budget:
        from dataclasses import replace

        mode = replace(mode, budget=args.budget)
    problems = args.problems or list(mode.problems)
    seeds = list(range(args.first_seed, args.first_seed + (args.seeds if args.seeds else mode.seeds)))
    peers, skipped = load_peers(args.peers)
    for line in skipped:
        print(line, flush=True)
    peer_names = [p.name for p in peers]

    def log(line: str) -> None:
        print(line, flush=True)

    print(f"mode {'full' if args.full else 'quick'}: problems {', '.join(problems)}; seeds {seeds[0]}..{seeds[-1]}; "
          f"budget {mode.budget} in batches of {mode.batch}; noise {args.noise:g} x noise_scale; "
          f"peers: {', '.join(peer_names) or 'none'}; our kernel: {args.kernel or 'auto'}, acquisition: "
          f"{args.acquisition or 'qLogEI'}" + "".join(f", {item}" for item in args.planner_setting), flush=True)
    started = time.perf_counter()
    results: dict[str, Any] = {"regret": {}, "latency": {}, "batch": {}, "batch_n": mode.batch_n,
                               "mode": "full" if args.full else "quick", "seeds": seeds, "budget": mode.budget}
    with tempfile.TemporaryDirectory() as tmp:
        options = {"kernel": args.kernel, "acquisition": args.acquisition, **planner_settings(args.planner_setting)}
        ours = OurPlanner(Path(tmp), planner={k: v for k, v in options.items() if v is not None})
        tables = [] if args.skip_regret else ["regret_own"] if args.only_own_designs else (
            ["regret", "regret_own"] if args.own_designs else ["regret"])
        for key in tables:
            results[key] = {}
            for name in problems:
                problem = PROBLEMS[name]
                log(f"{name}: " + ("each method's own default initial design" if key == "regret_own"
                                   else f"shared Sobol design of {initial_size(problem, mode)} points"))
                results[key][name] = run_problem(
                    problem, mode, seeds, ours, peers, args.noise, log, own_designs=key == "regret_own",
                    save=lambda partial, name=name, key=key: _save(args.json, {**results, key: {**results[key], name: partial}}))
                medians = {m: _median(v) for m, v in results[key][name].items()}
                log(f"  {name} medians: " + ", ".join(f"{m} {v:.4g}" for m, v in medians.items()))
                _save(args.json, results)
        if not args.skip_timing:
            timed = [ours] + [p for p in peers if p.name != "random"]
            results["latency"] = latency_table(ours, timed, mode, log)
            _save(args.json, results)
            results["batch"] = batch_table(ours, timed, mode, log)
    print_report(results, peer_names)
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s on {os.cpu_count()} cores")
    _save(args.json, results)


def planner_settings(items: Sequence[str]) -> dict[str, Any]:
    """``["num_restarts=20"]`` -> ``{"num_restarts": 20}`` (values read as YAML scalars)."""
    import yaml

    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--planner-setting {item!r} is not KEY=VALUE, e.g. num_restarts=20")
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def _save(path: Path | None, results: dict[str, Any]) -> None:
    """Write every raw number so far (a long run that is stopped still leaves its results)."""
    if path is not None:
        path.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
