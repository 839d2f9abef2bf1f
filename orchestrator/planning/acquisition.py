"""From observations to an acquisition function: what the planner models and how it scores.

Modelled outputs, in this order (``Problem.outputs``): every objective, every outcome named
in an outcome constraint (once it has at least two values), and ``FEASIBLE`` (the 0/1
"chemistry worked" label over measured and chemistry-failed experiments) once any
experiment failed for a chemical reason. Each is its own GP (``orchestrator.planning.surrogates``).

Scoring, on posterior samples ``Z`` of shape (..., q, outputs):

- each objective becomes "higher is better": ``y`` (maximize), ``-y`` (minimize) or
  ``-|y - target|`` (target). A target objective is modelled as ``y`` itself, which is
  smoother than the distance, and the distance is taken sample by sample, so the
  acquisition knows the prediction may land on either side of the target;
- one objective: ``qLogExpectedImprovement`` over the best posterior mean among the
  observed points (the incumbent; BayBE's choice), by default (on ``orchestrator.planning.lean_gp``'s
  model, when it applies, its ``LeanLogEI``: the same values, a fraction of the overhead).
  A sampled incumbent puts MC noise into every acquisition value; a fixed one does not.
  With outcome constraints or a feasibility model the incumbent is the best posterior mean
  among the observed points whose posterior mean meets every constraint (the worst of all
  when none does, so that any feasible sample improves);
- ``planner.acquisition: qLogNEI``: ``qLogNoisyExpectedImprovement`` (on
  ``orchestrator.planning.lean_gp``'s model, when it applies and nothing constrains the objective,
  its ``LeanLogNEI``: the same values from the same base samples, a fraction of the
  overhead), whose incumbent is sampled and counts only feasible samples; several:
  ``qLogNoisyExpectedHypervolumeImprovement`` with reference point given per objective
  or inferred as the worst observed (higher-is-better) value minus 10% of the observed
  range (1e-3 when all values are equal), so every measured point counts;
- outcome constraints and feasibility are constraints of the MC acquisition: a sample
  counts only where ``lhs <= rhs`` and where the feasibility GP's value exceeds 0.5, so
  the expected improvement is weighted by the probability of feasibility;
- an objective with a direction is modelled on its values with the worse tail pulled in to
  the Tukey fence (``_winsorized``), and, for the planner (``warp=True``), through a Yeo-Johnson
  warp (``output_warp``) when it is the only objective and nothing reads its model in its own
  units: no outcome constraint, no prior mean or earlier campaign, no reported uncertainty;
- a chemistry failure also enters each objective's GP at the worst value observed so
  far. Without it the objective GP extrapolates freely into the failing region, and an
  expected improvement there can be large enough to outweigh a small P(success) (seen in
  tests/test_feasibility.py). Instrument faults enter neither model.

How qLogEI compared with qLogNEI (plain and constrained, and against Ax) and what winsorising
changed: ``bench/results/planner.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from botorch.acquisition.cached_cholesky import supports_cache_root
from botorch.acquisition.logei import qLogExpectedImprovement, qLogNoisyExpectedImprovement
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.acquisition.objective import GenericMCObjective
from botorch.sampling import SobolQMCNormalSampler

from orchestrator.planning import lean_gp
from orchestrator.planning.acquisition_registry import ACQUISITION_CHOICES, DEFAULT_ACQUISITION
from orchestrator.planning.output_warp import YeoJohnsonWarp
from orchestrator.planning.constraints import LinearConstraint
from orchestrator.planning.space import SearchSpace
from orchestrator.planning.surrogates import OutputData
from orchestrator.planning.unit_prior import UnitPrior
from orchestrator.spec.sections import Objective

FEASIBLE = "__feasible__"
#: Most observations in the noisy-improvement baseline (see ``_baseline_rows``).
BASELINE_MAX = 32
#: MC samples of the acquisition function.
MC_SAMPLES = 128
#: Objective values worse than this many interquartile ranges beyond the worse quartile are
#: pulled in to that fence before modelling (``_winsorized``).
WINSOR_IQR = 1.5
WINSORIZE = True


@dataclass
class Problem:
    """Everything the acquisition needs besides the models."""

    objectives: list[Objective]
    outcome_constraints: list[LinearConstraint]
    outputs: list[OutputData] = field(default_factory=list)
    X_baseline: Any = None
    #: every measured experiment in unit coordinates, observations then chemistry failures; shape (n + f, d)
    X_measured: Any = None

    def index(self, name: str) -> int | None:
        return next((i for i, d in enumerate(self.outputs) if d.name == name), None)


def build_problem(space: SearchSpace, objectives: Sequence[Objective], outcome_constraints: Sequence[LinearConstraint],
                  observations: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]],
                  failed: Sequence[Mapping[str, Any]] = (),
                  uncertainty: Sequence[Mapping[str, float] | None] | None = None,
                  prior_data: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]] = (),
                  prior: UnitPrior | None = None, warp: bool = False) -> Problem:
    """Training data of every modelled output (see the module docstring); ``prior``: the campaign's
    mechanistic prior mean, as the planner evaluates it; ``warp``: warp the objective where it may (the
    planner; the report models the values as they are, to show them in the objective's units)."""
    problem = Problem(list(objectives), list(outcome_constraints))
    units = np.stack([space.to_unit(p) for p, _ in observations])
    failed_units = [space.to_unit(p) for p in failed]
    problem.X_measured = torch.tensor(np.concatenate([units, np.stack(failed_units)]) if failed else units,
                                      dtype=torch.float64)
    problem.X_baseline = torch.tensor(units[_baseline_rows(objectives, observations)], dtype=torch.float64)
    sds = list(uncertainty) if uncertainty is not None else [None] * len(observations)
    outcome_names: list[str] = []
    for c in outcome_constraints:
        outcome_names += [n for n in c.coefficients if n not in outcome_names]
    for name in [o.name for o in objectives] + outcome_names:
        rows = [i for i, (_, v) in enumerate(observations) if name in v]
        if len(rows) < 2 and name in outcome_names:
            continue  # too little to model an outcome yet; its constraints wait
        prior_rows = [(p, v) for p, v in prior_data if name in v]
        objective = next((o for o in objectives if o.name == name), None)
        imputed = list(failed) if objective is not None else []
        worst = None
        if imputed:
            worst = min((float(observations[i][1][name]) for i in rows), key=objective.score)
        X = [units[i] for i in rows] + (failed_units if imputed else []) + [space.to_unit(p) for p, _ in prior_rows]
        own = _winsorized([float(observations[i][1][name]) for i in rows] + [worst] * len(imputed), objective,
                          prior)
        Y = own + _winsorized([float(v[name]) for _, v in prior_rows], objective, prior)
        variances = [None if not sds[i] or name not in sds[i] else float(sds[i][name]) ** 2 for i in rows]
        variances += [None] * (len(imputed) + len(prior_rows))
        given = [v for v in variances if v is not None]
        Yvar = None
        if given:  # rows without a reported sd take the median reported variance
            fill = float(np.median(given))
            Yvar = torch.tensor([[fill if v is None else max(v, 1e-12)] for v in variances], dtype=torch.float64)
        output_warp, unwarped = None, None
        if warp and objective is not None and objective.target is None and len(objectives) == 1 \
                and not outcome_constraints and prior is None and not prior_rows and Yvar is None:
            output_warp = YeoJohnsonWarp.fitted(own, maximize=objective.direction == "maximize")
            if output_warp is not None:
                Y, unwarped = output_warp.forward(own), torch.tensor(own, dtype=torch.float64).unsqueeze(-1)
        task = None
        if prior_rows:
            task = torch.tensor([1.0] * (len(rows) + len(imputed)) + [0.0] * len(prior_rows), dtype=torch.float64)
        problem.outputs.append(OutputData(
            name, torch.tensor(np.stack(X), dtype=torch.float64), torch.tensor(Y, dtype=torch.float64).unsqueeze(-1),
            Yvar, task, prior.for_output(name) if prior is not None else None, output_warp, unwarped,
        ))
    if failed:
        labels = [1.0] * len(observations) + [0.0] * len(failed)
        problem.outputs.append(OutputData(FEASIBLE, problem.X_measured,
                                          torch.tensor(labels, dtype=torch.float64).unsqueeze(-1)))
    return problem


def _winsorized(values: list[float], objective: Objective | None, prior_mean: Any) -> list[float]:
    """``values`` of a direction objective with the worse tail pulled in to its Tukey fence.

    One very bad observation (Branin's 300 beside a best of 0.4) stretches the standardised
    scale so much that the GP cannot resolve the good region; pulling the bad tail in to
    ``q1 - WINSOR_IQR * IQR`` (in "higher is better" terms) keeps the ranking and leaves
    the good end untouched. Not for target objectives (either side is bad), outcome
    constraints (their thresholds need true values), or a prior mean (the GP models the
    residual of true values).
    """
    if not WINSORIZE or objective is None or objective.target is not None or prior_mean is not None \
            or len(values) < 4:
        return values
    sign = 1.0 if objective.direction == "maximize" else -1.0
    scored = sign * np.asarray(values, dtype=float)
    q1, q3 = np.percentile(scored, [25, 75])
    fence = q1 - WINSOR_IQR * (q3 - q1)
    return (sign * np.maximum(scored, fence)).tolist()


def _baseline_rows(objectives: Sequence[Objective], observations) -> list[int]:
    """Rows of the noisy-improvement baseline: all, or the ``BASELINE_MAX`` best observed.

    BoTorch prunes the baseline to the points that may be the best by sampling their joint
    posterior, which costs O(n^3) (seconds at a few thousand observations). A point far
    down the observed ranking has practically no chance of being the best, so above
    ``BASELINE_MAX`` only the best-ranked ones enter (mean rank over the objectives).
    """
    n = len(observations)
    if n <= BASELINE_MAX:
        return list(range(n))
    rank_sum = np.zeros(n)
    for o in objectives:
        scores_ = np.array([-o.score(v[o.name]) for _, v in observations])
        rank_sum += np.argsort(np.argsort(scores_, kind="stable"), kind="stable")
    return sorted(np.argsort(rank_sum, kind="stable")[:BASELINE_MAX].tolist())


def scores(objectives: Sequence[Objective], Z):
    """Objective samples (..., k) "higher is better" from output samples ``Z`` (..., outputs)."""
    columns = []
    for i, o in enumerate(objectives):
        z = Z[..., i]
        if o.target is not None:
            columns.append(-(z - o.target).abs())
        else:
            columns.append(z if o.direction == "maximize" else -z)
    return torch.stack(columns, dim=-1)


def constraint_callables(problem: Problem) -> list[Callable]:
    """MC constraints (feasible where <= 0) for outcome constraints and the feasibility model."""
    out = []
    for c in problem.outcome_constraints:
        idx = {n: problem.index(n) for n in c.coefficients}
        if any(i is None for i in idx.values()):
            continue
        sign = 1.0 if c.op == "<=" else -1.0
        terms = [(idx[n], a) for n, a in c.coefficients.items()]
        out.append(lambda Z, terms=terms, rhs=c.rhs, sign=sign: sign * (sum(a * Z[..., j] for j, a in terms) - rhs))
    feasible = problem.index(FEASIBLE)
    if feasible is not None:
        out.append(lambda Z, j=feasible: 0.5 - Z[..., j])
    return out


def reference_point(objectives: Sequence[Objective], observations) -> list[float]:
    """Hypervolume reference point in "higher is better" units (see the module docstring)."""
    point = []
    for o in objectives:
        if o.reference is not None:
            point.append(-abs(o.reference) if o.target is not None else o.score(o.reference))
            continue
        values = [o.score(v[o.name]) for _, v in observations]
        low, high = min(values), max(values)
        point.append(low - (0.1 * (high - low) if high > low else 1e-3))
    return point


def make_acquisition(problem: Problem, model, observations, X_pending, seed: int,
                     acquisition: str = DEFAULT_ACQUISITION):
    """(acquisition function, its name, extra info) for ``problem`` (see the module docstring).

    ``acquisition`` (a name in ``acquisition_registry.ACQUISITION_CHOICES``) picks the single-objective
    function, built by the function the registry names; several objectives always take qLogNEHVI.
    """
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([MC_SAMPLES]), seed=seed)
    cache_root = supports_cache_root(model)  # False for orchestrator.planning.lean_gp's model
    constraints = constraint_callables(problem) or None
    objectives = problem.objectives
    if len(objectives) == 1:
        objective = GenericMCObjective(lambda Z, X=None: scores(objectives, Z)[..., 0])
        build = globals()[ACQUISITION_CHOICES[acquisition].builder]  # a function of this module, by name
        return build(problem, model, X_pending, sampler, objective, constraints)
    ref = reference_point(objectives, observations)
    objective = GenericMCMultiOutputObjective(lambda Z, X=None: scores(objectives, Z))
    acqf = qLogNoisyExpectedHypervolumeImprovement(model, ref_point=ref, X_baseline=problem.X_baseline,
                                                   sampler=sampler, objective=objective, constraints=constraints,
                                                   X_pending=X_pending, prune_baseline=True, cache_root=cache_root)
    return acqf, "qLogNEHVI", {"reference_point": ref}


