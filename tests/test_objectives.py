"""Several objectives, a target value, outcome constraints and reported uncertainty, through YAML and ask/tell."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator import Campaign
from orchestrator.run.campaign import reported_uncertainties
from orchestrator.errors import CampaignStateError, SpecError
from orchestrator.report.data import load_report_data
from orchestrator.report.pareto import pareto_section
from orchestrator.spec.sections import Objective
from orchestrator.spec.loader import parse_spec

ONE_D = """\
name: {name}
seed: 2
budget: {{experiments: 12, batch_size: 1}}
parameters:
  - {{name: x, type: continuous, bounds: [0, 1]}}
objectives:
{objectives}
{extra}
planner: {{initial_experiments: 4, num_restarts: 2, raw_samples: 32}}
"""


def campaign(tmp_path, name: str, objectives: str, extra: str = "") -> Campaign:
    text = ONE_D.format(name=name, objectives=objectives, extra=extra)
    return Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'o.db'}")


def tell_design(c: Campaign, f) -> list:
    """Ask and tell the 4-point Sobol design with ``f(params) -> values``."""
    batch = c.ask(4)
    for p in batch:
        c.tell(p.id, f(p.params))
    return batch


# several objectives --------------------------------------------------------------------------

TWO = "  - {name: cost, direction: minimize}\n  - {name: waste, direction: minimize}"


def test_pareto_front_and_best_with_two_objectives(tmp_path):
    c = campaign(tmp_path, "pareto", TWO)
    batch = c.ask(4)
    values = [(1.0, 5.0), (2.0, 2.0), (3.0, 3.0), (5.0, 1.0)]  # (3, 3) is dominated by (2, 2)
    for p, (cost, waste) in zip(batch, values):
        c.tell(p.id, {"cost": cost, "waste": waste})
    front = c.pareto_front()
    assert [b.id for b in front] == [batch[0].id, batch[1].id, batch[3].id]
    assert c.best().id == batch[0].id  # best on the first objective, a point of the front
    assert c.best().id in {b.id for b in front}


def test_two_objectives_propose_by_hypervolume_with_an_inferred_reference_point(tmp_path):
    c = campaign(tmp_path, "ehvi", TWO)
    tell_design(c, lambda p: {"cost": p["x"], "waste": (1 - p["x"]) ** 2})
    (proposal,) = c.ask(1)
    info = proposal.info
    assert info["strategy"] == "qLogNEHVI"
    costs = [-e.values["cost"] for e in c.experiments("measured")]
    wastes = [-e.values["waste"] for e in c.experiments("measured")]
    # worst observed (higher-is-better) value minus 10% of the observed range
    expected = [min(v) - 0.1 * (max(v) - min(v)) for v in (costs, wastes)]
    assert info["reference_point"] == pytest.approx(expected)
    assert set(info["predicted"]) == {"cost", "waste"}
    assert set(info["models"]) == {"cost", "waste"}
    assert 0.0 <= proposal.params["x"] <= 1.0


def test_a_given_reference_point_is_used(tmp_path):
    objectives = ("  - {name: cost, direction: minimize, reference: 2.0}\n"
                  "  - {name: purity, direction: maximize, reference: 0.5}")
    c = campaign(tmp_path, "ref", objectives)
    tell_design(c, lambda p: {"cost": p["x"], "purity": p["x"] ** 0.5})
    assert c.ask(1)[0].info["reference_point"] == [-2.0, 0.5]


# target value ------------------------------------------------------------------------------


def test_a_target_value_is_approached_from_either_side(tmp_path):
    c = campaign(tmp_path, "target", "  - {name: peak_nm, target: 520}")
    tell_design(c, lambda p: {"peak_nm": 400 + 200 * p["x"]})  # hits 520 nm at x = 0.6
    nearest_nm = min(abs(e.values["peak_nm"] - 520) for e in c.experiments("measured"))
    (proposal,) = c.ask(1)
    assert proposal.info["strategy"] == "qLogEI"
    # the incumbent: the best predicted score at a measured point, near the nearest measured distance (noise-free)
    assert proposal.info["incumbent_score"] == pytest.approx(-nearest_nm, abs=2.0)
    assert abs(proposal.params["x"] - 0.6) < 0.05, proposal.params
    assert abs(proposal.info["predicted_mean"] - 520) < 10
    c.tell(proposal.id, {"peak_nm": 400 + 200 * proposal.params["x"]})
    measured = c.experiments("measured")
    nearest = min(measured, key=lambda e: abs(e.values["peak_nm"] - 520))
    assert c.best().id == nearest.id  # nearest the target, not the largest or smallest
    assert nearest.values["peak_nm"] not in (max(e.values["peak_nm"] for e in measured),
                                             min(e.values["peak_nm"] for e in measured))


def test_the_campaign_file_picks_the_acquisition_for_one_objective(tmp_path):
    file = ONE_D.replace("raw_samples: 32}", "raw_samples: 32, acquisition: qLogNEI}")
    text = file.format(name="nei", objectives="  - {name: y, direction: maximize}", extra="")
    c = Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'n.db'}")
    tell_design(c, lambda p: {"y": -(p["x"] - 0.3) ** 2})
    (proposal,) = c.ask(1)
    assert proposal.info["strategy"] == "qLogNEI" and "incumbent_score" not in proposal.info
    assert abs(proposal.params["x"] - 0.3) < 0.2, proposal.params


# outcome constraints and uncertainty --------------------------------------------------------------

CONSTRAINED = 'outcome_constraints: ["absorbance <= 1"]'


def test_an_outcome_constraint_keeps_proposals_in_the_linear_range(tmp_path):
    c = campaign(tmp_path, "outcome", "  - {name: signal, direction: maximize}", CONSTRAINED)
    design = tell_design(c, lambda p: {"signal": p["x"], "absorbance": 2 * p["x"]})  # absorbance <= 1: x <= 0.5
    xs = [p.params["x"] for p in design]
    assert min(xs) < 0.5 < max(xs), "the design must have points on both sides, or the test proves nothing"
    (proposal,) = c.ask(1)
    assert 0.3 <= proposal.params["x"] <= 0.55, proposal.params
    # qLogEI's incumbent: the best predicted signal at a measured point predicted inside the linear range
    assert proposal.info["strategy"] == "qLogEI" and proposal.info["incumbent_meets_constraints"] is True
    assert proposal.info["incumbent_score"] == pytest.approx(max(x for x in xs if x <= 0.5), abs=0.05)
    assert set(proposal.info["models"]) == {"signal", "absorbance"}
    assert 0.0 <= proposal.info["probability_feasible"] <= 1.0
    assert proposal.info["predicted"]["absorbance"]["mean"] < 1.1


def test_with_no_measured_point_in_range_the_planner_seeks_the_range(tmp_path):
    c = campaign(tmp_path, "outcome-none", "  - {name: signal, direction: maximize}", CONSTRAINED)
    design = tell_design(c, lambda p: {"signal": p["x"], "absorbance": 0.9 + p["x"]})  # in range below x = 0.1
    assert min(p.params["x"] for p in design) > 0.1, "a design point in range: the test proves nothing"
    (proposal,) = c.ask(1)
    assert proposal.info["incumbent_meets_constraints"] is False
    assert proposal.info["incumbent_score"] < min(e.values["signal"] for e in c.experiments("measured")) + 0.05
    assert proposal.params["x"] < 0.15, proposal.params  # into the range, not towards the highest signal


def test_tell_requires_objectives_and_accepts_declared_outcomes(tmp_path):
    c = campaign(tmp_path, "outcome-tell", "  - {name: signal, direction: maximize}", CONSTRAINED)
    a, b, d = c.ask(3)
    assert c.tell(a.id, {"signal": 0.2}).values == {"signal": 0.2}  # the outcome may be missing
    assert c.tell(b.id, {"signal": 0.3, "absorbance": 0.7}).values == {"signal": 0.3, "absorbance": 0.7}
    with pytest.raises(CampaignStateError, match="optionally: absorbance"):
        c.tell(d.id, {"absorbance": 0.7})
    with pytest.raises(CampaignStateError):
        c.tell(d.id, {"signal": 0.1, "colour": 3.0})


def test_the_best_and_a_reached_target_meet_the_outcome_constraints(tmp_path):
    """A well outside the linear range is not the campaign's best, nor does it stop the campaign on target,
    however good its signal; one without the outcome measured is not known to meet it either."""
    text = ONE_D.format(name="outcome-best", objectives="  - {name: signal, direction: maximize}",
                        extra=CONSTRAINED + "\nstopping: {target: {objective: signal, value: 0.8}}")
    c = Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'b.db'}")
    bright, unknown, usable = c.ask(3)
    c.tell(bright.id, {"signal": 0.9, "absorbance": 1.8})
    c.tell(unknown.id, {"signal": 0.85})
    c.tell(usable.id, {"signal": 0.4, "absorbance": 0.8})
    assert c.best().id == usable.id
    assert not c.should_stop().stop
    (last,) = c.ask(1)
    c.tell(last.id, {"signal": 0.81, "absorbance": 0.9})
    assert c.best().id == last.id and c.should_stop().stop


def test_without_any_usable_well_the_best_is_the_best_measured(tmp_path):
    c = campaign(tmp_path, "outcome-none-usable", "  - {name: signal, direction: maximize}", CONSTRAINED)
    low, high = c.ask(2)
    c.tell(low.id, {"signal": 0.2, "absorbance": 1.5})
    c.tell(high.id, {"signal": 0.6, "absorbance": 1.9})
    assert c.best().id == high.id


def test_the_pareto_front_counts_only_experiments_meeting_the_outcome_constraints(tmp_path):
    c = campaign(tmp_path, "outcome-front", TWO, CONSTRAINED)
    bright, usable, other, unknown = c.ask(4)
    c.tell(bright.id, {"cost": 1.0, "waste": 1.0, "absorbance": 1.8})  # dominates every other well
    c.tell(usable.id, {"cost": 2.0, "waste": 3.0, "absorbance": 0.5})
    c.tell(other.id, {"cost": 3.0, "waste": 2.0, "absorbance": 0.9})
    c.tell(unknown.id, {"cost": 1.5, "waste": 1.5})  # outcome not measured: not known to meet it
    assert [b.id for b in c.pareto_front()] == [usable.id, other.id]
    assert c.best().id == usable.id
    section = pareto_section(load_report_data(c.store, "outcome-front"))
    assert "2 that break an outcome constraint are left off the front" in section.body
    assert "2 of 4 are non-dominated" in section.body


def test_without_any_usable_well_the_pareto_front_is_over_all_measured(tmp_path):
    c = campaign(tmp_path, "outcome-front-none", TWO, CONSTRAINED)
    a, b = c.ask(2)
    c.tell(a.id, {"cost": 1.0, "waste": 2.0, "absorbance": 1.8})
    c.tell(b.id, {"cost": 2.0, "waste": 1.0, "absorbance": 1.9})
    assert [e.id for e in c.pareto_front()] == [a.id, b.id]


def test_reported_uncertainty_reaches_the_model_as_observed_noise(tmp_path):
    c = campaign(tmp_path, "noisy", "  - {name: signal, direction: maximize}")
    batch = c.ask(4)
    for p in batch:
        c.tell(p.id, {"signal": p.params["x"]}, uncertainty={"signal": 0.05})
    assert reported_uncertainties(c.store, c.info.id) == {p.id: {"signal": 0.05} for p in batch}
    (proposal,) = c.ask(1)
    model = proposal.info["models"]["signal"]
    assert model["observed_noise"] is True
    values = [p.params["x"] for p in batch]
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    # the fixed noise in standardised units: sd^2 / var(y)
    assert model["noise_variance"] == pytest.approx(0.05 ** 2 / variance, rel=1e-6)
    with pytest.raises(CampaignStateError, match="not a finite sd"):
        c.tell(proposal.id, {"signal": 0.5}, uncertainty={"signal": -1.0})


# validation ------------------------------------------------------------------------------------

BAD_FILES = [
    ("  - {name: a, direction: minimize, target: 3}", "", "exactly one of 'direction"),
    ("  - {name: a}", "", "exactly one of 'direction"),
    ("  - {name: a, direction: minimize}", 'outcome_constraints: ["a <= 2"]', "an objective or parameter"),
    ("  - {name: a, direction: minimize}", 'outcome_constraints: ["absorbance == 2"]', "use <= or >="),
    ("  - {name: a, direction: minimize}", 'outcome_constraints: ["absorbance <<= 2"]', "outcome_constraints[0]"),
    ("  - {name: a, direction: minimize}", "stopping: {target: {objective: b, value: 1}}", "stopping.target.objective"),
    ("  - {name: a, direction: minimize}", "prior_mean: {simulator: nope}", "prior_mean.simulator 'nope'"),
    ("  - {name: a, direction: minimize}", "prior_mean: {simulator: linear, settings: {a: 3}}",
     "prior_mean.settings for 'linear': prior_mean.settings.a must be"),
]


@pytest.mark.parametrize("objectives, extra, message", BAD_FILES)
def test_bad_objective_sections_give_one_line_errors(objectives, extra, message):
    with pytest.raises(SpecError) as caught:
        parse_spec(ONE_D.format(name="bad", objectives=objectives, extra=extra))
    text = caught.value.one_line()
    assert message in text and "\n" not in text


def test_the_worse_tail_of_an_objective_is_pulled_in_before_modelling():
    from orchestrator.planning.acquisition import _winsorized

    values = [0.4, 3.0, 9.0, 21.0, 45.0, 300.0]  # Branin-like: one far-off bad value
    lowest = Objective(name="y", direction="minimize")
    clipped = _winsorized(values, lowest, prior_mean=None)
    q1, q3 = np.percentile(values, [25, 75])
    assert clipped[:5] == values[:5] and clipped[5] == pytest.approx(q3 + 1.5 * (q3 - q1)) and clipped[5] < 300
    assert np.argsort(clipped).tolist() == np.argsort(values).tolist()  # the ranking is kept
    highest = Objective(name="y", direction="maximize")
    assert _winsorized([-v for v in values], highest, prior_mean=None) == [-v for v in clipped]
    # left alone: a target objective (both sides are bad), a prior mean (the GP models true residuals)
    assert _winsorized(values, Objective(name="y", target=10.0), prior_mean=None) == values
    assert _winsorized(values, lowest, prior_mean=lambda p: 0.0) == values
