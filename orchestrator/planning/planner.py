"""The stateless planner: everything it needs comes in with each call.

``suggest(observations, pending, n, n_proposed, failed=, uncertainty=)`` returns ``n``
proposals: points of a seeded, constraint-filtered Sobol design first
(``orchestrator.planning.design``), then one GP per modelled output
(``orchestrator.planning.surrogates``: exact, subset-fitted above 250 observations, stacked on an
earlier campaign's GP with a warm start) and ``qLogExpectedImprovement`` (one objective;
``qLogNoisyExpectedImprovement`` on request) or ``qLogNoisyExpectedHypervolumeImprovement``
(several), with outcome constraints and the chemistry-failure feasibility model as constraints
(``orchestrator.planning.acquisition``) and in-flight experiments as pending points
(``orchestrator.planning.proposal``; the batch from ``orchestrator.planning.optimizer``). Every
proposal's ``info`` explains it.

This module is the boundary of the torch world: building a ``Planner`` (as every ``Campaign``
does) imports neither torch nor scipy; they load when a proposal is made.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from orchestrator.planning.design import initial_points
from orchestrator.planning.space import SearchSpace
from orchestrator.spec.sections import Objective


@dataclass(frozen=True)
class Suggestion:
    """One proposal: parameter values and how they were chosen (``info``)."""

    params: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


class Planner:
    """Bayesian optimisation over a ``SearchSpace``.

    Args:
        space: parameters and linear constraints.
        objective: name of the objective in observation values (ignored when
            ``objectives`` is given).
        maximize: direction of that objective (ignored when ``objectives`` is given).
        seed: makes every proposal reproducible from the same inputs.
        initial_experiments: size of the Sobol design.
        num_restarts, raw_samples: the acquisition optimiser's local refinements and the raw points
            they start from (``orchestrator.planning.optimizer``).
        objectives: the campaign's objectives (direction or target each); several give a
            hypervolume acquisition.
        outcome_constraints: constraints on measured outputs that are not objectives.
        prior_data: (params, values) measured in an earlier campaign (warm start); a GP
            fitted to them is the prior mean of this campaign's GPs.
        prior_mean: ``f(params) -> float | {objective: value}``, or a ``prior_mean.CalibratedModel``
            whose calibrated settings are fitted to the observations before each proposal; the GPs
            model ``y - f``.
        emulate_prior: evaluate ``prior_mean`` through a cheap emulator built once (see
            ``orchestrator.planning.unit_prior.UnitPrior``), not thousands of model calls a proposal.
        kernel: the GPs' covariance, one of ``surrogates.KERNELS``.
        acquisition: one of ``acquisition_registry.ACQUISITIONS``: the function for one unconstrained
            objective (see ``orchestrator.planning.acquisition``).
    """

    def __init__(self, space: SearchSpace, objective: str, maximize: bool, seed: int, initial_experiments: int,
                 num_restarts: int = 8, raw_samples: int = 256, *, objectives: Sequence[Any] | None = None,
                 outcome_constraints: Sequence[Any] = (), prior_data: Sequence[tuple[Mapping[str, Any],
                 Mapping[str, float]]] = (), prior_mean: Any = None, kernel: str = "matern",
                 acquisition: str = "qLogEI", emulate_prior: bool = True) -> None:
        self.space, self.seed = space, seed
        self.objectives = list(objectives) if objectives else [
            Objective(name=objective, direction="maximize" if maximize else "minimize")]
        self.objective, self.maximize = self.objectives[0].name, self.objectives[0].direction == "maximize"
        self.outcome_constraints = list(outcome_constraints)
        self.prior_data, self.prior_mean = list(prior_data), prior_mean
        self.prior = None
        if prior_mean is not None:
            # the prior mean's emulator and fit need scipy: loaded only for a campaign that has one
            from orchestrator.planning.unit_prior import UnitPrior

            self.prior = UnitPrior(space, prior_mean, self.objective, emulate_prior, seed)
        self.initial_experiments = initial_experiments
        self.num_restarts, self.raw_samples = num_restarts, raw_samples
        self.kernel = kernel  # one of surrogates.KERNELS
        self.acquisition = acquisition  # one of acquisition_registry.ACQUISITIONS

    def suggest(self, observations: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]],
                pending: Sequence[Mapping[str, Any]], n: int, n_proposed: int, *,
                failed: Sequence[Mapping[str, Any]] = (),
                uncertainty: Sequence[Mapping[str, float] | None] | None = None) -> list[Suggestion]:
        """``n`` proposals given measured ``observations`` (params, values) and ``pending`` params.

        ``n_proposed`` counts every experiment proposed so far (failed ones included): it
        is the position in the Sobol design. ``failed``: params of experiments that failed
        for a chemical reason (learned as infeasible; instrument faults are not passed).
        ``uncertainty``: per observation, ``{output: sd}`` reported by the instrument, or None.
        """
        if n_proposed < self.initial_experiments or len(observations) < 2:
            return self.initial_design(n_proposed, n)
        # torch, gpytorch and botorch load here, with the first model-based proposal
        from orchestrator.planning.proposal import propose

        proposals = propose(self, observations, pending, n, n_proposed, failed, uncertainty)
        return [Suggestion(params, info) for params, info in proposals]

    def initial_design(self, start: int, n: int) -> list[Suggestion]:
        """Points ``start .. start+n-1`` of the feasible subsequence of a scrambled Sobol sequence.

        Rows are mapped by ``SearchSpace.design_points`` (which meets equality constraints
        exactly by solving for pivot coordinates), snapped, and kept when every constraint
        holds (rejection for inequalities, linear or not). The sequence depends only on the
        seed, so a design is the same however it is split into batches.
        """
        points = initial_points(self.space, self.seed, start + n)
        info = {"strategy": "sobol", "seed": self.seed}
        return [Suggestion(points[i], {**info, "design_index": i}) for i in range(start, start + n)]

    @functools.cached_property
    def optimizer(self) -> Any:
        """The ``optimizer.AcquisitionOptimizer`` over this planner's space, restarts and raw points."""
        # torch and botorch load here, when a proposal first optimises an acquisition
        from orchestrator.planning.optimizer import AcquisitionOptimizer

        return AcquisitionOptimizer(self.space, self.num_restarts, self.raw_samples)
