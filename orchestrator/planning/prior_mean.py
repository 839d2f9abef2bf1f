"""Mechanistic prior means by name, for ``prior_mean: {simulator: NAME, settings: {...}}``.

A prior mean is ``f(params) -> {objective name: value}`` (or a plain float for the first
objective); the planner's GP then models the residual ``y - f(x)``. Each entry of
``PRIOR_MEANS`` is a factory ``settings -> f``. Through the ask/tell API any Python
callable of that shape can be passed instead: ``Campaign.from_yaml(..., prior_mean=f)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

PriorFunction = Callable[[Mapping[str, Any]], "float | Mapping[str, float]"]


def linear_model(settings: Mapping[str, Any]) -> PriorFunction:
    """``{objective: {intercept: a0, coefficients: {param: a_i}}}`` -> ``y = a0 + sum_i a_i x_i``.

    The simplest mechanistic model (e.g. a yield proportional to a reagent volume);
    categorical parameters cannot appear in it.
    """
    models = {}
    for objective, spec in settings.items():
        if not isinstance(spec, Mapping) or set(spec) - {"intercept", "coefficients"}:
            raise ValueError(f"prior_mean.settings.{objective} must be {{intercept: a0, coefficients: {{param: a}}}}")
        models[objective] = (float(spec.get("intercept", 0.0)),
                             {str(k): float(v) for k, v in (spec.get("coefficients") or {}).items()})

    def f(params: Mapping[str, Any]) -> dict[str, float]:
        return {name: a0 + sum(a * float(params[p]) for p, a in coefs.items()) for name, (a0, coefs) in models.items()}

    return f


#: built-in prior means: name -> factory(settings) -> f(params)
PRIOR_MEANS: dict[str, Callable[[Mapping[str, Any]], PriorFunction]] = {
    "linear": linear_model,
}
#: a lab's own models join through this entry-point group: ``NAME = "package.module:factory"``, where
#: ``factory(settings) -> f`` as for ``PRIOR_MEANS``; the campaign file then names ``simulator: NAME``
ENTRY_POINT_GROUP = "sdl.prior_means"


def _plugins() -> tuple[dict[str, Any], dict[str, str]]:
    """Installed plugin entry points by name, and one line per name that cannot be used (a clash)."""
    from instruments.entry_points import named_entry_points

    return named_entry_points(ENTRY_POINT_GROUP, PRIOR_MEANS, "prior mean")


def _factory(name: str) -> tuple[Callable[[Mapping[str, Any]], PriorFunction] | None, str | None]:
    """The factory ``simulator: name`` stands for (built in, or a plugin imported once), or None and one line
    saying why it cannot be used."""
    if name in PRIOR_MEANS:
        return PRIOR_MEANS[name], None
    plugins, problems = _plugins()
    if name in problems:
        return None, problems[name]
    if name not in plugins:
        known = sorted([*PRIOR_MEANS, *plugins])
        return None, (f"prior_mean.simulator {name!r} is unknown; use one of: {', '.join(known)}, or install a "
                      f"plugin in entry-point group {ENTRY_POINT_GROUP}")
    from instruments.entry_points import describe

    where = describe(plugins[name], "prior mean")
    try:
        factory = plugins[name].load()
    except Exception as error:  # someone else's module: report it, one line
        first = (str(error).splitlines() or [""])[0]
        return None, f"{where} cannot be imported: {first or type(error).__name__}"
    if not callable(factory):
        return None, f"{where} is not callable; point the entry point at factory(settings) -> f"
    return factory, None


def _checked_factory(name: str) -> Callable[[Mapping[str, Any]], PriorFunction]:
    """The factory ``simulator: name`` stands for; ``SpecError`` when it cannot be used."""
    from orchestrator.errors import SpecError

    factory, problem = _factory(name)
    if factory is None:
        raise SpecError([problem or f"prior_mean.simulator {name!r} cannot be used"])
    return factory


def build_prior_mean(name: str, settings: Mapping[str, Any]) -> PriorFunction:
    """The prior mean function ``name`` (built in or a plugin) configured with ``settings``.

    Raises ``SpecError`` when the name cannot be used or its factory rejects ``settings``.
    """
    return _configured(name, _checked_factory(name), settings)


def _configured(name: str, factory: Callable[[Mapping[str, Any]], PriorFunction],
                settings: Mapping[str, Any]) -> PriorFunction:
    """``factory(settings)``; whatever the model's own code raises becomes one ``SpecError`` line."""
    from orchestrator.errors import SpecError

    try:
        return factory(settings)
    except Exception as error:  # the factory is the model's own code: whatever it raises, say so in one line
        first = (str(error).splitlines() or [""])[0]
        said = first if isinstance(error, ValueError) and first else f"{type(error).__name__}: {first}"
        raise SpecError([f"prior_mean.settings for {name!r}: {said}"]) from error


