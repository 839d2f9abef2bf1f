"""The per-run time limit of bench/planner_suite.py's quick mode."""

from __future__ import annotations

import math
import signal
import time

import pytest

from bench.planner_suite import QUICK, RunTimeLimit, run_problem, time_limit
from bench.peers.common import Peer, RandomSearch
from simulators.benchmarks import PROBLEMS


def test_a_run_over_the_limit_is_stopped_and_one_under_it_is_left_alone():
    started = time.perf_counter()
    with pytest.raises(RunTimeLimit, match="0.3 s limit"):
        with time_limit(0.3):
            time.sleep(5)
    assert time.perf_counter() - started < 2
    with time_limit(2.0):
        time.sleep(0.05)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no alarm left to go off later
    with time_limit(None):
        time.sleep(0.01)


class _SlowPeer(Peer):
    name = "slow"

    def run(self, problem, initial, budget, batch, seed, evaluate):
        time.sleep(30)
        return list(initial)


class _DesignOnly:
    """Stands in for our planner: the shared design is uniform points, the run adds nothing."""

    name = "ours"

    def initial_design(self, problem, n_initial, budget, batch, seed, evaluate):
        import numpy as np

        rng = np.random.default_rng(seed)
        history = [(p, evaluate(p)) for p in (problem.random_params(rng) for _ in range(n_initial))]
        return None, history

    def continue_run(self, campaign, problem, history, budget, batch, evaluate):
        return list(history)


def test_a_peer_over_the_limit_is_reported_not_scored_and_the_others_are_scored():
    from dataclasses import replace

    mode = replace(QUICK, budget=8, batch=4, run_time_limit_s=0.5)
    lines = []
    scores = run_problem(PROBLEMS["branin"], mode, [0], _DesignOnly(), [_SlowPeer(), RandomSearch()], 0.0, lines.append)
    assert math.isnan(scores["slow"][0])
    assert math.isfinite(scores["random"][0]) and math.isfinite(scores["ours"][0])
    assert "slow NOT SCORED (over the 0.5 s limit of this mode)" in lines[0]
