"""Ax 1.3.1 through its ``Client`` API, given the same initial design as every optimiser.

The shared initial points are attached as completed trials and Ax's generation strategy
is told they are its initialisation (``initialization_budget`` = their number), so its
first own proposal is already Bayesian (its default "fast" method: a BoTorch modular GP). With no
shared design, Ax starts with its own default initialisation.

Outcome constraints (``AxPeer(outcome_constraints=["g <= 50"])``) go to Ax's optimization
config. An experiment whose ``evaluate`` returns None failed (``bench/constrained.py``'s
chemistry failures): its trial is marked failed, which is what Ax offers a user for it.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Sequence

from ax.api.client import Client
from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

from bench.peers.common import Peer

warnings.filterwarnings("ignore", module=r"ax(\.|$)")


def _quiet() -> None:
    """Ax gives each module its own INFO logger; silence them all (new ones appear on use)."""
    for name in list(logging.root.manager.loggerDict):
        if name == "ax" or name.startswith("ax."):
            logging.getLogger(name).setLevel(logging.ERROR)


def _metric(name: str) -> str:
    """Ax parses the objective string with sympy, which refuses Python keywords ("yield"): prefix every name."""
    return f"m_{name}"


def _client(problem, initial, seed: int, outcome_constraints: Sequence[str] = ()) -> Client:
    _quiet()
    client = Client(random_seed=seed)
    parameters = []
    for p in problem.parameters:
        if p.type == "categorical":
            parameters.append(ChoiceParameterConfig(name=p.name, values=list(p.values), parameter_type="str",
                                                    is_ordered=False))
        else:
            parameters.append(RangeParameterConfig(
                name=p.name, bounds=(float(p.bounds[0]), float(p.bounds[1])),
                parameter_type="int" if p.type == "integer" else "float",
                scaling="log" if p.log_scale else None,
            ))
    client.configure_experiment(parameters=parameters, parameter_constraints=[c.text for c in problem.constraints] or None)
    client.configure_optimization(objective=", ".join(
        _metric(o.name) if o.direction == "maximize" else f"-{_metric(o.name)}" for o in problem.objectives),
        outcome_constraints=[_metric(c.strip()) for c in outcome_constraints] or None)
    if initial:  # the shared design is Ax's initialisation
        client.configure_generation_strategy(initialization_budget=len(initial), initialize_with_center=False,
                                             initialization_random_seed=seed)
    else:  # Ax's own default design (its generation strategy's initialisation), seeded
        client.configure_generation_strategy(initialization_random_seed=seed)
    for params, values in initial:
        _report(client, client.attach_trial(parameters=_ax_params(problem, params)), values)
    return client


def _report(client: Client, index: int, values) -> None:
    """Complete trial ``index`` with ``values``, or mark it failed when they are None."""
    if values is None:
        client.mark_trial_failed(index, failed_reason="the experiment failed")
    else:
        client.complete_trial(index, raw_data=_ax_values(values))


def _ax_values(values):
    return {_metric(name): value for name, value in values.items()}


def _ax_params(problem, params):
    out = {}
    for p in problem.parameters:
        value = params[p.name]
        out[p.name] = str(value) if p.type == "categorical" else (int(value) if p.type == "integer" else float(value))
    return out


def _next(client: Client, q: int) -> dict:
    trials: dict = {}
    while len(trials) < q:
        got = client.get_next_trials(max_trials=q - len(trials))
        if not got:
            raise RuntimeError("Ax proposed no trials")
        trials.update(got)
    _quiet()
    return trials


class AxPeer(Peer):
    name = "ax"

    def __init__(self, outcome_constraints: Sequence[str] = ()) -> None:
        self.outcome_constraints = tuple(outcome_constraints)  # "outcome op bound", the outcome's name first

    def run(self, problem, initial, budget, batch, seed, evaluate):
        client = _client(problem, initial, seed, self.outcome_constraints)
        history = list(initial)
        while len(history) < budget:
            trials = _next(client, min(batch, budget - len(history)))
            for index, params in trials.items():
                values = evaluate(problem.checked(params))
                _report(client, index, values)
                history.append((problem.checked(params), values))
        return history

    def time_proposal(self, problem, observed, q, seed):
        client = _client(problem, observed, seed)
        start = time.perf_counter()
        _next(client, q)
        return time.perf_counter() - start
