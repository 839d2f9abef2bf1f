"""The kriging believer that picks a plate (``orchestrator.planning.believer``).

Its variances after each believed point must be the exact Gaussian-process algebra (a candidate added
late gets the same numbers as one there from the start), it must serve only the acquisitions it can
reproduce analytically (others go to local penalisation), and a plate it picks must be better than local
penalisation's where that is the point of it: more of the plate where the model expects improvement.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from botorch.models import ModelListGP  # noqa: E402

from orchestrator.planning import acquisition, believer, lean_gp  # noqa: E402
from orchestrator.planning.constraints import parse_linear_constraint  # noqa: E402
from orchestrator.planning.planner import Planner  # noqa: E402
from orchestrator.planning.space import SearchSpace  # noqa: E402
from orchestrator.planning.surrogates import fit_output  # noqa: E402
from orchestrator.spec.parameters import Parameter  # noqa: E402
from orchestrator.spec.sections import Objective  # noqa: E402

SPACE = SearchSpace([Parameter(name="a", type="continuous", bounds=(0.0, 1.0)),
                     Parameter(name="b", type="continuous", bounds=(0.0, 1.0))])


def _bowl(params) -> float:
    """A smooth 2-D function with its maximum 0 at (0.3, 0.7)."""
    return -((params["a"] - 0.3) ** 2 + (params["b"] - 0.7) ** 2) * 10


def _setup(n: int = 12, objectives=None, outcome_constraints=(), kernel: str = "matern"):
    """A fitted GP (lean, for one output) and its acquisition on ``n`` Sobol points of ``_bowl`` (and an outcome
    ``g`` = 3 a)."""
    objectives = objectives or [Objective(name="y", direction="maximize")]
    planner = Planner(SPACE, "y", True, seed=3, initial_experiments=n)
    observations = [(s.params, {"y": _bowl(s.params), "g": 3 * s.params["a"]}) for s in planner.initial_design(0, n)]
    problem = acquisition.build_problem(SPACE, objectives, outcome_constraints, observations)
    fitted = [fit_output(data, 3, kernel)[0] for data in problem.outputs]
    model = lean_gp.LeanExactGP(fitted[0]) if len(fitted) == 1 else ModelListGP(*fitted)
    acqf, _, _ = acquisition.make_acquisition(problem, model, observations, None, 3)
    return planner, model, acqf


def test_variances_after_beliefs_are_the_gaussian_process_conditioned_on_those_points():
    _, model, acqf = _setup()
    candidates = torch.rand(40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        belief = believer._Belief(model, 1.0, float(acqf.best_f), candidates, None)
        for j in (5, 17, 30):
            belief.believe(j)
        late = belief.add(torch.rand(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
        everything = belief.points
        joint = model.posterior(everything).mvn.covariance_matrix  # (46, 46), the observations' posterior
        B = [5, 17, 30]
        gain = joint[:, B] @ torch.linalg.solve(joint[B][:, B] + model.noise_variance * torch.eye(3, dtype=torch.float64),
                                               joint[B, :])
        expected = (joint.diagonal() - gain.diagonal()).clamp_min(0.0)
    assert torch.allclose(belief.variance, expected, rtol=1e-6, atol=1e-10)
    assert list(late) == list(range(40, 46))
    assert torch.allclose(belief.mean, model.posterior(everything).mean.reshape(-1))  # a belief leaves the mean


@pytest.mark.parametrize("kernel", ["matern", "rbf"])
def test_a_plate_is_distinct_new_points_and_skips_what_is_done(kernel):
    planner, model, acqf = _setup(kernel=kernel)
    done = planner.optimizer.feasible_starts(8)
    points, values = believer.believer_batch(planner.optimizer, acqf, 24, done)
    assert points.shape == (24, 2) and values.shape == (24,)
    assert len(torch.unique(points, dim=0)) == 24
    assert not bool((torch.cdist(points, done) < 1e-9).any())
    assert bool(torch.isfinite(values).all())


@pytest.mark.parametrize("case", ["target objective", "outcome constraint"])
def test_acquisitions_it_cannot_reproduce_go_to_local_penalisation(case):
    if case == "target objective":
        planner, _, acqf = _setup(objectives=[Objective(name="y", target=-0.5)])
    else:
        planner, _, acqf = _setup(outcome_constraints=[parse_linear_constraint("g <= 2")])
    assert believer.believer_batch(planner.optimizer, acqf, 24) is None
    points, _ = planner.optimizer.batch(acqf, 24)  # the plate still comes, by local penalisation
    assert points.shape == (24, 2)


def test_most_of_its_plate_lands_where_penalisation_spreads_it_thin():
    """On the bowl, the believer's plate crowds the optimum at the model's resolution; local penalisation's,
    pushed apart by distance alone, puts fewer points there (the reason plates use the believer)."""
    planner, model, acqf = _setup(n=16)
    best = max(_bowl(p) for p in (s.params for s in planner.initial_design(0, 16)))
    believed, _ = believer.believer_batch(planner.optimizer, acqf, 48)
    from orchestrator.planning.penalized import optimize_penalized

    penalised, _ = optimize_penalized(planner.optimizer, acqf, 48)

    def better(points) -> int:
        return sum(_bowl(SPACE.from_unit(x.numpy())) > best for x in points)

    assert better(believed) >= better(penalised) + 8, (better(believed), better(penalised))
    assert math.isfinite(best)