@dataclass(frozen=True)
class CalibratedModel:
    """A mechanistic model some of whose settings are fitted to the campaign's own data (a hybrid model).

    ``factory(settings) -> f`` is the model (as for ``PRIOR_MEANS``); ``bounds`` names the settings to
    fit, each ``(low, high)`` in the model's own units (e.g. a temperature offset [K] for a larger
    reactor). Before each proposal the planner picks the values in the box that best fit the measured
    results (``UnitPrior.calibrate``), and the GP learns what is left. A calibrated setting given in
    ``settings`` is where the fit starts and what is used until there are enough measurements;
    otherwise the middle of its range.
    A setting nested in ``settings`` is named by its path with dots, e.g. ``yield.coefficients.temperature``
    for the built-in ``linear`` model (a name that is itself a key of ``settings`` is taken as it is).
    """

    factory: Callable[[Mapping[str, Any]], PriorFunction]
    settings: Mapping[str, Any]
    bounds: Mapping[str, tuple[float, float]]

    def start(self) -> dict[str, float]:
        """The calibrated settings before any fit, in the model's units."""
        return starting_values(self.settings, self.bounds)

    def at(self, values: Mapping[str, float]) -> PriorFunction:
        """The model with the calibrated settings at ``values``."""
        return self.factory(with_settings(self.settings, values))


