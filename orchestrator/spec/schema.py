"""The campaign YAML as pydantic v2 models: what a scientist writes, validated.

Every validator's message says what is wrong and how to fix it; ``orchestrator.spec.loader``
turns pydantic's errors into one line per problem with the field path.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from instruments.opentrons.deck import WELLS_PER_PLATE
from instruments.registry import DRIVERS, check_driver_name
from orchestrator.planning.constraints import (
    Constraint, ConstraintSyntaxError, LinearConstraint, parse_constraint, parse_linear_constraint,
)
from simulators.registry import SIMULATORS

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# Sizes past which the planner's time or memory runs away (found by probing: 30,000 categories asked
# numpy for 6.7 GiB, six objectives' hypervolume ran out of memory); no lab campaign comes near them.
MAX_CATEGORIES = 100  # values of one categorical parameter (each one model dimension)
MAX_LEVELS = 1000  # levels of one discrete parameter
MAX_OBJECTIVES = 4  # the hypervolume's cost grows steeply with the number of objectives
MAX_SNAPPED = 12  # integer or discrete parameters in constraints: 2**12 roundings are tried at most
MAX_CONSTRAINTS = 50  # each is checked at every candidate point (200 took minutes per proposal)
MAX_OUTCOME_CONSTRAINTS = 16  # each outcome is one more GP to fit (200 took minutes per proposal)
MAX_CALIBRATED = 10  # settings fitted to the data: the search and its curvature grow with their square
MAX_READING_MS = 600_000  # one well's scans, integration time x averages: 10 min


class CrossFieldProblems(ValueError):
    """Several problems found across fields; each line already names its field path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Parameter(_Strict):
    """One input of the experiment.

    Kinds (``type``):
      * ``continuous``: ``bounds: [lower, upper]``; ``scale: log`` (bounds > 0) makes the
        planner search ``log(x)``; proposals are always in user units.
      * ``integer``: ``bounds``, proposals are whole numbers; ``scale: log`` allowed.
      * ``discrete``: numeric ``values: [0.5, 1, 2, 5]``; proposals are exactly one level.
        ``bounds`` is filled in as ``[min, max]`` of the levels.
      * ``categorical``: ``values`` (names or numbers), one-hot in the planner.
      * ``fixed``: ``value: 25``; recorded with every experiment, never searched.
    Any kind can be held fixed with ``fixed: true`` and a ``value`` inside its domain.
    """

    name: str = Field(pattern=IDENTIFIER)
    type: Literal["continuous", "integer", "discrete", "categorical", "fixed"]
    bounds: tuple[float, float] | None = None
    values: list[str | int | float] | None = None
    value: str | int | float | None = None
    fixed: bool = False
    scale: Literal["linear", "log"] = "linear"
    unit: str | None = None

    @model_validator(mode="after")
    def _check_domain(self) -> "Parameter":
        if self.type == "fixed":
            return self._check_fixed_type()
        if self.type == "categorical":
            self._check_categorical()
        elif self.type == "discrete":
            self._check_discrete()
        else:
            self._check_bounds()
        if self.scale == "log":
            self._check_log_scale()
        if self.fixed:
            if self.value is None:
                raise ValueError("a parameter with 'fixed: true' needs 'value: ...' inside its domain")
            self._check_value_in_domain()
        elif self.value is not None:
            raise ValueError("'value' is only for fixed parameters; add 'fixed: true' or remove 'value'")
        return self

    def _check_fixed_type(self) -> "Parameter":
        if self.value is None:
            raise ValueError("a fixed parameter needs 'value: ...' (a number or a name)")
        if isinstance(self.value, float) and not math.isfinite(self.value):
            raise ValueError("a fixed parameter's value must be finite")
        if self.values is not None:
            raise ValueError("a fixed parameter takes 'value', not 'values'; remove 'values'")
        if self.scale != "linear":
            raise ValueError("'scale' is for continuous, integer or discrete parameters; remove it")
        point = (float(self.value), float(self.value)) if self.is_numeric else None
        if self.bounds is not None and self.bounds != point:  # a re-validated spec carries the filled-in bounds
            raise ValueError("a fixed parameter takes 'value', not 'bounds'; remove 'bounds'")
        object.__setattr__(self, "bounds", point)
        return self

    def _check_categorical(self) -> None:
        if not self.values or len(self.values) < 2:
            raise ValueError("a categorical parameter needs 'values': a list of at least two choices "
                             "(use type: fixed for a single value)")
        if self.bounds is not None:
            raise ValueError("a categorical parameter takes 'values', not 'bounds'; remove 'bounds'")
        if len(self.values) > MAX_CATEGORIES:
            raise ValueError(f"{len(self.values)} categorical values are more than the planner takes "
                             f"({MAX_CATEGORIES}, one model dimension each); group or pre-screen them")
        if len(set(map(str, self.values))) != len(self.values):
            raise ValueError("'values' has duplicates; list each choice once")
        if self.scale != "linear":
            raise ValueError("'scale' is for continuous, integer or discrete parameters; remove it")

    def _check_discrete(self) -> None:
        if not self.values or len(self.values) < 2:
            raise ValueError("a discrete parameter needs 'values': a list of at least two numbers "
                             "(use type: fixed for a single value)")
        if len(self.values) > MAX_LEVELS:
            raise ValueError(f"{len(self.values)} discrete levels are more than {MAX_LEVELS}; "
                             "use type: continuous or integer for a fine grid")
        if any(isinstance(v, (bool, str)) or not math.isfinite(float(v)) for v in self.values):
            raise ValueError("a discrete parameter's 'values' must all be finite numbers; "
                             "use type: categorical for names")
        if len(set(float(v) for v in self.values)) != len(self.values):
            raise ValueError("'values' has duplicates; list each level once")
        span = (float(min(self.values)), float(max(self.values)))
        if self.bounds is not None and tuple(self.bounds) != span:  # a re-validated spec carries the filled-in bounds
            raise ValueError("a discrete parameter takes 'values', not 'bounds'; remove 'bounds'")
        object.__setattr__(self, "bounds", span)

    def _check_bounds(self) -> None:
        if self.bounds is None:
            raise ValueError(f"a {self.type} parameter needs 'bounds: [lower, upper]'")
        if self.values is not None:
            raise ValueError(f"a {self.type} parameter takes 'bounds', not 'values'; remove 'values'")
        lower, upper = self.bounds
        if not (math.isfinite(lower) and math.isfinite(upper)):
            raise ValueError("bounds must be finite numbers, not .inf or .nan; write [lower, upper] with two numbers")
        if not math.isfinite(upper - lower):
            raise ValueError(f"bounds [{lower:g}, {upper:g}] are too far apart to compute with; narrow them")
        if lower >= upper:
            raise ValueError(f"lower bound {lower:g} is not below upper bound {upper:g}; write [lower, upper]")
        if self.type == "integer" and math.ceil(lower) > math.floor(upper):
            raise ValueError(f"bounds [{lower:g}, {upper:g}] contain no integer; widen them")

    def _check_log_scale(self) -> None:
        if self.bounds[0] <= 0:
            raise ValueError(f"scale: log needs values above 0, but the lowest is {self.bounds[0]:g}; "
                             "raise it or use scale: linear")

    def _check_value_in_domain(self) -> None:
        value = self.value
        if self.type == "categorical":
            if str(value) not in map(str, self.values):
                raise ValueError(f"fixed value {value!r} is not one of 'values'; pick one of them")
            return
        if isinstance(value, (bool, str)):
            raise ValueError(f"fixed value {value!r} of a {self.type} parameter must be a number")
        lower, upper = self.bounds
        if not lower <= float(value) <= upper:
            raise ValueError(f"fixed value {value:g} is outside bounds [{lower:g}, {upper:g}]; move it inside")
        if self.type == "integer" and float(value) != round(float(value)):
            raise ValueError(f"fixed value {value:g} of an integer parameter must be a whole number")
        if self.type == "discrete" and float(value) not in {float(v) for v in self.values}:
            raise ValueError(f"fixed value {value:g} is not one of the discrete 'values'; pick one of them")

    @property
    def is_numeric(self) -> bool:
        """True for numbers: continuous, integer, discrete, and fixed with a numeric value."""
        if self.type == "fixed":
            return isinstance(self.value, (int, float)) and not isinstance(self.value, bool)
        return self.type != "categorical"

    @property
    def is_fixed(self) -> bool:
        """Recorded with every experiment, never searched."""
        return self.type == "fixed" or self.fixed

    @property
    def is_log(self) -> bool:
        return self.scale == "log"


