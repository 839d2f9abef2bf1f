"""Mechanistic prior means by name, for ``prior_mean: {simulator: NAME, settings: {...}}``.

A prior mean is ``f(params) -> {objective name: value}`` (or a plain float for the first
objective); the planner's GP then models the residual ``y - f(x)``. Each entry of
``PRIOR_MEANS`` is a factory ``settings -> f``. Through the ask/tell API any Python
callable of that shape can be passed instead: ``Campaign.from_yaml(..., prior_mean=f)``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

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


#: prior mean name -> factory(settings) -> f(params)
PRIOR_MEANS: dict[str, Callable[[Mapping[str, Any]], PriorFunction]] = {
    "linear": linear_model,
}


def build_prior_mean(name: str, settings: Mapping[str, Any]) -> PriorFunction:
    """The prior mean function ``name`` configured with ``settings``."""
    if name not in PRIOR_MEANS:
        raise KeyError(f"unknown prior mean {name!r}; known: {', '.join(sorted(PRIOR_MEANS))}")
    return PRIOR_MEANS[name](settings)
