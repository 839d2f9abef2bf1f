"""One input of the experiment (``parameters:`` in the campaign file), validated on its own.

Its own module so that the search space (``orchestrator.planning.space``) needs only this,
not the whole campaign schema.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from orchestrator.spec.base import IDENTIFIER, StrictModel
from orchestrator.spec.limits import MAX_CATEGORIES, MAX_LEVELS


class Parameter(StrictModel):
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
        if self.type == "integer" and self.whole_bounds[0] > self.whole_bounds[1]:
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
    def whole_bounds(self) -> tuple[int, int]:
        """The lowest and highest whole number inside ``bounds`` (what an integer parameter may take)."""
        return math.ceil(self.bounds[0]), math.floor(self.bounds[1])

    @property
    def is_fixed(self) -> bool:
        """Recorded with every experiment, never searched."""
        return self.type == "fixed" or self.fixed

    @property
    def is_log(self) -> bool:
        return self.scale == "log"

