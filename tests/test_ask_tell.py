"""The ask/tell API exactly as users write it, on a campaign with no instruments and on the demo.

    from orchestrator import Campaign
    c = Campaign.from_yaml("campaigns/x.yaml", store="sqlite:///x.db")
    batch = c.ask(4); c.tell(batch[0].id, {"distance": 0.12}); c.fail(batch[1].id, reason="bubble in well"); c.best()
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import Campaign
from orchestrator.planning.constraints import parse_linear_constraint
from orchestrator.errors import CampaignStateError
from orchestrator.store.export import experiment_rows, to_csv, to_json

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "campaigns" / "colour_match.yaml"

# No instruments section: a scientist drives the loop by hand.
PLAIN = """\
name: plain-ask-tell
description: three continuous knobs, one linear constraint, one objective
seed: 11
budget: {experiments: 10, batch_size: 2}
parameters:
  - {name: temperature, type: continuous, bounds: [20, 80], unit: C}
  - {name: ratio, type: continuous, bounds: [0, 1]}
  - {name: time_min, type: continuous, bounds: [5, 60], unit: min}
constraints:
  - "temperature + 40*ratio <= 90"
objectives:
  - {name: distance, direction: minimize}
planner: {initial_experiments: 4, num_restarts: 1, raw_samples: 16}
"""
PLAIN_BOUNDS = {"temperature": (20.0, 80.0), "ratio": (0.0, 1.0), "time_min": (5.0, 60.0)}
PLAIN_CONSTRAINT = parse_linear_constraint("temperature + 40*ratio <= 90")

MIXED = """\
name: mixed-ask-tell
seed: 1
budget: {experiments: 12, batch_size: 2}
parameters:
  - {name: n_mixes, type: integer, bounds: [0, 10]}
  - {name: volume, type: continuous, bounds: [0, 10], unit: uL}
  - {name: solvent, type: categorical, values: [water, ethanol]}
constraints:
  - "n_mixes + volume <= 10.5"
objectives:
  - {name: yield_pct, direction: maximize}