class Budget(_Strict):
    experiments: PositiveInt = Field(description="total number of experiments")
    batch_size: PositiveInt = Field(description="experiments per iteration (one plate batch)")

    @model_validator(mode="after")
    def _batch_fits(self) -> "Budget":
        if self.batch_size > self.experiments:
            raise ValueError(
                f"batch_size {self.batch_size} exceeds experiments {self.experiments}; "
                "raise experiments or lower batch_size"
            )
        return self


class Objective(_Strict):
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
        if self.target is not None:
            return -abs(float(value) - self.target)
        return float(value) if self.direction == "maximize" else -float(value)

    @property
    def goal(self) -> str:
        """How the objective is optimised, for tables and plot labels: 'minimize', 'maximize' or 'target 520'."""
        return self.direction if self.target is None else f"target {self.target:g}"


class StopAtTarget(_Strict):
    """Stop once the best measured ``objective`` reaches ``value`` (for a target objective:
    once some ``|y - target|`` is at most ``value``)."""

    objective: str
    value: float


class StopWithoutImprovement(_Strict):
    """Stop when the expected improvement (in the objective's units; hypervolume units with
    several objectives) of each of the last ``patience`` model-based batches is below
    ``max_expected_improvement``."""

    max_expected_improvement: float = Field(gt=0)
    patience: PositiveInt = 2


class Stopping(_Strict):
    """When a campaign is done: budget spent, target reached, or no expected improvement left."""

    budget: bool = True
    target: StopAtTarget | None = None
    no_improvement: StopWithoutImprovement | None = None


class WarmStart(_Strict):
    """Learn from an earlier campaign's measured experiments.

    ``store``: its SQLAlchemy URL (default: this campaign's store). ``fill``: values for
    parameters of this campaign that the earlier one did not have.
    """

    campaign: str = Field(pattern=SLUG)
    store: str | None = None
    fill: dict[str, float | int | str] = {}


