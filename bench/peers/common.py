"""The interface every optimiser in the suite implements, and random search.

An optimiser is driven through ``run``: it receives the shared initial design (points and
their measured values), proposes ``batch`` points at a time until ``budget`` points are
evaluated, and returns every evaluated point with its values in order. ``time_proposal``
times one call that proposes ``q`` points after ``points`` have been measured.
"""

from __future__ import annotations

import importlib
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from simulators.benchmarks import BenchmarkProblem

Params = dict[str, Any]
Values = dict[str, float]
Evaluate = Callable[[Mapping[str, Any]], Values]


class Peer:
    """One optimiser under test."""

    name = "peer"

    def run(self, problem: BenchmarkProblem, initial: Sequence[tuple[Params, Values]], budget: int, batch: int,
            seed: int, evaluate: Evaluate) -> list[tuple[Params, Values]]:
        raise NotImplementedError

    def time_proposal(self, problem: BenchmarkProblem, observed: Sequence[tuple[Params, Values]], q: int,
                      seed: int) -> float:
        """Seconds one proposal of ``q`` points takes after ``observed`` (model fit included)."""
        raise NotImplementedError


class RandomSearch(Peer):
    """Uniform random points (under the constraints) after the shared initial design."""

    name = "random"

    def run(self, problem, initial, budget, batch, seed, evaluate):
        rng = np.random.default_rng(10_000 + seed)
        history = list(initial)
        while len(history) < budget:
            params = problem.random_params(rng)
            history.append((params, evaluate(params)))
        return history

    def time_proposal(self, problem, observed, q, seed):
        rng = np.random.default_rng(seed)
        start = time.perf_counter()
        [problem.random_params(rng) for _ in range(q)]
        return time.perf_counter() - start


def load_peers(names: Sequence[str]) -> tuple[list[Peer], list[str]]:
    """The peers among ``names`` (ax, baybe, random) that import, and one line per skipped one."""
    modules = {"ax": ("bench.peers.ax_peer", "AxPeer"), "baybe": ("bench.peers.baybe_peer", "BayBEPeer")}
    peers: list[Peer] = []
    skipped: list[str] = []
    for name in names:
        if name == "random":
            peers.append(RandomSearch())
            continue
        module_name, class_name = modules[name]
        try:
            module = importlib.import_module(module_name)
            peers.append(getattr(module, class_name)())
        except ImportError as err:
            skipped.append(f"skipping {name}: cannot import it ({err}); install the bench group: uv sync --group bench")
        except Exception as err:  # an installed but broken peer is skipped too, with its error
            skipped.append(f"skipping {name}: importing it failed with {type(err).__name__}: {str(err)[:200]}")
    return peers, skipped