planner: {initial_experiments: 4, num_restarts: 1, raw_samples: 16}
"""


def distance(params: dict) -> float:
    """A smooth, deterministic stand-in for a measurement."""
    return ((params["temperature"] - 45) / 60) ** 2 + (params["ratio"] - 0.3) ** 2 + params["time_min"] / 600


@pytest.fixture
def plain_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain.yaml"
    path.write_text(PLAIN)
    return path


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'campaigns.db'}"


def assert_valid_plain(params: dict) -> None:
    assert set(params) == set(PLAIN_BOUNDS)
    for name, (lo, hi) in PLAIN_BOUNDS.items():
        assert isinstance(params[name], float), (name, params[name])
        assert lo <= params[name] <= hi, (name, params[name])
    assert PLAIN_CONSTRAINT.is_satisfied(params), params
    assert params["temperature"] + 40 * params["ratio"] <= 90 + 1e-6


def snapshot(c: Campaign):
    """Everything the store holds about the campaign, to compare before and after a refused call."""
    return c.experiments(), c.store.events(c.info.id), c.store.campaigns()


# import ------------------------------------------------------------------------------------


def test_import_orchestrator_is_light_and_exports_campaign_lazily():
    code = (
        "import sys, orchestrator\n"
        "heavy = [m for m in ('torch', 'botorch', 'sqlalchemy', 'pydantic') if m in sys.modules]\n"
        "assert heavy == [], heavy\n"
        "from orchestrator import Campaign\n"
        "assert Campaign.__module__ == 'orchestrator.run.campaign', Campaign.__module__\n"
        "assert 'Campaign' in orchestrator.__all__\n"
        "try:\n"
        "    orchestrator.NoSuchThing\n"
        "except AttributeError:\n"
        "    print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# ask -------------------------------------------------------------------------------------


def test_ask_respects_bounds_and_constraint_and_gives_unique_ids(plain_file, store_url):
    c = Campaign.from_yaml(plain_file, store=store_url)
    first, second = c.ask(4), c.ask(3)
    batch = first + second
    assert len(first) == 4 and len(second) == 3
    for p in batch:
        assert_valid_plain(p.params)
        assert p.info["strategy"] == "sobol"
    ids = [p.id for p in batch]
    assert len(set(ids)) == len(ids)
    assert {p.iteration for p in first} == {1} and {p.iteration for p in second} == {2}
    stored = c.experiments()
    assert [e.id for e in stored] == ids
    assert [e.sequence for e in stored] == list(range(7))
    assert all(e.status == "proposed" for e in stored)
    assert [e.params for e in stored] == [p.params for p in batch]
    # distinct points of the design, not one point repeated
    assert len({tuple(sorted(p.params.items())) for p in batch}) == len(batch)


def test_ask_needs_a_positive_whole_number(plain_file, store_url):
    c = Campaign.from_yaml(plain_file, store=store_url)
    for bad in (0, -1, 2.0, "2"):
        with pytest.raises(CampaignStateError):
            c.ask(bad)
    assert c.experiments() == []
    assert len(c.ask()) == 2  # default: the batch size


def test_ask_without_tell_stops_at_two_plates_pending_and_a_long_reason_is_refused(tmp_path):
    """3,840 pending proposals asked torch for 30 GB in the next ask; a 100 MB fail() reason was stored whole."""
    c = Campaign.from_text(PLAIN.replace("experiments: 10", "experiments: 400"), store=f"sqlite:///{tmp_path / 's.db'}")
    first = c.ask(96)
    c.ask(96)
    before = snapshot(c)
    with pytest.raises(CampaignStateError) as caught:
        c.ask(1)
    assert caught.value.one_line() == ("campaign 'plain-ask-tell' has 192 experiment(s) proposed and not told; 1 more "
                                       "would make 193, more than 192 (tell or fail the pending experiments first)")
    with pytest.raises(CampaignStateError, match="fail\\(\\) reason of 10,001 characters is longer than 10,000"):
        c.fail(first[0].id, "x" * 10_001)
    assert snapshot(c) == before
    c.fail(first[0].id, "x" * 10_000)
    assert len(c.ask(1)) == 1


def test_ask_beyond_the_budget_is_refused(plain_file, store_url):
    c = Campaign.from_yaml(plain_file, store=store_url)
    c.ask(4)
    c.ask(4)
    before = snapshot(c)
    with pytest.raises(CampaignStateError, match=r"budget for 2 more experiment\(s\), asked for 3"):
        c.ask(3)
    assert snapshot(c) == before
    assert c.remaining_budget() == 2
    c.ask(2)
    with pytest.raises(CampaignStateError, match="budget for 0 more"):
        c.ask(1)
    assert len(c.experiments()) == 10


# tell / fail ----------------------------------------------------------------------------


def test_tell_and_fail_show_in_store_and_export(plain_file, store_url):
    c = Campaign.from_yaml(plain_file, store=store_url)
    batch = c.ask(4)
    told = c.tell(batch[0].id, {"distance": 0.12})
    failed = c.fail(batch[1].id, reason="bubble in well")
    assert told.status == "measured" and told.values == {"distance": 0.12}
    assert failed.status == "failed" and failed.failure_reason == "bubble in well" and failed.values is None

    by_id = {e.id: e for e in c.experiments()}
    assert by_id[batch[0].id].status == "measured"
    assert by_id[batch[0].id].values == {"distance": 0.12}
    assert by_id[batch[0].id].finished_at is not None
    assert by_id[batch[1].id].status == "failed"
    assert by_id[batch[1].id].failure_reason == "bubble in well"
    assert [by_id[p.id].status for p in batch[2:]] == ["proposed", "proposed"]
    assert [e.id for e in c.experiments("measured")] == [batch[0].id]
    assert [e.id for e in c.experiments("failed")] == [batch[1].id]
    # a failed experiment never reaches the planner
    assert c.observations() == [(batch[0].params, {"distance": 0.12})]

    columns, rows = experiment_rows(c.store, c.info)
    assert columns[:6] == ["number", "id", "iteration", "sequence", "well", "status"]
    assert [r["number"] for r in rows] == list(range(1, len(rows) + 1)), "numbered 1..n within the campaign"
    assert {"temperature", "ratio", "time_min", "distance", "failure_reason"} <= set(columns)
    by_row = {r["id"]: r for r in rows}
    assert by_row[batch[0].id]["status"] == "measured" and by_row[batch[0].id]["distance"] == 0.12
    assert by_row[batch[1].id]["status"] == "failed" and by_row[batch[1].id]["distance"] is None
    assert by_row[batch[1].id]["failure_reason"] == "bubble in well"
    assert by_row[batch[2].id]["status"] == "proposed"
    assert by_row[batch[0].id]["temperature"] == batch[0].params["temperature"]

    from_csv = {int(r["id"]): r for r in csv.DictReader(io.StringIO(to_csv(columns, rows)))}
    assert from_csv[batch[0].id]["status"] == "measured" and float(from_csv[batch[0].id]["distance"]) == 0.12
    assert from_csv[batch[1].id]["status"] == "failed"
    assert from_csv[batch[1].id]["failure_reason"] == "bubble in well"
    from_json = {r["id"]: r for r in json.loads(to_json(columns, rows))}
    assert from_json[batch[0].id]["distance"] == 0.12
    assert from_json[batch[1].id]["failure_reason"] == "bubble in well"
    assert list(from_json[batch[0].id]) == columns


def test_best_picks_the_minimum_when_minimizing(plain_file, store_url):
    c = Campaign.from_yaml(plain_file, store=store_url)
    batch = c.ask(4)
    assert c.best() is None
    c.tell(batch[0].id, {"distance": 0.5})
    c.tell(batch[1].id, {"distance": 0.07})
    c.tell(batch[2].id, {"distance": 0.3})
    c.fail(batch[3].id, reason="spilled")  # failures never win, whatever they would have scored
    best = c.best()
    assert best.id == batch[1].id
    assert best.values == {"distance": 0.07}
    assert best.params == batch[1].params


def test_best_picks_the_maximum_when_maximizing(tmp_path, store_url):
    path = tmp_path / "max.yaml"
    path.write_text(PLAIN.replace("name: plain-ask-tell", "name: plain-max").replace("direction: minimize", "direction: maximize"))
    c = Campaign.from_yaml(path, store=store_url)
    batch = c.ask(3)
    for p, v in zip(batch, (0.5, 0.07, 0.9)):
        c.tell(p.id, {"distance": v})
    assert c.best().id == batch[2].id
    assert c.best().values == {"distance": 0.9}


BAD_VALUES = [
    pytest.param({}, id="missing-objective"),
    pytest.param({"distance": 0.1, "purity": 0.9}, id="extra-objective"),
    pytest.param({"dist": 0.1}, id="misspelt-objective"),
    pytest.param({"distance": math.nan}, id="nan"),
    pytest.param({"distance": math.inf}, id="inf"),
    pytest.param({"distance": -math.inf}, id="minus-inf"),
    pytest.param({"distance": "abc"}, id="text"),
    pytest.param({"distance": "0.12"}, id="number-as-text"),
    pytest.param({"distance": None}, id="none"),
    pytest.param({"distance": True}, id="bool"),
    pytest.param({"distance": [0.12]}, id="list"),
    pytest.param(0.12, id="bare-number"),
    pytest.param([("distance", 0.12)], id="pairs"),
]


@pytest.mark.parametrize("values", BAD_VALUES)
def test_bad_tell_values_are_refused_and_change_nothing(plain_file, store_url, values):
    c = Campaign.from_yaml(plain_file, store=store_url)
    batch = c.ask(2)
    before = snapshot(c)
    with pytest.raises(CampaignStateError) as caught:
        c.tell(batch[0].id, values)
    assert "\n" not in caught.value.one_line()
    assert snapshot(c) == before
    assert c.store.experiment(batch[0].id).status == "proposed"
    # the experiment can still be told properly afterwards
    assert c.tell(batch[0].id, {"distance": 0.2}).status == "measured"


def test_tell_unknown_id_or_another_campaigns_id_is_refused(plain_file, tmp_path, store_url):
    c = Campaign.from_yaml(plain_file, store=store_url)
    other_file = tmp_path / "other.yaml"
    other_file.write_text(PLAIN.replace("name: plain-ask-tell", "name: other-campaign"))
    other = Campaign.from_yaml(other_file, store=store_url)
    mine, theirs = c.ask(2), other.ask(2)
    assert other.info.id != c.info.id
    before, before_other = snapshot(c), snapshot(other)

    for bad_id in (10_000, -1, str(mine[0].id), None, float(mine[0].id)):
        with pytest.raises(CampaignStateError):
            c.tell(bad_id, {"distance": 0.1})
        with pytest.raises(CampaignStateError):
            c.fail(bad_id, reason="bubble in well")
    with pytest.raises(CampaignStateError, match="does not belong to campaign 'plain-ask-tell'"):
        c.tell(theirs[0].id, {"distance": 0.1})
    with pytest.raises(CampaignStateError, match="does not belong"):
        c.fail(theirs[1].id, reason="bubble in well")
    assert snapshot(c) == before
    assert snapshot(other) == before_other


def test_telling_twice_or_after_fail_is_refused(plain_file, store_url):
    c = Campaign.from_yaml(plain_file, store=store_url)
    batch = c.ask(3)
    c.tell(batch[0].id, {"distance": 0.1})
    c.fail(batch[1].id, reason="bubble in well")
    before = snapshot(c)
    with pytest.raises(CampaignStateError, match="is measured"):
        c.tell(batch[0].id, {"distance": 0.05})
    with pytest.raises(CampaignStateError, match="is measured"):
        c.fail(batch[0].id, reason="changed my mind")
    with pytest.raises(CampaignStateError, match="is failed"):
        c.tell(batch[1].id, {"distance": 0.05})
    with pytest.raises(CampaignStateError, match="is failed"):
        c.fail(batch[1].id, reason="again")
    with pytest.raises(CampaignStateError, match="needs a reason"):
        c.fail(batch[2].id, reason="  ")
    assert snapshot(c) == before
    assert c.store.experiment(batch[0].id).values == {"distance": 0.1}


# reopening -------------------------------------------------------------------------------


def test_reopening_the_same_file_and_store_continues_the_campaign(plain_file, store_url, tmp_path):
    first = Campaign.from_yaml(plain_file, store=store_url)
    batch = first.ask(4)
    first.tell(batch[0].id, {"distance": 0.3})
    first.fail(batch[1].id, reason="bubble in well")

    again = Campaign.from_yaml(plain_file, store=store_url)
    assert again.info.id == first.info.id
    assert [e.id for e in again.experiments()] == [p.id for p in batch]
    assert [e.status for e in again.experiments()] == ["measured", "failed", "proposed", "proposed"]
    assert again.remaining_budget() == 10 - 4
    assert again.best().id == batch[0].id
    assert len(again.store.campaigns()) == 1

    more = again.ask(2)  # one observation so far: still the Sobol design
    assert [p.info["design_index"] for p in more] == [4, 5]  # the design goes on, not from the start
    # the reopened campaign can tell what the first one asked
    assert again.tell(batch[2].id, {"distance": 0.2}).status == "measured"
    assert {p.iteration for p in more} == {2}
    assert min(p.id for p in more) > max(p.id for p in batch)
    with pytest.raises(CampaignStateError, match="budget for 4 more"):
        again.ask(5)

    # the same points as one uninterrupted session on a fresh store
    fresh = Campaign.from_yaml(plain_file, store=f"sqlite:///{tmp_path / 'fresh.db'}")
    assert [p.params for p in fresh.ask(6)] == [p.params for p in batch + more]


def test_a_changed_file_with_the_same_name_is_refused(plain_file, store_url):
    c = Campaign.from_yaml(plain_file, store=store_url)
    c.ask(2)
    before = snapshot(c)
    plain_file.write_text(PLAIN.replace("experiments: 10", "experiments: 20"))
    with pytest.raises(CampaignStateError) as caught:
        Campaign.from_yaml(plain_file, store=store_url)
    message = caught.value.one_line()
    assert "'plain-ask-tell'" in message and "different campaign file" in message and "new name" in message
    assert "\n" not in message
    assert snapshot(c) == before
    assert c.store.get_campaign("plain-ask-tell").spec_yaml == PLAIN
    # a new name in the same store is a new campaign
    plain_file.write_text(PLAIN.replace("experiments: 10", "experiments: 20").replace("plain-ask-tell", "plain-ask-tell-2"))
    renamed = Campaign.from_yaml(plain_file, store=store_url)
    assert renamed.info.id != c.info.id and renamed.experiments() == []


# determinism and the Bayesian phase ---------------------------------------------------------


def _run_sequence(path: Path, url: str) -> list:
    c = Campaign.from_yaml(path, store=url)
    sobol = c.ask(4)
    for i, p in enumerate(sobol):
        if i == 2:
            c.fail(p.id, reason="bubble in well")
        else:
            c.tell(p.id, {"distance": distance(p.params)})
    bo = c.ask(2)
    return sobol + bo


def test_same_file_and_tells_give_identical_proposals_through_sobol_and_botorch(plain_file, tmp_path):
    one = _run_sequence(plain_file, f"sqlite:///{tmp_path / 'one.db'}")
    two = _run_sequence(plain_file, f"sqlite:///{tmp_path / 'two.db'}")
    assert [p.info["strategy"] for p in one] == ["sobol"] * 4 + ["qLogEI"] * 2
    assert [p.params for p in one] == [p.params for p in two]
    assert [p.info["predicted_mean"] for p in one[4:]] == [p.info["predicted_mean"] for p in two[4:]]
    assert one[4].info["n_observations"] == 3  # the failed experiment is not an observation
    for p in one:
        assert_valid_plain(p.params)
    assert one[4].params != one[5].params


# the demo file ----------------------------------------------------------------------------


def test_demo_campaign_through_ask_tell(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    c = Campaign.from_yaml(DEMO, store=url)
    assert c.spec.instruments is not None  # ask/tell works whether or not instruments are declared
    batch = c.ask(4)
    assert len({p.id for p in batch}) == 4
    for p in batch:
        assert set(p.params) == {"red", "yellow", "blue"}
        assert all(0.0 <= v <= 150.0 for v in p.params.values())
        assert sum(p.params.values()) <= 300 + 1e-6
    c.tell(batch[0].id, {"distance": 0.12})
    c.fail(batch[1].id, reason="bubble in well")
    c.tell(batch[2].id, {"distance": 0.05})
    assert c.best().id == batch[2].id
    reopened = Campaign.from_yaml(DEMO, store=url)
    assert reopened.info.id == c.info.id
    assert reopened.remaining_budget() == 24 - 4
    assert [e.status for e in reopened.experiments()] == ["measured", "failed", "measured", "proposed"]
    with pytest.raises(CampaignStateError):
        reopened.tell(batch[3].id, {"distance": 0.1, "colour": 1.0})


# integer and categorical parameters ----------------------------------------------------------


def test_integer_and_categorical_parameters_through_ask_tell(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED)
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    c = Campaign.from_yaml(path, store=url)
    proposals = []
    for n in (2, 2, 1):  # two Sobol batches, then one BoTorch proposal over the mixed space
        batch = c.ask(n)
        proposals += batch
        for p in batch:
            bonus = 2.0 if p.params["solvent"] == "water" else 0.0
            c.tell(p.id, {"yield_pct": p.params["n_mixes"] + p.params["volume"] + bonus})
    assert [p.info["strategy"] for p in proposals] == ["sobol"] * 4 + ["qLogEI"]
    stored = {e.id: e.params for e in Campaign.from_yaml(path, store=url).experiments()}
    for p in proposals:
        n, volume, solvent = p.params["n_mixes"], p.params["volume"], p.params["solvent"]
        assert type(n) is int and 0 <= n <= 10, p.params
        assert 0.0 <= volume <= 10.0, p.params
        assert solvent in ("water", "ethanol"), p.params
        # rounding n_mixes to a whole number must not break the constraint
        assert n + volume <= 10.5 + 1e-6, p.params
        assert stored[p.id] == p.params and type(stored[p.id]["n_mixes"]) is int
    best = c.best()
    assert best.values["yield_pct"] == max(
        p.params["n_mixes"] + p.params["volume"] + (2.0 if p.params["solvent"] == "water" else 0.0) for p in proposals
    )


# found by tests/test_fuzz_ask_tell.py -------------------------------------------------------


def test_bools_and_ids_beyond_64_bits_are_refused(plain_file, store_url):
    c = Campaign.from_yaml(plain_file, store=store_url)
    with pytest.raises(CampaignStateError, match="positive whole number"):
        c.ask(True)  # not 1
    with pytest.raises(CampaignStateError, match="at most one plate, 96 experiments, at once; got 97"):
        c.ask(97)  # a pool of 8 x n points is searched n times: 20,000 ran for minutes
    batch = c.ask(2)
    before = snapshot(c)
    for bad_id in (True, 2**63, 2**64, -(2**63) - 1, 10**5000):
        with pytest.raises(CampaignStateError) as caught:
            c.tell(bad_id, {"distance": 0.1})
        assert "\n" not in caught.value.one_line() and len(caught.value.one_line()) < 300
        with pytest.raises(CampaignStateError):
            c.fail(bad_id, reason="bubble in well")
    assert snapshot(c) == before
    assert c.store.experiment(batch[0].id).status == "proposed"


def test_values_beyond_float_range_and_unstorable_reasons_are_refused(plain_file, store_url):
    import numpy as np

    c = Campaign.from_yaml(plain_file, store=store_url)
    batch = c.ask(2)
    before = snapshot(c)
    with pytest.raises(CampaignStateError, match="not a finite number"):
        c.tell(batch[0].id, {"distance": 10**400})
    with pytest.raises(CampaignStateError) as caught:
        c.tell(batch[0].id, {"distance": np.ones((2, 2))})
    assert "\n" not in caught.value.one_line()
    with pytest.raises(CampaignStateError, match="not a finite sd"):
        c.tell(batch[0].id, {"distance": 0.1}, uncertainty={"distance": 10**400})
    with pytest.raises(CampaignStateError, match="not valid text"):
        c.fail(batch[1].id, reason="\ud800 from a bad decode")
    assert snapshot(c) == before
    assert c.fail(batch[1].id, reason="bubble in well").status == "failed"
