"""The planner's local refinement really moves every restart, whatever the space holds.

Both bugs this guards against were silent: BoTorch raised, the planner fell back to the
unrefined starts, and proposals were merely the best raw points.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from orchestrator.planning.constraints import parse_constraint  # noqa: E402
from orchestrator.planning.expressions import parse_nonlinear_constraint  # noqa: E402
from orchestrator.planning.planner import Planner  # noqa: E402
from orchestrator.planning.space import SearchSpace  # noqa: E402
from orchestrator.spec.parameters import Parameter  # noqa: E402

TARGET = (0.3, 0.2)  # unit coordinates of a and b: a = 3, b = 2, well inside a * b <= 30


def _space(categorical: bool, nonlinear: bool, log_scale: bool = False) -> SearchSpace:
    """``a``, ``b`` in [0, 10] (``b`` on a log scale over [0.1, 10] when ``log_scale``: then the linear
    ``a + b <= 15`` is curved in unit coordinates), optionally a solvent and ``a * b <= 30``."""
    b = (Parameter(name="b", type="continuous", bounds=(0.1, 10.0), scale="log") if log_scale
         else Parameter(name="b", type="continuous", bounds=(0.0, 10.0)))
    parameters = [Parameter(name="a", type="continuous", bounds=(0.0, 10.0)), b]
    if categorical:
        parameters.append(Parameter(name="solvent", type="categorical", values=["water", "dmso", "thf"]))
    constraints = [parse_nonlinear_constraint("a * b <= 30")] if nonlinear else []
    if log_scale:
        constraints.append(parse_constraint("a + b <= 15"))
    return SearchSpace(parameters, constraints)


def _peak(X):
    """An acquisition ``(b, 1, d) -> (b,)`` with its maximum at ``TARGET`` in the first two columns."""
    return -((X[..., 0, :2] - torch.tensor(TARGET, dtype=X.dtype)) ** 2).sum(-1)


@pytest.mark.parametrize("categorical, nonlinear, log_scale",
                         [(False, True, False), (True, False, False), (True, True, False), (False, False, True)],
                         ids=["nonlinear constraint", "categories", "both", "linear constraint on a log scale"])
def test_every_restart_reaches_the_optimum_and_keeps_its_categories(categorical, nonlinear, log_scale):
    planner = Planner(_space(categorical, nonlinear, log_scale), "y", True, seed=0, initial_experiments=4)
    starts = planner.optimizer.feasible_starts(6).unsqueeze(1)
    refined = planner.optimizer.refine(_peak, starts, maxiter=50)
    assert refined.shape == starts.shape
    assert torch.allclose(refined[:, 0, :2], torch.tensor(TARGET, dtype=torch.float64).expand(6, 2), atol=1e-3), refined
    assert torch.equal(refined[:, 0, 2:], starts[:, 0, 2:]), "categories are held at each start's values"
    if categorical:
        assert len({tuple(row) for row in starts[:, 0, 2:].tolist()}) > 1, "the starts should differ in category"


def _integer_space(high: int) -> SearchSpace:
    return SearchSpace([Parameter(name="i", type="integer", bounds=(1, high)),
                        Parameter(name="j", type="integer", bounds=(1, 3))])


def _observations(space: SearchSpace, n: int):
    planner = Planner(space, "y", True, seed=1, initial_experiments=n)
    return [(s.params, {"y": float(s.params["i"] + 0.5 * s.params["j"])}) for s in planner.initial_design(0, n)]


def test_a_sequential_batch_repeats_neither_itself_nor_the_experiments_in_flight():
    space = _integer_space(3)  # 9 points in all
    observations = _observations(space, 4)
    pending = [{"i": 3, "j": 3}, {"i": 3, "j": 2}]  # where the optimum is: the acquisition would go back there
    planner = Planner(space, "y", True, seed=1, initial_experiments=4, num_restarts=2, raw_samples=16)
    batch = planner.suggest(observations, pending, 3, 6)
    keys = [(s.params["i"], s.params["j"]) for s in batch]
    assert len(set(keys)) == 3, keys
    assert not set(keys) & {(3, 3), (3, 2)}, keys
    assert all(s.info["n_pending"] == 2 for s in batch)


def test_a_space_too_small_for_new_points_still_gets_its_batch():
    space = SearchSpace([Parameter(name="i", type="integer", bounds=(1, 2))])
    observations = [({"i": 1}, {"y": 0.0}), ({"i": 2}, {"y": 1.0})]
    planner = Planner(space, "y", True, seed=1, initial_experiments=2, num_restarts=2, raw_samples=16)
    batch = planner.suggest(observations, [{"i": 1}, {"i": 2}], 3, 4)
    assert len(batch) == 3 and all(s.params["i"] in (1, 2) for s in batch)


def test_a_proposal_does_not_repeat_a_measured_experiment_while_another_is_left():
    space = _integer_space(3)
    every = [{"i": i, "j": j} for i in (1, 2, 3) for j in (1, 2, 3)]
    observations = [(p, {"y": float(p["i"] + 0.5 * p["j"])}) for p in every if p != {"i": 1, "j": 1}]
    planner = Planner(space, "y", True, seed=1, initial_experiments=4, num_restarts=2, raw_samples=16)
    (proposal,) = planner.suggest(observations, [], 1, 8)
    assert proposal.params == {"i": 1, "j": 1}  # the worst corner, but the only experiment not yet done


def test_a_plate_takes_every_new_point_before_it_repeats_a_done_one():
    """Plates (above eight points) use local penalisation over a sampled pool, which on a small discrete
    space holds many copies of each point: the plate must still hold each new point once before any
    measured or in-flight condition comes back as a replicate."""
    space = SearchSpace([Parameter(name="i", type="integer", bounds=(1, 3)),
                         Parameter(name="j", type="integer", bounds=(1, 4))])  # 12 points
    every = [{"i": i, "j": j} for i in (1, 2, 3) for j in (1, 2, 3, 4)]
    measured = every[::2]
    observations = [(p, {"y": float(p["i"] + 0.5 * p["j"])}) for p in measured]
    pending = [every[1], every[3]]
    new = [p for p in every[1::2] if p not in pending]
    planner = Planner(space, "y", True, seed=1, initial_experiments=4, num_restarts=2, raw_samples=16)
    plate = [s.params for s in planner.suggest(observations, pending, 10, 8)]
    assert len(plate) == 10
    first = plate[:len(new)]
    assert sorted(map(str, first)) == sorted(map(str, new)), plate  # every new point once, first
    assert all(p in every for p in plate[len(new):])  # then replicates of done ones
