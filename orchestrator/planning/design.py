"""Seeded, constraint-filtered Sobol points: the initial design and the optimiser's raw points share them.

A scrambled Sobol row ``(n_numeric + n_categorical,)`` in [0, 1) is mapped by
``SearchSpace.design_points`` (which meets equality constraints exactly by solving for pivot
coordinates), snapped, and kept when every constraint holds (rejection for inequalities,
linear or not).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from orchestrator.errors import PlannerError
from orchestrator.planning.space import SearchSpace

SOBOL_CHUNK = 1024  # Sobol rows drawn at a time (the initial design draws 4x more each time it runs short)
SOBOL_MAX = 1 << 16  # Sobol rows after which the constraints are taken to leave no room


def default_design_size(n_parameters: int, budget: int, batch_size: int) -> int:
    """Sobol points a campaign starts with when its file names none: 2(d+1) for ``n_parameters`` = d, at most a
    third of the ``budget`` (experiments), in whole batches of ``batch_size``; at least one batch and at least 2
    (the model's first fit needs two observations).

    Whole batches because a batch is proposed at once: a design that ends inside a batch would fill the rest of
    that batch with Sobol points too. A third of the budget because 2(d+1) alone would spend a small budget on
    the design (14 of 20 experiments for six parameters, all of them for ten).
    """
    target = min(2 * (n_parameters + 1), budget // 3)
    return max(2, batch_size, (target // batch_size) * batch_size)


def sobol_dims(space: SearchSpace) -> int:
    """Columns of a Sobol row for ``space``: one per numeric and one per categorical parameter (at least 1)."""
    return max(len(space.numeric) + len(space.categorical), 1)


def initial_points(space: SearchSpace, seed: int, count: int) -> list[dict[str, Any]]:
    """The first ``count`` (or more) feasible points of the Sobol sequence seeded with ``seed``, as parameter
    dicts in order; the sequence depends only on the seed, so a design is the same however it is split.

    Raises ``PlannerError`` when ``SOBOL_MAX`` draws hold fewer than ``count``.
    """
    # torch's Sobol engine (the design's numbers) loads with the first proposal, not with the campaign
    import torch

    points: list[dict[str, Any]] = []
    draws = SOBOL_CHUNK
    while len(points) < count:
        if draws > SOBOL_MAX:
            raise PlannerError(
                f"fewer than {count} feasible points in {SOBOL_MAX} Sobol draws",
                hint="the constraints leave almost no room; check them against the bounds",
            )
        engine = torch.quasirandom.SobolEngine(sobol_dims(space), scramble=True, seed=seed)
        points = feasible_points(space, engine.draw(draws, dtype=torch.float64).numpy())
        draws *= 4
    return points


def feasible_points(space: SearchSpace, rows: np.ndarray) -> list[dict[str, Any]]:
    """The feasible points among Sobol ``rows`` ``(k, n_numeric + n_categorical)``, in order, as parameter dicts."""
    U, ok = space.design_points(rows)
    keep = np.flatnonzero(ok & space.feasible_mask(U))
    return [p for p in (space.from_unit(U[i]) for i in keep) if space.is_feasible(p)]
