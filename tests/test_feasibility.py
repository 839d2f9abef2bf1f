"""Failures teach the planner where not to go, but only chemical ones.

A 2-D campaign whose objective grows with ``x``; every experiment with ``x > 0.6`` fails.
Told as chemistry, the failures train the feasibility model and the planner leaves the
region; told as instrument faults, they are not learned and it keeps proposing there.
"""

from __future__ import annotations

import pytest

from orchestrator import Campaign
from orchestrator.errors import CampaignStateError

FILE = """\
name: feasibility-{kind}
seed: 5
budget: {{experiments: 30, batch_size: 1}}
parameters:
  - {{name: x, type: continuous, bounds: [0, 1]}}
  - {{name: y, type: continuous, bounds: [0, 1]}}
objectives:
  - {{name: yield_pct, direction: maximize}}
planner: {{initial_experiments: 4, num_restarts: 2, raw_samples: 32}}
"""
FAILS_ABOVE = 0.6
ROUNDS = 10


def run(tmp_path, kind: str):
    c = Campaign.from_text(FILE.format(kind=kind), store=f"sqlite:///{tmp_path / 'f.db'}")
    proposals = []
    for _ in range(ROUNDS):
        (p,) = c.ask(1)
        proposals.append(p)
        if p.params["x"] > FAILS_ABOVE:
            c.fail(p.id, reason="nothing formed" if kind == "chemistry" else "tip jam", kind=kind)
        else:
            c.tell(p.id, {"yield_pct": 10 * p.params["x"] + p.params["y"]})
    return c, proposals


def in_region(proposals) -> int:
    return sum(p.params["x"] > FAILS_ABOVE for p in proposals)


@pytest.mark.slow  # twenty proposals, twelve of them model-based: ~100 s on a busy 2-core machine
def test_chemistry_failures_are_avoided_instrument_faults_are_not(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "i").mkdir()
    chem, chem_props = run(tmp_path / "c", "chemistry")
    inst, inst_props = run(tmp_path / "i", "instrument")
    assert in_region(chem_props) >= 2, "the failing region was hardly tried: the test proves nothing"
    # once the region has failed three times it is left alone (after two, qLogEI may still probe its edge)
    after = [p for p in chem_props if p.info.get("n_failed_chemistry", 0) >= 3]
    assert len(after) >= 3, [p.info.get("n_failed_chemistry") for p in chem_props]
    assert all(p.info["strategy"] == "qLogEI" for p in after)
    assert in_region(after) == 0, [p.params for p in after]
    # the same faults as instrument faults: nothing is learned, the region stays attractive
    inst_last = inst_props[-4:]
    assert in_region(inst_last) >= 3, [p.params for p in inst_last]
    assert all(p.info.get("n_failed_chemistry", 0) == 0 for p in inst_props)
    stored = {e.id: e for e in inst.experiments()}
    assert {stored[p.id].failure_kind for p in inst_props if p.params["x"] > FAILS_ABOVE} == {"instrument"}
    assert {e.failure_kind for e in chem.experiments("failed")} == {"chemistry"}


def test_fail_defaults_to_chemistry_and_refuses_unknown_kinds(tmp_path):
    c = Campaign.from_text(FILE.format(kind="kinds"), store=f"sqlite:///{tmp_path / 'k.db'}")
    a, b = c.ask(1)[0], c.ask(1)[0]
    with pytest.raises(CampaignStateError, match="kind 'robot'"):
        c.fail(a.id, reason="clogged", kind="robot")
    assert c.fail(a.id, reason="clogged").failure_kind == "chemistry"
    assert c.fail(b.id, reason="tip jam", kind="instrument").failure_kind == "instrument"


def test_feasibility_model_learns_a_failing_region():
    """The classifier alone: P(success) is low among chemistry failures, high among successes."""
    import torch

    from orchestrator.planning.acquisition import FEASIBLE, build_problem, predictions
    from orchestrator.planning.space import SearchSpace
    from orchestrator.spec.parameters import Parameter
    from orchestrator.spec.sections import Objective
    from orchestrator.planning.surrogates import fit_output

    space = SearchSpace([Parameter(name="x", type="continuous", bounds=(0, 1))])
    good = [({"x": x}, {"v": x}) for x in (0.05, 0.2, 0.35, 0.5)]
    bad = [{"x": x} for x in (0.75, 0.9, 1.0)]
    problem = build_problem(space, [Objective(name="v", direction="maximize")], [], good, failed=bad)
    assert [d.name for d in problem.outputs] == ["v", FEASIBLE]
    from botorch.models import ModelListGP

    model = ModelListGP(*[fit_output(d, seed=0)[0] for d in problem.outputs])
    probe = torch.tensor([[0.25], [0.95]], dtype=torch.float64)
    inside, outside = (p["probability_success"] for p in predictions(problem, model, probe))
    assert inside > 0.8 and outside < 0.2, (inside, outside)
    # the failures also enter the objective's GP at the worst value seen, so no improvement is expected there
    assert problem.outputs[0].Y.reshape(-1).tolist() == [0.05, 0.2, 0.35, 0.5, 0.05, 0.05, 0.05]
