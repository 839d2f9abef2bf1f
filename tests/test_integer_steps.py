"""Integer and discrete parameters: a proposal is the best allowed value near the relaxed optimum, not its rounding.

The acquisition is optimised with integers and levels relaxed to real numbers, then snapped. Rounding is
right when the acquisition is symmetric about its relaxed optimum; here it is not (it falls steeply below
1.4 steps and gently above), so 2 steps beats the rounded 1, and the proposal must say 2.
"""

from __future__ import annotations

import torch

from orchestrator.planning.constraints import parse_constraint
from orchestrator.planning.optimizer import AcquisitionOptimizer
from orchestrator.planning.space import SearchSpace
from orchestrator.spec.parameters import Parameter

STEPS_BEST = 1.4  # the relaxed optimum of the acquisition below [steps]


class SkewedAcquisition(torch.nn.Module):
    """An acquisition over unit points ``(b, 1, 2)`` (steps 0..2, then x): steep below ``STEPS_BEST`` steps, gentle
    above, and sharp in ``x`` about 0.5, so that raw points with a poor ``x`` cannot stand in for a refined one."""

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        gap = 2.0 * X[..., 0, 0] - STEPS_BEST  # (b,) [steps]
        skewed = torch.where(gap < 0, gap.pow(2), 0.1 * gap.pow(2))
        return -skewed - 1000.0 * (X[..., 0, 1] - 0.5).pow(2)


def test_a_skewed_acquisition_gets_the_better_whole_number_not_the_rounded_one():
    space = SearchSpace([Parameter(name="steps", type="integer", bounds=(0, 2)),
                         Parameter(name="x", type="continuous", bounds=(0.0, 1.0))])
    torch.manual_seed(0)
    optimizer = AcquisitionOptimizer(space, num_restarts=2, raw_samples=16)
    X, _ = optimizer.batch(SkewedAcquisition(), 1)
    params = space.from_unit(X[0].numpy())
    assert params["steps"] == 2
    assert abs(params["x"] - 0.5) < 1e-3


def test_step_neighbours_keep_the_other_values_and_every_constraint():
    space = SearchSpace([Parameter(name="n", type="integer", bounds=(0, 10)),
                         Parameter(name="level", type="discrete", values=[1, 2, 5, 10]),
                         Parameter(name="x", type="continuous", bounds=(0.0, 10.0))],
                        [parse_constraint("n + x <= 10.5")])
    neighbours = space.step_neighbours({"n": 3, "level": 5, "x": 7.4})
    # n = 4 would give 11.4 > 10.5; the levels beside 5 are 2 and 10
    assert neighbours == [{"n": 2, "level": 5, "x": 7.4}, {"n": 3, "level": 2, "x": 7.4},
                          {"n": 3, "level": 10, "x": 7.4}]
    assert space.step_neighbours({"n": 0, "level": 1, "x": 0.0}) == [{"n": 1, "level": 1, "x": 0.0},
                                                                      {"n": 0, "level": 2, "x": 0.0}]
