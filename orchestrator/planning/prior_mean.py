"""Mechanistic prior means by name, for ``prior_mean: {model: NAME, settings: {...}}``.

A prior mean is ``f(params) -> {objective name: value}`` (or a plain float for the first
objective); the planner's GP then models the residual ``y - f(x)``. Each entry of
``PRIOR_MEANS`` is a factory ``settings -> f``. Through the ask/tell API any Python
callable of that shape can be passed instead: ``Campaign.from_yaml(..., prior_mean=f)``.

This module only loads and checks models (the campaign file's check uses it); the planner evaluates
one through ``orchestrator.planning.unit_prior.UnitPrior``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from instruments.entry_points import describe, named_entry_points
from orchestrator.errors import SpecError

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
#: ``factory(settings) -> f`` as for ``PRIOR_MEANS``; the campaign file then names ``model: NAME``
ENTRY_POINT_GROUP = "sdl.prior_means"


def _plugins() -> tuple[dict[str, Any], dict[str, str]]:
    """Installed plugin entry points by name, and one line per name that cannot be used (a clash)."""
    return named_entry_points(ENTRY_POINT_GROUP, PRIOR_MEANS, "prior mean")


def _factory(name: str) -> tuple[Callable[[Mapping[str, Any]], PriorFunction] | None, str | None]:
    """The factory ``model: name`` stands for (built in, or a plugin imported once), or None and one line
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
    """The factory ``model: name`` stands for; ``SpecError`` when it cannot be used."""
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
    """``prior_mean: {model: name, settings, calibrate: bounds}`` as a ``CalibratedModel``.

    Raises ``SpecError`` (one line each) for a range that is empty, a starting value outside its range,
    or a model that rejects its settings at the starting values or at either end of a range.
    """
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
