"""The campaign file's sections about the search and its bookkeeping: budget, objectives, stopping,
warm start, prior mean, planner settings, store and approval; each validated on its own."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import AliasChoices, Field, PositiveInt, field_validator, model_validator

from orchestrator.planning.acquisition_registry import ACQUISITIONS, DEFAULT_ACQUISITION, describe_choices
from orchestrator.spec.base import IDENTIFIER, SLUG, StrictModel
from orchestrator.spec.goal import goal_score
from orchestrator.spec.limits import MAX_CALIBRATED, MAX_EXPERIMENTS

AcquisitionName = Literal[ACQUISITIONS]  # the registry's names: a new acquisition is added there only


class Budget(StrictModel):
    experiments: PositiveInt = Field(description="total number of experiments")
    batch_size: PositiveInt = Field(description="experiments per iteration (one plate batch)")

    @field_validator("experiments")
    @classmethod
    def _few_enough_experiments(cls, experiments: int) -> int:
        if experiments > MAX_EXPERIMENTS:
            raise ValueError(
                f"{experiments} experiments are more than the {MAX_EXPERIMENTS:,} a campaign takes: the planner's "
                "Gaussian process is exact over every measured experiment, with an n x n matrix of 8 n^2 bytes "
                f"(3.2 GB at {MAX_EXPERIMENTS:,}, 80 GB at 100,000) factored in a time that grows with n^3 before "
                f"each proposal; set at most {MAX_EXPERIMENTS}"
            )
        return experiments

    @model_validator(mode="after")
    def _batch_fits(self) -> "Budget":
        if self.batch_size > self.experiments:
            raise ValueError(
                f"batch_size {self.batch_size} exceeds experiments {self.experiments}; "
                "raise experiments or lower batch_size"
            )
        return self


class Objective(StrictModel):
    """What to optimise: a ``direction``, or a ``target`` value to get as close to as possible.

    ``reference`` is this objective's coordinate of the hypervolume reference point when
    there are several objectives (for a target objective: the largest acceptable distance
    ``|y - target|``); left out, it is inferred from the data (see ``orchestrator.planning.acquisition``).
    """

    name: str = Field(pattern=IDENTIFIER)
    direction: Literal["minimize", "maximize"] | None = None
    target: float | None = None
    reference: float | None = None

    @model_validator(mode="after")
    def _direction_or_target(self) -> "Objective":
        if self.target is not None and not math.isfinite(self.target):
            raise ValueError(f"objective {self.name!r}: target must be a finite number")
        if (self.direction is None) == (self.target is None):
            raise ValueError(
                f"objective {self.name!r} needs exactly one of 'direction: minimize|maximize' or 'target: VALUE'"
            )
        return self

    def score(self, value: float) -> float:
        """``value`` turned into "higher is better": y, -y, or -|y - target|."""
        return goal_score(self.direction, self.target, value)

    @property
    def goal(self) -> str:
        """How the objective is optimised, for tables and plot labels: 'minimize', 'maximize' or 'target 520'."""
        return self.direction if self.target is None else f"target {self.target:g}"


class StopAtTarget(StrictModel):
    """Stop once the best measured ``objective`` reaches ``value`` (for a target objective:
    once some ``|y - target|`` is at most ``value``)."""

    objective: str
    value: float


class StopWithoutImprovement(StrictModel):
    """Stop when the expected improvement (in the objective's units; hypervolume units with
    several objectives) of each of the last ``patience`` model-based batches is below
    ``max_expected_improvement``."""

    max_expected_improvement: float = Field(gt=0)
    patience: PositiveInt = 2


class Stopping(StrictModel):
    """When a campaign is done: budget spent, target reached, or no expected improvement left."""

    budget: bool = True
    target: StopAtTarget | None = None
    no_improvement: StopWithoutImprovement | None = None


#: ``scheme://user:password@host`` or a ``password=`` query argument: a URL that holds a secret
_PASSWORD_IN_URL = re.compile(r"^[^:/?#]+://[^/?#@]*:[^/?#@]*@|[?&]password=", re.IGNORECASE)


def no_password(url: str | None) -> str | None:
    """``url`` unchanged, or a ``ValueError`` when it holds a password: a campaign file is stored with its campaign,
    exported in bundles and kept by Prefect as a flow parameter, so it must hold no secret."""
    if url is not None and _PASSWORD_IN_URL.search(url):
        raise ValueError("the URL holds a password, which would be kept with the campaign file (in the store, bundles "
                         "and Prefect); leave it out and set PGPASSWORD or ~/.pgpass, or pass the URL with --store")
    return url


class WarmStart(StrictModel):
    """Learn from an earlier campaign's measured experiments.

    ``store``: its SQLAlchemy URL (default: this campaign's store). ``fill``: values for
    parameters of this campaign that the earlier one did not have.
    """

    campaign: str = Field(pattern=SLUG)
    store: str | None = None
    fill: dict[str, float | int | str] = {}

    _no_password = field_validator("store")(no_password)


class PriorMeanSpec(StrictModel):
    """A mechanistic model as the GP's prior mean: the GP learns ``y - f(x)``.

    ``model`` (``simulator`` in older files, still read) names a model in
    ``orchestrator.planning.prior_mean.PRIOR_MEANS`` or a plugin in the
    ``sdl.prior_means`` entry-point group, whose factory takes ``settings`` and returns
    ``f(params) -> {objective: value}``. ``emulate: false`` calls the
    model at every point the planner asks about instead of through its emulator
    (``orchestrator.planning.unit_prior.UnitPrior``): exact, and slow for a model that takes milliseconds.
    ``calibrate: {setting: [low, high]}`` makes it a hybrid model: those settings of the model
    (e.g. a temperature offset [K] at a larger scale) are fitted to this campaign's measurements
    before each proposal (``orchestrator.planning.prior_mean.CalibratedModel``).
    """

    model: str = Field(validation_alias=AliasChoices("model", "simulator"))
    settings: dict[str, Any] = {}
    emulate: bool = True
    calibrate: dict[str, tuple[float, float]] = Field(default={}, max_length=MAX_CALIBRATED)


class PlannerSettings(StrictModel):
    """``planner:``, how the optimiser (``orchestrator.planning.planner.Planner``) proposes."""

    initial_experiments: PositiveInt | None = Field(
        default=None, description="Sobol design size; default 2(d+1) for d parameters, at most a third of the "
        "budget, in whole batches (at least one)")
    num_restarts: PositiveInt = Field(default=8, le=64, description="optimiser starts per proposal")
    raw_samples: PositiveInt = Field(default=256, le=8192, description="random points the starts are chosen from")
    kernel: Literal["auto", "rbf", "matern"] = Field(
        default="auto", description="the GP's covariance: matern (Matern 5/2 with a Gamma lengthscale prior), rbf "
        "(BoTorch's, with its LogNormal prior), or auto: matern, rbf with warm_start or prior_mean; see "
        "orchestrator/planning/surrogates.py")
    acquisition: AcquisitionName = Field(
        default=DEFAULT_ACQUISITION, description=f"for one objective that nothing constrains: {describe_choices()}; "
        "see orchestrator/planning/acquisition.py")


class Store(StrictModel):
    url: str | None = None

    _no_password = field_validator("url")(no_password)


class Approval(StrictModel):
    """When a person must approve a batch before the robot makes it.

    ``each_batch``: every batch. ``on_anomaly``: a batch that follows a batch with a failed
    experiment. The flow pauses (Prefect pause-for-input) for at most ``timeout_hours``;
    without a decision by then the batch is not made and the run stops (``sdl resume`` asks again).
    """

    mode: Literal["none", "each_batch", "on_anomaly"] = "none"
    timeout_hours: float = Field(default=16.0, gt=0, le=24 * 14)
    poll_seconds: float = Field(default=5.0, gt=0, le=600)