def _log_ei(problem: Problem, model, X_pending, sampler, objective, constraints=None):
    """qLogEI over an incumbent from the posterior mean at the baseline (scored, higher is better): the best
    among the points whose mean meets every constraint, or the worst of all when none does (then nearly any
    feasible sample improves, and the acquisition seeks feasibility)."""
    with torch.no_grad():
        mean = model.posterior(problem.X_baseline).mean.unsqueeze(0)  # (1, n, outputs)
        score = objective(mean)[0]  # (n,)
        feasible = torch.ones_like(score, dtype=torch.bool)
        for constraint in constraints or ():
            feasible &= constraint(mean)[0] <= 0
        incumbent = score[feasible].max() if bool(feasible.any()) else score.min()
    build = lean_gp.lean_log_ei if lean_gp.is_lean(model) else qLogExpectedImprovement
    acqf = build(model, best_f=incumbent, sampler=sampler, objective=objective, X_pending=X_pending,
                 constraints=constraints)
    info = {"incumbent_score": float(incumbent)}
    if constraints:
        info["incumbent_meets_constraints"] = bool(feasible.any())
    return acqf, "qLogEI", info


def _log_nei(problem: Problem, model, X_pending, sampler, objective, constraints=None):
    """qLogNEI, whose incumbent is sampled at the baseline and counts only feasible samples; on
    ``orchestrator.planning.lean_gp``'s model, when nothing constrains the objective, its ``LeanLogNEI``."""
    if constraints is None and lean_gp.is_lean(model):
        acqf = lean_gp.lean_log_nei(model, X_baseline=problem.X_baseline, X_pending=X_pending,
                                    prune_baseline=True, sampler=sampler, objective=objective)
        return acqf, "qLogNEI", {}
    acqf = qLogNoisyExpectedImprovement(model, X_baseline=problem.X_baseline, X_pending=X_pending,
                                        prune_baseline=True, sampler=sampler, objective=objective,
                                        constraints=constraints, cache_root=supports_cache_root(model))
    return acqf, "qLogNEI", {}