class PriorMeanSpec(_Strict):
    """A mechanistic model as the GP's prior mean: the GP learns ``y - f(x)``.

    ``simulator`` names a model in ``orchestrator.planning.prior_mean.PRIOR_MEANS`` or a plugin in the
    ``sdl.prior_means`` entry-point group, whose factory takes ``settings`` and returns
    ``f(params) -> {objective: value}``. ``emulate: false`` calls the
    model at every point the planner asks about instead of through its emulator
    (``orchestrator.planning.prior_mean.UnitPrior``): exact, and slow for a model that takes milliseconds.
    ``calibrate: {setting: [low, high]}`` makes it a hybrid model: those settings of the model
    (e.g. a temperature offset [K] at a larger scale) are fitted to this campaign's measurements
    before each proposal (``orchestrator.planning.prior_mean.CalibratedModel``).
    """

    simulator: str
    settings: dict[str, Any] = {}
    emulate: bool = True
    calibrate: dict[str, tuple[float, float]] = Field(default={}, max_length=MAX_CALIBRATED)


class Reagent(_Strict):
    """A stock in the reservoir: which well it sits in and how much is there [uL]."""

    well: str = Field(pattern=r"^[A-P](?:[1-9]|1[0-9]|2[0-4])$")
    stock_ul: float = Field(gt=0)


class Labware(_Strict):
    """Opentrons labware load names; unset ones take the robot type's defaults."""

    plate: str | None = None
    reservoir: str | None = None
    tiprack_small: str | None = None
    tiprack_large: str | None = None


class LiquidHandler(_Strict):
    """Which robot, and how parameters become volumes in a well.

    Each key of ``reagents`` is a parameter whose value is the volume [uL] of that stock;
    ``diluent`` fills every well up to ``fill_volume_ul``.
    """

    driver: str
    host: str | None = Field(default=None, description="robot address, for real drivers")
    port: int = Field(default=31950, ge=1, le=65535, description="robot HTTP API port, for real drivers")
    fill_volume_ul: float = Field(gt=0)
    well_capacity_ul: float = Field(default=360.0, gt=0)
    diluent: Reagent | None = None
    reagents: dict[str, Reagent]
    labware: Labware = Labware()
    lock: str | None = Field(default=None, max_length=80,
                             description="name of the physical robot; campaigns naming the same one never use it at once")
    run_timeout_s: float | None = Field(
        default=None, gt=0, description="most one robot run may take [s], for real drivers; unset: 60 s per "
                                        "transfer of the batch, at least 1 h")

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, name: str) -> str:
        return _known_driver(name, "liquid_handler")

    @field_validator("host")
    @classmethod
    def _bare_host(cls, host: str | None) -> str | None:
        """An address or name only: the driver adds the scheme, and the port is its own field."""
        if host is None:
            return host
        bare = host.split("://", 1)[-1].split("/", 1)[0]
        name, _, port = bare.partition(":")
        if bare != host or port:
            fix = f"host: {name}" + (f" and port: {port}" if port else "")
            raise ValueError(f"host {host!r} must be the robot's address alone; write {fix}")
        return host

    @model_validator(mode="after")
    def _fits_well(self) -> "LiquidHandler":
        if self.fill_volume_ul > self.well_capacity_ul:
            raise ValueError(
                f"fill_volume_ul {self.fill_volume_ul:g} exceeds well_capacity_ul {self.well_capacity_ul:g}; lower it"
            )
        return self