def starting_values(settings: Mapping[str, Any], bounds: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Each calibrated setting's value in ``settings`` (by key or dotted path), or the middle of its range."""
    start = {}
    for name, (low, high) in bounds.items():
        given = setting_at(settings, name)
        start[name] = (float(low) + float(high)) / 2 if given is None else float(given)
    return start


def setting_at(settings: Mapping[str, Any], name: str) -> Any:
    """The value of setting ``name`` (a key, or a path with dots into nested settings), or None when unset."""
    if name in settings:
        return settings[name]
    value: Any = settings
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def with_settings(settings: Mapping[str, Any], values: Mapping[str, float]) -> dict[str, Any]:
    """``settings`` with each of ``values`` put in place (by key, or by path with dots), copied where changed.

    Raises ``ValueError`` when a path runs into a value that is not a mapping.
    """
    out = dict(settings)
    for name, value in values.items():
        if name in settings or "." not in name:
            out[name] = value
            continue
        *parents, leaf = name.split(".")
        node = out
        for depth, part in enumerate(parents):
            child = node.get(part, {})
            if not isinstance(child, Mapping):
                raise ValueError(f"{'.'.join(parents[:depth + 1])} is {child!r}, not a mapping of settings")
            node[part] = dict(child)
            node = node[part]
        node[leaf] = value
    return out


def calibrated_prior_mean(name: str, settings: Mapping[str, Any],
                          bounds: Mapping[str, tuple[float, float]]) -> CalibratedModel:
    """``prior_mean: {simulator: name, settings, calibrate: bounds}`` as a ``CalibratedModel``.

    Raises ``SpecError`` (one line each) for a range that is empty, a starting value outside its range,
    or a model that rejects its settings at the starting values or at either end of a range.
    """
    from orchestrator.errors import SpecError

    problems = []
    for key, (low, high) in bounds.items():
        if not (abs(low) <= 1e15 and abs(high) <= 1e15):  # the fit works on (value - low) / (high - low)
            problems.append(f"prior_mean.calibrate.{key}: [{low}, {high}] must be finite numbers within +-1e15")
            continue
        if not low < high:
            problems.append(f"prior_mean.calibrate.{key}: [{low}, {high}] is empty; give [low, high] with low < high")
            continue
        given = setting_at(settings, key)
        if given is not None and not (isinstance(given, (int, float)) and low <= given <= high):
            problems.append(f"prior_mean.settings.{key} = {given!r} is outside prior_mean.calibrate.{key} "
                            f"[{low}, {high}]; it is where the fit starts, so give a number inside the range")
            continue
        try:
            with_settings(settings, {key: low})
        except ValueError as error:
            problems.append(f"prior_mean.calibrate.{key}: settings.{error}; name a number inside the settings")
    if problems:
        raise SpecError(problems)
    model = CalibratedModel(_checked_factory(name), dict(settings), {k: (float(lo), float(hi))
                                                                     for k, (lo, hi) in bounds.items()})
    for corner in (model.start(), {k: lo for k, (lo, _) in model.bounds.items()},
                   {k: hi for k, (_, hi) in model.bounds.items()}):
        _configured(name, model.factory, with_settings(model.settings, corner))
    return model


def prior_mean_for(name: str, settings: Mapping[str, Any],
                   calibrate: Mapping[str, tuple[float, float]]) -> "PriorFunction | CalibratedModel":
    """The model a campaign file's ``prior_mean`` names: a ``CalibratedModel`` when it has ``calibrate``
    ranges, else the configured function. Raises ``SpecError`` as its two builders do."""
    return calibrated_prior_mean(name, settings, calibrate) if calibrate else build_prior_mean(name, settings)


def call_problems(name: str, model: "PriorFunction | CalibratedModel", params: Mapping[str, Any],
                  modelled: Sequence[str]) -> list[str]:
    """What one call of prior mean ``name`` at ``params`` (the middle of the campaign's box) shows is wrong, one
    line each: it reads a parameter the campaign does not have (a ``KeyError``, or any error after asking for
    one, as ``params.get(name)`` then arithmetic on None does), or it returns outputs none of which is in
    ``modelled`` (the objectives and outcomes), so the planner would never use it. A model that raises
    anything else passes: it may be undefined only there (the emulator then calls it where asked).
    """
    f = model.at(model.start()) if isinstance(model, CalibratedModel) else model
    asked = _ReadLog(params)
    fix = f"this campaign's parameters are {', '.join(params)}: name them in its settings"
    try:
        value = f(asked)
    except KeyError as error:
        missing = error.args[0] if error.args else error
        return [f"prior_mean {name!r} failed at the middle of the parameter box with KeyError {missing!r}; {fix}"]
    except Exception as error:  # noqa: BLE001 - a model may be undefined here (see above)
        if not asked.missing:
            return []
        return [f"prior_mean {name!r} failed at the middle of the parameter box with {type(error).__name__} after "
                f"asking for {', '.join(map(repr, asked.missing))}, which the campaign does not have; {fix}"]
    if isinstance(value, Mapping) and not set(value) & set(modelled):
        return [f"prior_mean {name!r} predicts {', '.join(sorted(map(str, value)))}, none of this campaign's "
                f"objectives or outcomes ({', '.join(modelled)}); name its outputs after them"]
    return []


class _ReadLog(dict):
    """A campaign's parameters that note each name a model asks for and does not find (``missing``)."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self.missing: list[Any] = []

    def _note(self, key: Any) -> None:
        if key not in self and key not in self.missing:
            self.missing.append(key)

    def __getitem__(self, key: Any) -> Any:
        self._note(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._note(key)
        return super().get(key, default)


# the planner's view of a prior mean ------------------------------------------------------------


def as_row(value: "float | Mapping[str, float]", outputs: Sequence[str]) -> np.ndarray:
    """A model's value (a dict, or a plain float for its only output) as an array ``(len(outputs),)``."""
    if isinstance(value, Mapping):
        return np.array([float(value[name]) for name in outputs])
    return np.array([float(value)])


def checked_interpolant(fit_points: np.ndarray, fitted: np.ndarray, check_points: np.ndarray,
                        checked: np.ndarray) -> tuple[Any, np.ndarray]:
    """A cubic RBF interpolant (linear tail) of ``fitted`` ``(n, k)`` at ``fit_points`` ``(n, d)``, and its
    misses at ``check_points`` ``(c, d)`` against ``checked`` ``(c, k)``, relative to each output's range
    over both sets ``(c, k)``."""
    from scipy.interpolate import RBFInterpolator

    interpolant = RBFInterpolator(fit_points, fitted, kernel="cubic", degree=1)
    spread = np.ptp(np.concatenate([fitted, checked]), axis=0)
    return interpolant, np.abs(interpolant(check_points) - checked) / np.where(spread > 0, spread, 1.0)


#: held-out RMSE of an emulated group, as a fraction of the model's range over that group, above which
#: the group is evaluated by calling the model instead (see ``UnitPrior``)
EMULATOR_TOLERANCE = 0.02
#: at most this many groups (combinations of integer, level and category values) are emulated: each costs
#: ``1.5 * points`` model calls once, so beyond it building would cost more than it saves
EMULATOR_MAX_GROUPS = 16
#: Continuous parameters up to which a model is emulated: 100 took a minute to fit, 300 ran out of memory.
EMULATOR_MAX_DIMS = 20
_EMULATORS_KEPT = 4  # emulators of earlier calibrated settings kept for a fit that moves back
_POINTS_PER_CONTINUOUS_DIM = 64  # Sobol points per group: 64 s, rounded up to a power of two (s: continuous dims)


@dataclass
class _Emulator:
    """``UnitPrior``'s stand-in for the model at one set of settings, built group by group as points ask."""

    groups: dict[tuple[float, ...], Any] = field(default_factory=dict)  # group key -> interpolant, or None: call
    memo: dict[tuple[float, ...], np.ndarray] = field(default_factory=dict)  # no continuous column: point values
    errors: list[float] = field(default_factory=list)  # each group's held-out RMSE, relative to the model's range
    largest_miss: float = 0.0  # the largest held-out error, relative to the model's range
    why_groups_call: str | None = None  # why some group calls the model, once one does


class UnitPrior:
    """A prior mean ``f(params)`` as the planner uses it: values at unit points ``U`` ``(m, d)``, per output.

    A mechanistic model such as a kinetic ODE costs milliseconds a call, and a proposal asks
    for it thousands of times (the optimiser's raw points, then a finite-difference gradient
    per point and continuous column). With ``emulate`` (the default) the model is called only
    to build a cheap stand-in, once per campaign: the points are split into groups by their
    snapped integer, level and category values (along which ``f`` is flat), and in each group
    a cubic radial-basis interpolant (``scipy.interpolate.RBFInterpolator``, linear tail) is
    fitted to ``f`` at ``points`` seeded Sobol points of the continuous columns. It is checked
    at half as many seeded uniform random points; a group whose RMSE there, relative to the
    model's range, is above
    ``EMULATOR_TOLERANCE``, or where ``f`` raises, is evaluated by calling ``f``. Spaces with no
    continuous column need no interpolant: each distinct point's value is kept after its first
    call. The GP learns the residual from whichever version it is given, consistently, so an
    emulator error shifts the prior slightly and is not a bias in the model.

    A ``CalibratedModel`` (a hybrid model) has its settings fitted by ``calibrate`` before each
    proposal (``orchestrator.planning.calibration``); the emulator stands for the model at the settings in
    use and is rebuilt when they move.

    Measured here: the lab kinetic model of ``simulators.benchmarks.mit_kinetics`` (3 continuous
    columns, 8 catalysts: 3073 model calls to build) checks at RMSE 0.18% of the yield's range,
    largest error 1.0%; on 512 other random points RMSE 0.0017 and largest error 0.020 in yield
    (fraction of A charged), at 0.01 ms a point against 0.84 ms a model call. The SnAr model
    (4 columns, 385 calls, 8 ms a call) passes at RMSE 1.7% of the E-factor's range, but its largest
    check error is 14%: the E-factor climbs steeply at low conversion. The check bounds the typical
    error, not the worst; the residual GP has to absorb the rest. ``bench/warm_start.py --prior-mean
    rbf``, seed 0, with the check of then (a quarter as many Sobol points) and two benchmarks sharing
    2 cores: the same 12 plant experiments to the target either way, proposals median 1.9 s (largest
    10.7 s: the first, which builds the emulator) against 28.5 s (largest 76 s) calling the model.
    Seed 1: 20 experiments emulated against 17 calling the model (median proposal 33 s): the
    emulator's small errors move the search, and two seeds cannot say which way on average.
    """

    def __init__(self, space: Any, prior_mean: PriorFunction | CalibratedModel, first_output: str,
                 emulate: bool = True, seed: int = 0) -> None:
        from orchestrator.planning.calibration import Calibration

        self.space, self.first_output, self.seed = space, first_output, seed
        self.calibration = Calibration(space, prior_mean, emulate, seed) if isinstance(prior_mean, CalibratedModel) \
            else None
        self.prior_mean = prior_mean.at(prior_mean.start()) if self.calibration is not None else prior_mean
        self.smooth_columns = [space.columns[p.name][0] for p in space.numeric if p.type == "continuous"]
        smooth = set(self.smooth_columns)
        self.group_columns = [c for c in range(space.dim) if c not in smooth]
        self.n_groups = 1
        for p in space.searched:
            if p.type == "integer":
                self.n_groups *= int(p.bounds[1]) - int(p.bounds[0]) + 1
            elif p.type in ("discrete", "categorical"):
                self.n_groups *= len(p.values)
        self.why_exact = None if emulate else "emulate: false"
        if emulate and self.smooth_columns and self.n_groups > EMULATOR_MAX_GROUPS:
            self.why_exact = (f"{self.n_groups} combinations of integer, level and category values; "
                              f"emulated up to {EMULATOR_MAX_GROUPS}")
        elif emulate and len(self.smooth_columns) > EMULATOR_MAX_DIMS:  # its points and fit grow with them
            self.why_exact = (f"{len(self.smooth_columns)} continuous parameters; emulated up to "
                              f"{EMULATOR_MAX_DIMS}")
        dims = len(self.smooth_columns)
        self.points = 1 << max(6, math.ceil(math.log2(_POINTS_PER_CONTINUOUS_DIM * max(dims, 1))))
        self._outputs: list[str] | None = None
        self._emulator = _Emulator()
        # a CalibratedModel's settings (unit) that the emulator stands for the model at
        self._settings_in_use = tuple(self.calibration.theta) if self.calibration is not None else None
        self._kept: dict[tuple[float, ...], _Emulator] = {}  # emulators of recent settings, by settings
        self.model_calls = 0

    # outputs ------------------------------------------------------------------------------------

    def _call(self, u: np.ndarray) -> np.ndarray:
        """The model's values ``(k,)`` at one unit point, in the order of ``outputs``."""
        value = self.prior_mean(self.space.from_unit(u))
        self.model_calls += 1
        if self._outputs is None:
            self._outputs = sorted(value) if isinstance(value, Mapping) else [self.first_output]
        return as_row(value, self._outputs)

    @property
    def outputs(self) -> list[str]:
        """The outputs the model predicts: its dict's keys, or the first objective for a plain float."""
        if self._outputs is None:
            self._call(np.full(self.space.dim, 0.5))
        return list(self._outputs or [])

    def for_output(self, name: str) -> Callable[[np.ndarray], np.ndarray] | None:
        """``U (m, d) -> (m,)``: the prior of output ``name``, or None when the model does not predict it.

        The function carries ``smooth_columns``: the finite-difference gradient
        (``surrogates._PriorValues``) is taken only along them, since ``f`` is flat along the
        snapped columns. It uses the calibrated settings in use when it is called.
        """
        if name not in self.outputs:
            return None
        index = self.outputs.index(name)

        def f(U: np.ndarray) -> np.ndarray:
            return self.values(np.asarray(U, dtype=np.float64))[:, index]

        f.smooth_columns = list(self.smooth_columns)  # type: ignore[attr-defined]
        return f

    # values -------------------------------------------------------------------------------------

    def values(self, U: np.ndarray) -> np.ndarray:
        """The model's values ``(m, k)`` at unit points ``U`` ``(m, d)``, exact or emulated."""
        out = np.empty((len(U), len(self.outputs)))
        if self.why_exact is not None:
            for i, u in enumerate(U):
                out[i] = self._call(u)
            return out
        emulator = self._emulator
        keys = np.round(self.space.snap_unit(U)[:, self.group_columns], 9)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        for g, key in enumerate(map(tuple, unique)):
            rows = np.flatnonzero(inverse.reshape(-1) == g)
            if not self.smooth_columns:
                if key not in emulator.memo:
                    emulator.memo[key] = self._call(U[rows[0]])
                out[rows] = emulator.memo[key]
                continue
            if key not in emulator.groups:
                emulator.groups[key] = self._build(U[rows[0]])
            interpolant = emulator.groups[key]
            if interpolant is None:
                for i in rows:
                    out[i] = self._call(U[i])
            else:
                out[rows] = interpolant(np.clip(U[rows][:, self.smooth_columns], 0.0, 1.0))
        return out

    def _build(self, anchor: np.ndarray):
        """The interpolant of the group that unit point ``anchor`` belongs to, or None (call the model there)."""
        from scipy.stats import qmc

        # checked at uniform random points: an unbiased sample of the box the optimiser searches
        dims = len(self.smooth_columns)
        fit_points = qmc.Sobol(dims, scramble=True, seed=self.seed).random(self.points)
        check_points = np.random.default_rng(self.seed).random((self.points // 2, dims))
        base = self.space.snap_unit(anchor[None, :])[0]

        def model_at(points: np.ndarray) -> np.ndarray:
            rows = np.repeat(base[None, :], len(points), axis=0)
            rows[:, self.smooth_columns] = points
            return np.stack([self._call(u) for u in rows])

        try:
            fitted, checked = model_at(fit_points), model_at(check_points)
        except Exception as error:  # the model cannot be evaluated everywhere in the box: call it where asked
            self._emulator.why_groups_call = f"the model raised while its emulator was built: {error}"
            return None
        interpolant, misses = checked_interpolant(fit_points, fitted, check_points, checked)
        error = float(np.sqrt(np.mean(misses**2, axis=0)).max())
        self._emulator.errors.append(error)
        self._emulator.largest_miss = max(self._emulator.largest_miss, float(misses.max()))
        if error > EMULATOR_TOLERANCE:
            self._emulator.why_groups_call = f"held-out error above {EMULATOR_TOLERANCE:.0%} of the model's range"
            return None
        return interpolant

    # calibration --------------------------------------------------------------------------------

    def calibrate(self, observations: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]]) -> None:
        """Fit a ``CalibratedModel``'s settings to measured ``observations`` (params, values), and use them
        from now on; a no-op for a fixed model. When the settings in use move, the emulator is rebuilt."""
        if self.calibration is None or not self.calibration.fit(observations, self.outputs):
            return
        self.prior_mean = self.calibration.model.at(self.calibration.values())
        # a fit that moves back to recent settings finds their emulator kept (it is the same: built seeded)
        self._kept[self._settings_in_use] = self._emulator
        self._settings_in_use = tuple(self.calibration.theta)
        self._emulator = self._kept.pop(self._settings_in_use, _Emulator())
        while len(self._kept) > _EMULATORS_KEPT:
            del self._kept[next(iter(self._kept))]

    def describe(self) -> dict[str, Any]:
        """How the prior is evaluated (and, for a ``CalibratedModel``, fitted), for a proposal's ``info``."""
        fit = self.calibration.describe() if self.calibration is not None else {}
        if self.why_exact is not None:
            return {"emulated": False, "why": self.why_exact, "model_calls": self.model_calls, **fit}
        if not self.smooth_columns:
            return {"emulated": False, "why": "no continuous parameter: each point's value is kept after one call",
                    "model_calls": self.model_calls, **fit}
        emulator = self._emulator
        calling = sum(g is None for g in emulator.groups.values())
        return {"emulated": True, "groups_built": len(emulator.groups), "groups_calling_the_model": calling,
                "why_they_call_it": emulator.why_groups_call if calling else None, "points_per_group": self.points,
                "worst_check_rmse": max(emulator.errors, default=None),
                "largest_check_error": emulator.largest_miss, "model_calls": self.model_calls, **fit}