def predictions(problem: Problem, model, candidates) -> list[dict[str, Any]]:
    """Per candidate: predicted mean and sd of each output, P(success) and P(feasible)."""
    with torch.no_grad():
        posterior = model.posterior(candidates)
        mean = posterior.mean.reshape(len(candidates), -1)
        sd = posterior.variance.clamp_min(0).sqrt().reshape(len(candidates), -1)
    out = []
    for i in range(len(candidates)):
        predicted = {d.name: _in_units(d, float(mean[i, j]), float(sd[i, j]))
                     for j, d in enumerate(problem.outputs) if d.name != FEASIBLE}
        p_success = 1.0
        j = problem.index(FEASIBLE)
        if j is not None:
            p_success = _prob_below(-float(mean[i, j]), float(sd[i, j]), -0.5)
        p_feasible = p_success
        for c in problem.outcome_constraints:
            idx = {n: problem.index(n) for n in c.coefficients}
            if any(k is None for k in idx.values()):
                continue
            lhs = sum(a * float(mean[i, idx[n]]) for n, a in c.coefficients.items())
            spread = math.sqrt(sum((a * float(sd[i, idx[n]])) ** 2 for n, a in c.coefficients.items()))
            p_feasible *= _prob_below(lhs, spread, c.rhs) if c.op == "<=" else _prob_below(-lhs, spread, -c.rhs)
        out.append({"predicted": predicted, "probability_success": p_success, "probability_feasible": p_feasible})
    return out


def _in_units(output: Any, mean: float, sd: float) -> dict[str, float]:
    """A prediction of ``output`` in its own units: through its warp's inverse when it was warped."""
    if output.warp is not None:
        mean, sd = output.warp.predictive(mean, sd)
    return {"mean": mean, "sd": sd}


def _prob_below(mean: float, sd: float, threshold: float) -> float:
    """P(N(mean, sd^2) <= threshold)."""
    if sd <= 0:
        return float(mean <= threshold)
    return 0.5 * (1.0 + math.erf((threshold - mean) / (sd * math.sqrt(2.0))))
