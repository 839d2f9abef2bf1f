"""BayBE 0.15.0 with its default Bayesian recommender, given the same initial design.

The shared initial points are added as measurements first, so BayBE's two-phase
recommender goes straight to its Bayesian phase (BotorchRecommender); with no shared design, its own
initial recommender picks the first batch. Integer
parameters become discrete numerical parameters (BayBE has no integer range).
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pandas as pd
from baybe import Campaign
from baybe.constraints import ContinuousLinearConstraint
from baybe.objectives import ParetoObjective, SingleTargetObjective
from baybe.parameters import CategoricalParameter, NumericalContinuousParameter, NumericalDiscreteParameter
from baybe.searchspace import SearchSpace
from baybe.targets import NumericalTarget

from bench.peers.common import Peer

logging.getLogger("baybe").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", module=r"baybe(\.|$)")


def _campaign(problem) -> Campaign:
    parameters = []
    for p in problem.parameters:
        if p.type == "categorical":
            parameters.append(CategoricalParameter(name=p.name, values=list(p.values), encoding="OHE"))
        elif p.type == "integer":
            parameters.append(NumericalDiscreteParameter(name=p.name, values=list(range(int(p.bounds[0]), int(p.bounds[1]) + 1))))
        else:
            parameters.append(NumericalContinuousParameter(name=p.name, bounds=(float(p.bounds[0]), float(p.bounds[1]))))
    constraints = []
    for c in problem.constraints:
        constraints.append(ContinuousLinearConstraint(parameters=list(c.coefficients), operator="=" if c.op == "==" else c.op,
                                                      coefficients=[float(v) for v in c.coefficients.values()], rhs=float(c.rhs)))
    space = SearchSpace.from_product(parameters=parameters, constraints=constraints or None)
    targets = [NumericalTarget(o.name, minimize=o.direction == "minimize") for o in problem.objectives]
    objective = SingleTargetObjective(targets[0]) if len(targets) == 1 else ParetoObjective(targets)
    return Campaign(searchspace=space, objective=objective)


def _frame(problem, rows) -> pd.DataFrame:
    return pd.DataFrame([{**params, **values} for params, values in rows])


def _clean(problem, row) -> dict:
    out = {}
    for p in problem.parameters:
        value = row[p.name]
        out[p.name] = str(value) if p.type == "categorical" else (int(round(float(value))) if p.type == "integer" else float(value))
    return out


class BayBEPeer(Peer):
    name = "baybe"

    def run(self, problem, initial, budget, batch, seed, evaluate):
        import random

        import torch

        torch.manual_seed(seed)
        random.seed(seed)  # BayBE's random initial recommender (no shared design) draws from these global states
        np.random.seed(seed)
        campaign = _campaign(problem)
        if initial:  # else BayBE's own initial recommender picks the first batch
            campaign.add_measurements(_frame(problem, initial), numerical_measurements_must_be_within_tolerance=False)
        history = list(initial)
        while len(history) < budget:
            proposals = campaign.recommend(batch_size=min(batch, budget - len(history)))
            rows = []
            for _, row in proposals.iterrows():
                params = problem.checked(_clean(problem, row))
                rows.append((params, evaluate(params)))
            campaign.add_measurements(_frame(problem, rows), numerical_measurements_must_be_within_tolerance=False)
            history += rows
        return history

    def time_proposal(self, problem, observed, q, seed):
        import torch

        torch.manual_seed(seed)
        campaign = _campaign(problem)
        campaign.add_measurements(_frame(problem, observed), numerical_measurements_must_be_within_tolerance=False)
        start = time.perf_counter()
        campaign.recommend(batch_size=q)
        return time.perf_counter() - start