class Spectrometer(_Strict):
    """Which spectrometer, how it reads, and how its dark and blank reach the beam.

    ``integration_time_ms`` [ms] and ``averages`` (scans averaged in software) set each read.
    Dark and reference spectra are retaken when older than ``dark_every_s`` / ``reference_every_s``
    [s] and whenever the integration time changes. ``dark`` says how the light is blocked for a
    dark spectrum: ``shutter`` (the spectrometer's shutter) or ``lamp`` (its light source off);
    ``manual`` (a person covers the light path) is refused, as campaigns run unattended.
    ``blank_well`` is the well of every plate that holds the blank, read as the reference.
    """

    driver: str
    serial: str | None = None
    lock: str | None = Field(default=None, max_length=80,
                             description="name of the physical spectrometer; campaigns naming the same one never use it at once")
    wavelength_range_nm: tuple[float, float] = (400.0, 700.0)
    integration_time_ms: float = Field(default=100.0, gt=0, le=MAX_READING_MS)
    averages: PositiveInt = Field(default=1, le=1000, description="scans averaged into one reading")
    dark_every_s: float = Field(default=600.0, gt=0)
    reference_every_s: float = Field(default=1800.0, gt=0)
    dark: Literal["shutter", "lamp", "manual"] = "shutter"
    blank_well: str | None = Field(default=None, pattern=r"^[A-H](?:[1-9]|1[0-2])$")

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, name: str) -> str:
        return _known_driver(name, "spectrometer")

    @field_validator("wavelength_range_nm")
    @classmethod
    def _ordered_range(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        if not 0 < bounds[0] < bounds[1]:
            raise ValueError(f"[{bounds[0]:g}, {bounds[1]:g}] nm: give [shortest, longest], both above 0")
        return bounds

    @field_validator("dark")
    @classmethod
    def _unattended_dark(cls, how: str) -> str:
        if how == "manual":
            raise ValueError("dark: manual needs a person to cover the light path before every dark spectrum, "
                             "and campaigns run unattended; use dark: shutter or dark: lamp")
        return how

    @model_validator(mode="after")
    def _reading_time(self) -> "Spectrometer":
        scans_ms = self.integration_time_ms * self.averages
        if scans_ms > MAX_READING_MS:
            raise ValueError(f"integration_time_ms x averages is {scans_ms / 60_000:g} min per well; at most "
                             f"{MAX_READING_MS / 60_000:g} min: "
                             "lower averages or the integration time")
        return self


class Instruments(_Strict):
    liquid_handler: LiquidHandler
    spectrometer: Spectrometer


class Simulation(_Strict):
    """The simulator model behind the dry run, its settings and its noise."""

    model: str
    settings: dict[str, Any] = {}
    noise: dict[str, float] = {}
    faults: dict[str, float] = Field(default={}, description="fault name -> probability (simulators.faults)")
    timing: Literal["instant", "realistic"] = Field(
        default="instant", description="instant never sleeps; realistic sleeps each simulated duration x time_scale")
    time_scale: float = Field(default=1.0, ge=0, le=1, description="factor on realistic sleeps (0.05: 20x faster)")

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if name not in SIMULATORS:
            raise ValueError(f"unknown simulator {name!r}; use one of: {', '.join(sorted(SIMULATORS))}")
        return name

    @field_validator("faults")
    @classmethod
    def _known_faults(cls, rates: dict[str, float]) -> dict[str, float]:
        from simulators.faults import check_rates

        return check_rates(rates)


class SpectralTarget(_Strict):
    """The target spectrum: the one a mixture gives in the simulator, or a CSV file."""

    mixture: dict[str, float] | None = None
    csv: str | None = Field(default=None, description="file with columns wavelength_nm,absorbance")

    @model_validator(mode="after")
    def _exactly_one(self) -> "SpectralTarget":
        if (self.mixture is None) == (self.csv is None):
            raise ValueError("give exactly one of 'mixture' (volumes in uL) or 'csv' (a file)")
        return self


class Analysis(_Strict):
    """How one objective, or one outcome of an outcome constraint, is computed from a measured spectrum (see
    ``orchestrator.run.spectra_analysis``); ``objective`` names it.

    ``spectral_rmse`` needs ``target``. ``peak_wavelength`` [nm], ``peak_width`` (FWHM [nm])
    and ``peak_intensity`` take the highest peak inside ``window_nm`` after Gaussian smoothing
    (``smoothing_nm``, sigma [nm]); ``target_peak_nm`` (peak_wavelength only, implied when
    ``kind`` is left out) makes the objective ``|peak - target_peak_nm| + width_weight * FWHM``.
    ``max_reading`` is the highest smoothed value inside ``window_nm`` (e.g. for ``absorbance <= 2``).
    """

    objective: str
    kind: Literal["spectral_rmse", "peak_wavelength", "peak_width", "peak_intensity", "max_reading"] = "spectral_rmse"
    target: SpectralTarget | None = None
    target_peak_nm: float | None = Field(default=None, gt=0)
    width_weight: float = Field(default=0.0, ge=0, description="nm of objective per nm of FWHM")
    window_nm: tuple[float, float] | None = None
    smoothing_nm: float = Field(default=4.0, ge=0)
    min_prominence: float | None = Field(default=None, gt=0, description="in the reading's units (AU, counts)")

    @model_validator(mode="before")
    @classmethod
    def _peak_target_implies_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("target_peak_nm") is not None and "kind" not in data:
            return {**data, "kind": "peak_wavelength"}
        return data

    @model_validator(mode="after")
    def _settings_fit_kind(self) -> "Analysis":
        if self.kind == "spectral_rmse" and self.target is None:
            raise ValueError("kind spectral_rmse needs 'target' (a mixture in uL or a csv file)")
        if self.kind != "spectral_rmse" and self.target is not None:
            raise ValueError(f"'target' is only for kind spectral_rmse, not {self.kind}; "
                             "to aim at a peak position use target_peak_nm")
        if self.target_peak_nm is not None and self.kind != "peak_wavelength":
            raise ValueError(f"target_peak_nm only applies to kind peak_wavelength, not {self.kind}")
        if self.width_weight > 0 and self.target_peak_nm is None:
            raise ValueError("width_weight needs target_peak_nm (it adds weight x FWHM to |peak - target|)")
        if self.window_nm is not None:
            lo, hi = self.window_nm
            if not lo < hi:
                raise ValueError(f"window_nm [{lo:g}, {hi:g}]: the start must be below the end")
            if self.target_peak_nm is not None and not lo <= self.target_peak_nm <= hi:
                raise ValueError(f"target_peak_nm {self.target_peak_nm:g} is outside window_nm [{lo:g}, {hi:g}]; "
                                 "widen the window or move the target")
        return self


class Planner(_Strict):
    initial_experiments: PositiveInt | None = Field(default=None, description="Sobol design size")
    num_restarts: PositiveInt = Field(default=8, le=64, description="optimiser starts per proposal")
    raw_samples: PositiveInt = Field(default=256, le=8192, description="random points the starts are chosen from")
    kernel: Literal["auto", "rbf", "matern"] = Field(
        default="auto", description="the GP's covariance: matern (Matern 5/2 with a Gamma lengthscale prior), rbf "
        "(BoTorch's, with its LogNormal prior), or auto: matern, rbf with warm_start or prior_mean; see "
        "orchestrator/planning/surrogates.py")
    acquisition: Literal["qLogEI", "qLogNEI"] = Field(
        default="qLogEI", description="for one objective that nothing constrains: qLogEI (the best predicted value "
        "so far as the incumbent) or qLogNEI (a sampled incumbent); see orchestrator/planning/acquisition.py")


class Store(_Strict):
    url: str | None = None


class Approval(_Strict):
    """When a person must approve a batch before the robot makes it.

    ``each_batch``: every batch. ``on_anomaly``: a batch that follows a batch with a failed
    experiment. The flow pauses (Prefect pause-for-input) for at most ``timeout_hours``;
    without a decision by then the batch is not made and the run stops (``sdl resume`` asks again).
    """

    mode: Literal["none", "each_batch", "on_anomaly"] = "none"
    timeout_hours: float = Field(default=16.0, gt=0, le=24 * 14)
    poll_seconds: float = Field(default=5.0, gt=0, le=600)


class CampaignSpec(_Strict):
    """A whole campaign file."""

    name: str = Field(pattern=SLUG, max_length=120)
    description: str = ""
    seed: int = Field(default=0, ge=0, lt=2**32)
    budget: Budget
    parameters: list[Parameter] = Field(min_length=1)
    constraints: list[str] = Field(default=[], max_length=MAX_CONSTRAINTS)
    objectives: list[Objective] = Field(min_length=1, max_length=MAX_OBJECTIVES)
    outcome_constraints: list[str] = Field(default=[], max_length=MAX_OUTCOME_CONSTRAINTS)
    stopping: Stopping = Stopping()
    warm_start: WarmStart | None = None
    prior_mean: PriorMeanSpec | None = None
    instruments: Instruments | None = None
    simulation: Simulation | None = None
    analysis: list[Analysis] = []
    planner: Planner = Planner()
    store: Store = Store()
    approval: Approval = Approval()

    @field_validator("approval", mode="before")
    @classmethod
    def _approval_shorthand(cls, value: Any) -> Any:
        """``approval: each_batch`` is short for ``approval: {mode: each_batch}``."""
        return {"mode": value} if isinstance(value, str) else value

    @field_validator("parameters")
    @classmethod
    def _unique_parameters(cls, parameters: list[Parameter]) -> list[Parameter]:
        _require_unique([p.name for p in parameters], "parameter")
        return parameters

    @field_validator("objectives")
    @classmethod
    def _unique_objectives(cls, objectives: list[Objective]) -> list[Objective]:
        _require_unique([o.name for o in objectives], "objective")
        return objectives

    @model_validator(mode="after")
    def _cross_checks(self) -> "CampaignSpec":
        problems = self._constraint_problems() + self._instrument_problems() + self._analysis_problems()
        if self.budget.batch_size > WELLS_PER_PLATE:  # also without instruments: the planner's batch limit
            problems.append(f"budget.batch_size: {self.budget.batch_size} wells do not fit one {WELLS_PER_PLATE}-well "
                            f"plate; use at most {WELLS_PER_PLATE}")
        problems += self._objective_problems() + self._simulation_problems()
        if problems:
            raise CrossFieldProblems(problems)
        return self

    def _simulation_problems(self) -> list[str]:
        """The dry run's model must simulate every reagent the robot pipettes and cover the spectrometer's range.

        A reagent the model does not know would be pipetted and have no effect on any spectrum, so
        every dry-run experiment would fail as "nothing formed"; a model grid short of the
        spectrometer's range puts every peak beyond it at the grid's edge.
        """
        if self.simulation is None or self.instruments is None:
            return []
        from simulators.registry import build_simulator

        try:
            model = build_simulator(self.simulation.model, self.simulation.settings, self.simulation.noise)
        except (TypeError, ValueError, KeyError) as err:
            return [f"simulation: the {self.simulation.model} model refuses its settings or noise: {err}; "
                    f"see simulators/{self.simulation.model}.py for what they mean"]
        problems = []
        parameters = {p.name for p in self.parameters}  # a reagent that is no parameter has its own problem
        unknown = [r for r in self.instruments.liquid_handler.reagents if r in parameters and r not in model.reagents]
        if unknown:
            problems.append(f"simulation: the {self.simulation.model} model knows no reagent {', '.join(unknown)} "
                            f"(it simulates {', '.join(model.reagents)}), so a dry run would see no effect of it; "
                            f"describe it in simulation.settings (see simulators/{self.simulation.model}.py) or "
                            "remove the simulation section if this file never runs dry")
        grid = getattr(model, "wavelengths_nm", None)
        shortest, longest = self.instruments.spectrometer.wavelength_range_nm
        if grid is not None and (grid.min() > shortest or grid.max() < longest):
            problems.append(f"simulation: the {self.simulation.model} model's wavelengths [{grid.min():g}, "
                            f"{grid.max():g}] nm do not cover the spectrometer's wavelength_range_nm [{shortest:g}, "
                            f"{longest:g}]; widen the model's wavelength grid in simulation.settings")
        return problems

    def _objective_problems(self) -> list[str]:
        """Outcome constraints, stopping rules and warm start checked against the objectives and parameters."""
        objectives = {o.name for o in self.objectives}
        parameters = {p.name for p in self.parameters}
        problems = []
        for i, text in enumerate(self.outcome_constraints):
            try:
                parsed = parse_linear_constraint(text)
            except ConstraintSyntaxError as err:
                problems.append(f"outcome_constraints[{i}] {text!r}: {err}; write e.g. 'absorbance <= 2'")
                continue
            if parsed.op == "==":
                problems.append(f"outcome_constraints[{i}] {text!r}: a measured outcome cannot be held equal; "
                                "use <= or >=")
            clash = sorted(set(parsed.coefficients) & (objectives | parameters))
            if clash:
                problems.append(f"outcome_constraints[{i}] {text!r} names {', '.join(clash)}, an objective or "
                                "parameter; outcome constraints are on other measured outputs (e.g. absorbance)")
        target = self.stopping.target
        if target is not None and target.objective not in objectives:
            problems.append(f"stopping.target.objective {target.objective!r} is not an objective; "
                            f"use one of: {', '.join(sorted(objectives))}")
        if self.warm_start is not None and self.warm_start.campaign == self.name:
            problems.append("warm_start.campaign names this campaign; name an earlier campaign")
        if self.prior_mean is not None:
            problems += self._prior_mean_problems()
        return problems

    def _prior_mean_problems(self) -> list[str]:
        """The prior mean's name, the plugin's import and the factory's check of its settings, then one call
        of the model at the middle of the parameter box (``prior_mean.call_problems``)."""
        import numpy as np

        from orchestrator.errors import SpecError
        from orchestrator.planning.prior_mean import call_problems, prior_mean_for
        from orchestrator.planning.space import SearchSpace

        spec = self.prior_mean
        try:
            model = prior_mean_for(spec.simulator, spec.settings, spec.calibrate)
        except SpecError as error:
            return error.problems
        space = SearchSpace(self.parameters)
        return call_problems(spec.simulator, model, space.from_unit(np.full(space.dim, 0.5)),
                             [o.name for o in self.objectives] + self.outcome_names())

    def parsed_outcome_constraints(self) -> list[LinearConstraint]:
        """Every outcome constraint, parsed."""
        return [parse_linear_constraint(text) for text in self.outcome_constraints]

    def outcome_names(self) -> list[str]:
        """Measured outputs named in outcome constraints (not objectives), in order of appearance."""
        names: list[str] = []
        for constraint in self.parsed_outcome_constraints():
            names += [n for n in constraint.coefficients if n not in names]
        return names

    def _constraint_problems(self) -> list[str]:
        """Each constraint parses, names numeric parameters, and (for ``==``) only continuous linear-scale ones.

        An equality cannot survive rounding, so integer, discrete and log-scale parameters
        are refused in equalities rather than silently repaired.
        """
        by_name = {p.name: p for p in self.parameters if p.is_numeric}
        problems, snapped = [], set()
        if all(p.is_fixed for p in self.parameters):  # the search space itself, checked with its constraints
            problems.append("parameters: every parameter is fixed, so there is nothing to search; "
                            "leave at least one parameter free")
        for i, text in enumerate(self.constraints):
            try:
                parsed = parse_constraint(text)
            except ConstraintSyntaxError as err:
                problems.append(f"constraints[{i}] {text!r}: {err}; write e.g. 'a + 2*b <= 10' or 'a * b <= 30'")
                continue
            unknown = sorted(set(parsed.names) - set(by_name))
            if unknown:
                problems.append(
                    f"constraints[{i}] {text!r} names {', '.join(unknown)}, not a numeric parameter; "
                    f"use one of: {', '.join(sorted(by_name))}"
                )
                continue
            snapped.update(n for n in parsed.names if by_name[n].type in ("integer", "discrete")
                           and not by_name[n].is_fixed)
            if all(by_name[n].is_fixed for n in parsed.names):
                problems.append(f"constraints[{i}] {text!r} names only fixed parameters; it constrains nothing, remove it")
            elif getattr(parsed, "op", None) == "==":
                rounded = sorted(n for n in parsed.names if not by_name[n].is_fixed
                                 and (by_name[n].type != "continuous" or by_name[n].is_log))
                if rounded:
                    kinds = ", ".join(f"{n} ({'log-scale' if by_name[n].is_log else by_name[n].type})" for n in rounded)
                    problems.append(
                        f"constraints[{i}] {text!r}: an equality needs continuous linear-scale parameters, not {kinds}; "
                        "make them continuous, or write two inequalities with some slack"
                    )
        if len(snapped) > MAX_SNAPPED:  # orchestrator.planning.space.feasible_from_unit tries every rounding of them
            problems.append(f"constraints name {len(snapped)} integer or discrete parameters; at most {MAX_SNAPPED} "
                            "can be rounded together to meet them; make some continuous or leave them out of the "
                            "constraints")
        return problems

    def _instrument_problems(self) -> list[str]:
        if self.instruments is None:
            return []
        from instruments.opentrons.labware import deck_for

        handler = self.instruments.liquid_handler
        deck, labware = deck_for(handler)
        by_name = {p.name: p for p in self.parameters}
        problems = []
        for reagent in handler.reagents:
            param = by_name.get(reagent)
            if param is None or not param.is_numeric:
                problems.append(
                    f"instruments.liquid_handler.reagents.{reagent}: not a numeric parameter; "
                    "each reagent key must be a parameter holding its volume in uL"
                )
            elif param.bounds[0] < 0:
                problems.append(
                    f"parameters[{self.parameters.index(param)}]({reagent}).bounds: a volume cannot be negative ({param.bounds[0]:g} uL); "
                    "set the lower bound to 0 or more"
                )
            elif param.unit is not None and param.unit.strip().replace("µ", "u").lower() != "ul":
                problems.append(f"parameters[{self.parameters.index(param)}]({reagent}).unit: {param.unit!r}, but "
                                "a reagent's volume is always in uL; give its bounds in uL and write unit: uL")
            elif param.bounds[1] < deck.small.min_ul:
                problems.append(f"parameters[{self.parameters.index(param)}]({reagent}).bounds: every volume is below "
                                f"the {deck.small.min_ul:g} uL the small pipette can dispense, so none would be; "
                                f"raise the upper bound to {deck.small.min_ul:g} uL or more")
        for i, param in enumerate(self.parameters):
            if param.name not in handler.reagents and not param.is_fixed:
                problems.append(
                    f"parameters[{i}]({param.name}): not a reagent of instruments.liquid_handler, and the robot "
                    "dispenses only reagent volumes, so nothing would set it; add it under reagents (its volume in "
                    "uL), make it type: fixed with the value you set by hand, or remove it"
                )
        return problems + self._reagent_volume_problems() + self._deck_problems(deck, labware)

    def _deck_problems(self, deck: Any, names: dict[str, str]) -> list[str]:
        """``deck``'s labware (``Deck.labware`` key -> load name) must be standard and hold what the file declares.

        Checked against each labware's definition: the plate and reservoir hold liquid, the plate has
        the 96 wells plans fill and they hold ``well_capacity_ul``, each reservoir well exists, holds
        one stock only and holds its declared ``stock_ul``, and each tip rack holds tips its pipette
        takes.
        """
        from instruments.opentrons.deck import TIP_RACKS, well_name
        from instruments.opentrons.labware import container_problem, tip_rack_problem, unknown_labware_problem, well_volumes_ul

        handler = self.instruments.liquid_handler
        field = "instruments.liquid_handler"
        problems = [p for key, name in names.items() if (p := unknown_labware_problem(f"{field}.labware.{key}", name))]
        problems += [p for pipette, key in TIP_RACKS.items() if (p := tip_rack_problem(
            f"{field}.labware.{key}", names[key], getattr(deck, pipette), deck.labware[key]))]
        wrong_kind = {key: p for key in ("plate", "reservoir")
                      if (p := container_problem(f"{field}.labware.{key}", names[key]))}
        problems += wrong_kind.values()
        # wells of labware of the wrong kind are not checked further: its one problem says it all
        plate, reservoir = ({} if key in wrong_kind else well_volumes_ul(names[key]) for key in ("plate", "reservoir"))
        missing = [well for well in map(well_name, range(WELLS_PER_PLATE)) if well not in plate]
        if plate and missing:
            problems.append(f"{field}.labware.plate: {names['plate']} has no well {missing[0]}, and plans fill wells "
                            "A1 to H12 of a 96-well plate; name a plate with those wells")
        if plate and handler.well_capacity_ul > min(plate.values()):
            problems.append(f"{field}.well_capacity_ul: {handler.well_capacity_ul:g} uL is more than the "
                            f"{min(plate.values()):g} uL a well of {names['plate']} holds; set it to at most that")
        stocks = [(f"{field}.reagents.{name}", name, stock) for name, stock in handler.reagents.items()]
        if handler.diluent is not None:
            stocks.append((f"{field}.diluent", "the diluent", handler.diluent))
        by_well: dict[str, list[str]] = {}
        for where, name, stock in stocks:
            by_well.setdefault(stock.well, []).append(name)
            if reservoir and stock.well not in reservoir:
                problems.append(f"{where}.well: {names['reservoir']} has no well {stock.well}; "
                                f"use one of {', '.join(reservoir)}")
            elif reservoir and stock.stock_ul > reservoir[stock.well]:
                problems.append(f"{where}.stock_ul: {stock.stock_ul:g} uL is more than the {reservoir[stock.well]:g} "
                                f"uL its well of {names['reservoir']} holds; declare what is in the well")
        problems += [f"{field}: {' and '.join(shared)} share reservoir well {well}; give each its own well"
                     for well, shared in by_well.items() if len(shared) > 1]
        return problems

    def _reagent_volume_problems(self) -> list[str]:
        """The most reagent volume [uL] the space allows in one well must fit: up to ``fill_volume_ul`` when a
        diluent makes the well up, else up to ``well_capacity_ul``.

        The most is a linear programme over the parameters' bounds and the linear constraints. A
        nonlinear constraint on a reagent may be what holds the total down, so then nothing is checked
        here; the plan check before every dispatch (``instruments.plate_plan.check_plan``) still refuses
        such a well.
        """
        import numpy as np
        from scipy.optimize import linprog

        handler = self.instruments.liquid_handler
        numeric = [p for p in self.parameters if p.is_numeric]
        column = {p.name: i for i, p in enumerate(numeric)}
        reagents = [r for r in handler.reagents if r in column]
        try:
            parsed = self.parsed_constraints()
        except ConstraintSyntaxError:  # reported by _constraint_problems
            return []
        if not reagents or any(not set(c.names) <= set(column) for c in parsed):  # unknown names: reported elsewhere
            return []
        if any(not isinstance(c, LinearConstraint) and set(c.names) & set(reagents) for c in parsed):
            return []
        rows: dict[str, list] = {"<=": [], "==": []}
        for c in parsed:
            if isinstance(c, LinearConstraint):
                sign = -1.0 if c.op == ">=" else 1.0
                row = np.zeros(len(numeric))
                for name, coefficient in c.coefficients.items():
                    row[column[name]] = sign * coefficient
                rows["==" if c.op == "==" else "<="].append((row, sign * c.rhs))
        bounds = [(float(p.value),) * 2 if p.is_fixed else tuple(p.bounds) for p in numeric]
        objective = -np.array([1.0 if p.name in reagents else 0.0 for p in numeric])
        a_ub, b_ub = ([r for r, _ in rows["<="]], [b for _, b in rows["<="]]) if rows["<="] else (None, None)
        a_eq, b_eq = ([r for r, _ in rows["=="]], [b for _, b in rows["=="]]) if rows["=="] else (None, None)
        result = linprog(objective, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if result.status != 0:  # no feasible point at all: the search space reports that itself
            return []
        most = -float(result.fun)
        limit, what = ((handler.fill_volume_ul, "fill_volume_ul") if handler.diluent is not None
                       else (handler.well_capacity_ul, "well_capacity_ul"))
        if most <= limit * (1 + 1e-9):
            return []
        total = " + ".join(reagents)
        return [f"instruments.liquid_handler: the parameters and constraints allow {most:g} uL of reagents in one "
                f"well ({total}), more than {what} {limit:g} uL; add the constraint '{total} <= {limit:g}' "
                "or lower the volume bounds"]

    def _analysis_problems(self) -> list[str]:
        """Each analysis entry computes an objective or an outcome of an outcome constraint; with instruments,
        every one of those has an entry (nothing else measures it), its target mixture names the robot's
        reagents within the fill volume, and its peak target lies in the spectrometer's range."""
        objectives = {o.name for o in self.objectives}
        try:
            outcomes = set(self.outcome_names())
        except ConstraintSyntaxError:  # reported by _objective_problems
            outcomes = set()
        problems = [
            f"analysis[{i}].objective {a.objective!r} is neither an objective nor an outcome in outcome_constraints; "
            f"use one of: {', '.join(sorted(objectives | outcomes))}"
            for i, a in enumerate(self.analysis)
            if a.objective not in objectives | outcomes
        ]
        if self.instruments is None:
            return problems
        analysed = {a.objective for a in self.analysis}
        problems += [
            f"analysis: objective {o!r} has no analysis; add an entry with 'objective: {o}'"
            for o in sorted(objectives - analysed)
        ]
        problems += [
            f"analysis: outcome {o!r} (outcome_constraints) has no analysis, so nothing would measure it; add an "
            f"entry with 'objective: {o}' and a kind, e.g. 'kind: max_reading' for the highest absorbance"
            for o in sorted(outcomes - analysed)
        ]
        handler, spectrometer = self.instruments.liquid_handler, self.instruments.spectrometer
        shortest, longest = spectrometer.wavelength_range_nm
        for i, a in enumerate(self.analysis):
            mixture = a.target.mixture if a.target is not None else None
            unknown = sorted(set(mixture or {}) - set(handler.reagents))
            if unknown:
                problems.append(f"analysis[{i}].target.mixture: {', '.join(unknown)} is not a reagent of the liquid "
                                f"handler; use: {', '.join(handler.reagents)}")
            elif mixture and handler.diluent is not None and sum(mixture.values()) > handler.fill_volume_ul:
                problems.append(f"analysis[{i}].target.mixture: {sum(mixture.values()):g} uL in all, more than the "
                                f"fill volume of {handler.fill_volume_ul:g} uL; give volumes of one well")
            if a.target_peak_nm is not None and not shortest <= a.target_peak_nm <= longest:
                problems.append(f"analysis[{i}].target_peak_nm {a.target_peak_nm:g} is outside the spectrometer's "
                                f"wavelength_range_nm [{shortest:g}, {longest:g}]; it could never be measured")
            if a.window_nm is not None and (a.window_nm[1] <= shortest or a.window_nm[0] >= longest):
                problems.append(f"analysis[{i}].window_nm [{a.window_nm[0]:g}, {a.window_nm[1]:g}] lies outside the "
                                f"spectrometer's wavelength_range_nm [{shortest:g}, {longest:g}]")
        return problems

    def linear_constraints(self) -> list[Constraint]:
        """Every constraint, parsed: ``LinearConstraint`` where the text is linear, else ``NonlinearConstraint``.

        The name is historical; ``SearchSpace`` takes both kinds (see ``parsed_constraints``).
        """
        return self.parsed_constraints()

    def parsed_constraints(self) -> list[Constraint]:
        """Every constraint, parsed: ``LinearConstraint`` where the text is linear, else ``NonlinearConstraint``."""
        return [parse_constraint(text) for text in self.constraints]

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)


def _known_driver(name: str, role: str) -> str:
    return check_driver_name(name, role)  # built-in and plugin drivers alike


def _require_unique(names: list[str], what: str) -> None:
    seen, duplicates = set(), []
    for n in names:
        if n in seen:
            duplicates.append(n)
        seen.add(n)
    if duplicates:
        raise ValueError(f"duplicate {what} name(s) {', '.join(sorted(set(duplicates)))}; give each a unique name")


__all__ = ["CampaignSpec", "Parameter", "Objective", "Budget", "Instruments", "DRIVERS"]
