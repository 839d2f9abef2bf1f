"""Whether to model an objective through its output warp: the data decide, by marginal likelihood.

``acquisition.build_problem`` fits a Yeo-Johnson warp (``output_warp``) to make an objective's values
closer to normal. Marginal normality is not what a GP needs, though: a smooth peak sampled on a
design gives skewed values that a GP models well as they are (a spectral distance near its minimum is
one), and warping them bends a simple surface into a harder one. So both GPs are fitted, one to the
warped values and one to the values as they are, and the warp is dropped when the measured values are
clearly more probable without it (``PLAIN_ODDS``): the warped GP's log marginal likelihood, plus the log
Jacobian of the warp, against the plain GP's, both in the objective's own units (the warped GP of
Snelson et al., NeurIPS 2003, choosing between two warps instead of learning one).

The comparison costs a second GP fit, so it is made where hyperparameters are fitted on every
observation (``surrogates.EXACT_FIT_MAX``); above that the warp is kept as fitted.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from gpytorch.mlls import ExactMarginalLogLikelihood

from orchestrator.planning.surrogates import EXACT_FIT_MAX, OutputData, fit_output

#: the warp stays unless the values are at least this many times likelier under the plain GP (a Bayes factor
#: of 3, where Kass and Raftery's "positive" evidence begins): the warp is the planner's default
PLAIN_ODDS = 3.0


def fit_choosing_warp(data: OutputData, seed: int, kernel: str) -> tuple[OutputData, Any, dict[str, Any]]:
    """``(data, model, description)``: ``data`` as modelled (warped, or as measured when that fits better),
    its fitted GP and the GP's description, which says in ``output_warp`` whether the warp was kept."""
    model, description = fit_output(data, seed, kernel)
    if data.warp is None or data.Y_unwarped is None or data.task is not None or data.X.shape[0] > EXACT_FIT_MAX:
        return data, model, description
    plain_data = dataclasses.replace(data, Y=data.Y_unwarped, warp=None, Y_unwarped=None)
    plain, plain_description = fit_output(plain_data, seed, kernel)
    y = data.Y_unwarped.reshape(-1).tolist()
    warped_evidence = log_evidence(model) + data.warp.log_jacobian(y)
    plain_evidence = log_evidence(plain)
    gain = warped_evidence - plain_evidence
    if gain > -math.log(PLAIN_ODDS):
        description["output_warp"] = {"lambda": data.warp.lam, "log_evidence_gain": gain}
        return data, model, description
    plain_description["output_warp"] = {"lambda": None, "log_evidence_gain": gain}
    return plain_data, plain, plain_description


def log_evidence(model: Any) -> float:
    """log p(Y | X) of a fitted exact GP at its hyperparameters, their prior's log density included, with
    ``Y`` the model's training values before its ``Standardize`` outcome transform (nats)."""
    targets = model.train_targets
    n = targets.shape[-1]
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    model.train()
    try:
        with torch.no_grad():
            per_point = float(mll(model(*model.train_inputs), targets))
    finally:
        model.eval()
    stdv = float(model.outcome_transform.stdvs.reshape(-1)[0])
    return per_point * n - n * math.log(stdv)
