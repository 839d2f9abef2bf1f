"""The scientist's Python API (issue 31): a campaign built in Python, existing measurements added, DataFrames out.

Protects: the issue's block running as written; ``Campaign.create`` giving the spec the YAML gives, with the
same one-line problems; a campaign saved with ``to_yaml`` and reopened from the file continuing; each bad row
of ``add``/``add_dataframe`` giving one line that names its row and column, with nothing stored; added
measurements stored as events (replay rebuilds them), learned from by the planner, outside the budget unless
asked; an ask/tell campaign whose budget is spent becoming ``completed``; ``to_dataframe``'s columns and values.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import Campaign
from orchestrator.cli.parser import main
from orchestrator.errors import CampaignStateError, SpecError
from orchestrator.run.campaign import planner_inputs
from orchestrator.spec.loader import parse_spec, spec_hash
from orchestrator.store.campaign_store import CampaignStore

REPO = Path(__file__).resolve().parents[1]

SUZUKI = dict(name="suzuki-screen", seed=3, budget={"experiments": 30, "batch_size": 4},
              parameters=[{"name": "temp_c", "type": "continuous", "bounds": [20, 100], "unit": "C"},
                          {"name": "base", "type": "categorical", "values": ["K2CO3", "Cs2CO3"]}],
              objectives=[{"name": "yield_pct", "direction": "maximize"}])

# every kind of parameter, a constraint and an outcome, for the bad rows
RICH = dict(name="rich", seed=1, budget={"experiments": 6, "batch_size": 2},
            parameters=[{"name": "temp_c", "type": "continuous", "bounds": [20, 100]},
                        {"name": "cycles", "type": "integer", "bounds": [1, 5]},
                        {"name": "conc", "type": "discrete", "values": [0.5, 1, 2]},
                        {"name": "base", "type": "categorical", "values": ["K2CO3", "Cs2CO3"]},
                        {"name": "pressure", "type": "fixed", "value": 1}],
            constraints=["temp_c + 10*cycles <= 120"],
            objectives=[{"name": "yield_pct", "direction": "maximize"}],
            outcome_constraints=["purity >= 0.9"],
            planner={"initial_experiments": 4, "num_restarts": 1, "raw_samples": 16})
GOOD_ROW = {"temp_c": 50.0, "cycles": 2, "conc": 1, "base": "K2CO3", "yield_pct": 40.0, "purity": 0.95}


def test_the_issues_block_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = Campaign.create(name="suzuki-screen", seed=3, budget={"experiments": 30, "batch_size": 4},
                        parameters=[{"name": "temp_c", "type": "continuous", "bounds": [20, 100], "unit": "C"},
                                    {"name": "base", "type": "categorical", "values": ["K2CO3", "Cs2CO3"]}],
                        objectives=[{"name": "yield_pct", "direction": "maximize"}],
                        store="sqlite:///suzuki.db")
    first = c.add({"temp_c": 60, "base": "K2CO3"}, {"yield_pct": 41.0})
    df = pd.DataFrame({"temp_c": [70.0, 85.5], "base": ["Cs2CO3", "K2CO3"], "yield_pct": [52.0, 47.5]})
    more = c.add_dataframe(df)
    df = c.to_dataframe()
    c.to_yaml("suzuki.yaml")

    assert isinstance(first, int) and more == [first + 1, first + 2]
    assert (tmp_path / "suzuki.db").is_file()
    assert df["id"].tolist() == [first, *more]
    assert df["temp_c"].tolist() == [60.0, 70.0, 85.5] and df["base"].tolist() == ["K2CO3", "Cs2CO3", "K2CO3"]
    assert df["yield_pct"].tolist() == [41.0, 52.0, 47.5]
    assert set(df["status"]) == {"measured"} and set(df["source"]) == {"added"}
    assert (tmp_path / "suzuki.yaml").read_text(encoding="utf-8") == c.info.spec_yaml
    assert c.best().values == {"yield_pct": 52.0}


def test_create_gives_the_spec_the_yaml_gives():
    written = parse_spec("""\
name: suzuki-screen
seed: 3
budget: {experiments: 30, batch_size: 4}
parameters:
  - {name: temp_c, type: continuous, bounds: [20, 100], unit: C}
  - {name: base, type: categorical, values: [K2CO3, Cs2CO3]}
objectives:
  - {name: yield_pct, direction: maximize}
store: {url: "sqlite:///:memory:"}
""")
    created = Campaign.create(**SUZUKI, store="sqlite:///:memory:")
    assert created.spec == written
    assert parse_spec(created.yaml_text) == written  # the stored text is a campaign file like any other


def test_create_refuses_with_the_one_lines_of_a_file():
    bad = {**SUZUKI, "budget": {"experiments": 30, "batch_size": 40}, "colour": "blue"}
    with pytest.raises(SpecError) as caught:
        Campaign.create(**bad, store="sqlite:///:memory:")
    assert caught.value.source == "Campaign.create"
    assert "colour: unknown field; remove it or check its spelling" in caught.value.problems
    assert any(p.startswith("budget: batch_size 40 exceeds experiments 30") for p in caught.value.problems)
    with pytest.raises(SpecError, match=r"objectives: required field is missing"):
        Campaign.create(name="x", budget={"experiments": 3, "batch_size": 1}, parameters=SUZUKI["parameters"],
                        store="sqlite:///:memory:")
    with pytest.raises(SpecError, match=r"seed: object <object object at .*> cannot be written in a campaign file"):
        Campaign.create(**{**SUZUKI, "seed": object()}, store="sqlite:///:memory:")


def test_a_campaign_saved_with_to_yaml_and_reopened_continues(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    c = Campaign.create(**SUZUKI, store=url)
    c.add({"temp_c": 30, "base": "Cs2CO3"}, {"yield_pct": 12.0})
    batch = c.ask()
    for p in batch[:2]:
        c.tell(p.id, {"yield_pct": p.params["temp_c"] / 2})
    path = c.to_yaml(tmp_path / "suzuki.yaml")

    again = Campaign.from_yaml(path, store=url)
    assert again.info.id == c.info.id and spec_hash(path.read_text(encoding="utf-8")) == c.info.spec_hash
    assert [e.id for e in again.experiments("proposed")] == [p.id for p in batch[2:]]
    again.tell(batch[2].id, {"yield_pct": 20.0})  # an id the first object asked for
    nxt = again.ask(2)
    # the default design (4: a third of the budget is 10, in whole batches) is done; the model sees every value
    # told, by either object, and the added row
    assert nxt[0].iteration == batch[0].iteration + 1 and nxt[0].info["n_observations"] == 4
    assert Campaign.create(**SUZUKI, store=url).info.id == c.info.id  # the same call reopens it too
    assert len(CampaignStore(url).campaigns()) == 1


def rich_frame(**bad: object) -> pd.DataFrame:
    """Three good rows (index 0, 1, 2), then row 3 with ``bad`` over a good row."""
    rows = [GOOD_ROW, {**GOOD_ROW, "temp_c": 60.0}, {**GOOD_ROW, "base": "Cs2CO3"}, {**GOOD_ROW, **bad}]
    return pd.DataFrame(rows)


BAD_ROWS = {
    "out of bounds": (dict(temp_c=120.0), "row 3, column 'temp_c': 120 is outside the bounds [20, 100]"),
    "NaN parameter": (dict(temp_c=math.nan), "row 3, column 'temp_c': is empty (None or NaN)"),
    "NaN objective": (dict(yield_pct=math.nan), "row 3, column 'yield_pct': is empty (None or NaN)"),
    "wrong type": (dict(cycles="two"), "row 3, column 'cycles': 'two' is not a number"),
    "not whole": (dict(cycles=2.5), "row 3, column 'cycles': 2.5 is not a whole number"),
    "not a level": (dict(conc=1.5), "row 3, column 'conc': 1.5 is not one of the levels [0.5, 1, 2]"),
    "not a category": (dict(base="NaOH"), "row 3, column 'base': 'NaOH' is not one of ['K2CO3', 'Cs2CO3']"),
    "not the fixed value": (dict(pressure=2), "row 3, column 'pressure': 2, but pressure is fixed at 1"),
    "constraint": (dict(temp_c=100.0, cycles=3), "row 3, columns 'cycles', 'temp_c': break the constraint "
                                                 "'temp_c + 10*cycles <= 120'"),
    "infinite outcome": (dict(purity=math.inf), "row 3, column 'purity': inf is not a finite number"),
    "text objective": (dict(yield_pct="high"), "row 3, column 'yield_pct': 'high' is not a number"),
}


@pytest.mark.parametrize("bad, line", BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_a_bad_row_is_one_line_naming_row_and_column_and_adds_nothing(bad, line):
    c = Campaign.create(**RICH, store="sqlite:///:memory:")
    with pytest.raises(CampaignStateError) as caught:
        c.add_dataframe(rich_frame(**bad))
    assert caught.value.message.startswith(line), caught.value.message
    assert "\n" not in caught.value.one_line()
    assert c.experiments() == [] and c.store.events(c.info.id, "added") == []


def test_frame_level_problems_are_one_line_and_add_nothing():
    c = Campaign.create(**RICH, store="sqlite:///:memory:")
    problems = {
        "add_dataframe() column: 'solvent' is not a parameter, objective or outcome of campaign 'rich'":
            rich_frame().assign(solvent="water"),
        "add_dataframe(): column 'yield_pct' is missing": rich_frame().drop(columns="yield_pct"),
        "add_dataframe() takes a pandas DataFrame, got list": [GOOD_ROW],
    }
    for line, frame in problems.items():
        with pytest.raises(CampaignStateError) as caught:
            c.add_dataframe(frame)
        assert caught.value.message == line
    lettered = rich_frame(temp_c=10.0).set_axis(["a", "b", "c", "d"])  # rows are named by the frame's index
    with pytest.raises(CampaignStateError, match=r"^row 'd', column 'temp_c': 10 is outside"):
        c.add_dataframe(lettered)
    assert c.experiments() == []


def test_empty_cells_of_optional_columns_are_left_out():
    """A fixed parameter's column and an outcome's are optional: an empty cell there is no value given."""
    c = Campaign.create(**RICH, store="sqlite:///:memory:")
    frame = rich_frame().assign(pressure=[1, None, 1, None], purity=[0.95, None, math.nan, 0.91])
    made = [c.store.experiment(i) for i in c.add_dataframe(frame)]
    assert [e.params["pressure"] for e in made] == [1] * 4
    assert [e.values for e in made] == [{"yield_pct": 40.0, "purity": 0.95}, {"yield_pct": 40.0},
                                        {"yield_pct": 40.0}, {"yield_pct": 40.0, "purity": 0.91}]


def test_a_parameter_held_fixed_takes_only_its_value():
    held = [{"name": "temp_c", "type": "continuous", "bounds": [20, 100], "fixed": True, "value": 25},
            {"name": "base", "type": "categorical", "values": ["K2CO3", "Cs2CO3"], "fixed": True, "value": "K2CO3"},
            {"name": "time_h", "type": "continuous", "bounds": [1, 10]}]
    c = Campaign.create(**{**SUZUKI, "parameters": held}, store="sqlite:///:memory:")
    with pytest.raises(CampaignStateError, match=r"^add\(\), column 'base': 'Cs2CO3' is not one of \['K2CO3'\]"):
        c.add({"base": "Cs2CO3", "time_h": 2}, {"yield_pct": 1.0})
    with pytest.raises(CampaignStateError, match=r"^add\(\), column 'temp_c': 30, but temp_c is fixed at 25"):
        c.add({"temp_c": 30, "time_h": 2}, {"yield_pct": 1.0})
    assert c.store.experiment(c.add({"time_h": 2}, {"yield_pct": 1.0})).params == {"temp_c": 25, "base": "K2CO3",
                                                                                  "time_h": 2.0}


def test_add_checks_as_add_dataframe_does():
    c = Campaign.create(**RICH, store="sqlite:///:memory:")
    params = {k: GOOD_ROW[k] for k in ("temp_c", "cycles", "conc", "base")}
    with pytest.raises(CampaignStateError, match=r"^add\(\) params: 'yield_pct' is not a parameter of campaign"):
        c.add({**params, "yield_pct": 1.0}, {"yield_pct": 1.0})
    with pytest.raises(CampaignStateError, match=r"^add\(\) values: 'temp_c' is not an objective or outcome"):
        c.add(params, {"yield_pct": 1.0, "temp_c": 50.0})
    with pytest.raises(CampaignStateError, match=r"^add\(\): no value for objective 'yield_pct'"):
        c.add(params, {"purity": 0.99})
    with pytest.raises(CampaignStateError, match=r"^add\(\): no value for parameter 'conc'"):
        c.add({"temp_c": 50.0, "cycles": 2, "base": "K2CO3"}, {"yield_pct": 1.0})
    with pytest.raises(CampaignStateError, match=r"^add\(\), column 'yield_pct': True is not a number"):
        c.add(params, {"yield_pct": True})
    assert c.experiments() == []
    added = c.store.experiment(c.add(params, {"yield_pct": 33.0}))
    assert added.params == {"temp_c": 50.0, "cycles": 2, "conc": 1, "base": "K2CO3", "pressure": 1}  # fixed filled in
    assert added.values == {"yield_pct": 33.0} and added.status == "measured" and added.iteration == 0


def test_added_measurements_are_events_that_replay_rebuilds(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    c = Campaign.create(**RICH, store=url)
    ids = c.add_dataframe(rich_frame())
    events = c.store.events(c.info.id, "added")
    assert [e["experiment_id"] for e in events] == ids
    assert events[0]["detail"] == {"params": {"temp_c": 50.0, "cycles": 2, "conc": 1, "base": "K2CO3", "pressure": 1},
                                   "values": {"yield_pct": 40.0, "purity": 0.95}, "source": "added",
                                   "uses_budget": False}
    batch = c.ask(2)  # the model's first batch: it learned from the 4 added rows
    assert batch[0].info["n_observations"] == 4
    c.tell(batch[0].id, {"yield_pct": 50.0, "purity": 0.99})
    c.ask(1)
    assert main(["export", "rich", "--bundle", str(tmp_path / "bundle"), "--store", url]) == 0
    capsys.readouterr()
    assert main(["replay", str(tmp_path / "bundle")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "replay: 3/3 proposals identical"


def test_the_planner_learns_from_added_measurements():
    c = Campaign.create(name="peak", seed=2, budget={"experiments": 5, "batch_size": 1},
                        parameters=[{"name": "x", "type": "continuous", "bounds": [0, 10]}],
                        objectives=[{"name": "y", "direction": "maximize"}],
                        planner={"num_restarts": 2, "raw_samples": 64}, store="sqlite:///:memory:")
    xs = [0.5, 2.0, 3.5, 5.0, 6.0, 6.5, 7.5, 9.5]
    c.add_dataframe(pd.DataFrame({"x": xs, "y": [-(x - 7.0) ** 2 for x in xs]}))
    assert len(planner_inputs(c.experiments(), {}).observations) == len(xs)
    (proposal,) = c.ask(1)
    assert proposal.info["strategy"] == "qLogEI" and proposal.info["n_observations"] == len(xs)
    assert abs(proposal.params["x"] - 7.0) < 1.0, proposal.params


def test_added_measurements_take_no_budget_unless_asked():
    c = Campaign.create(**RICH, store="sqlite:///:memory:")
    c.add_dataframe(rich_frame())
    assert c.remaining_budget() == 6 and not c.should_stop()
    c.add_dataframe(rich_frame().head(2), counts_toward_budget=True)
    assert c.remaining_budget() == 4
    with pytest.raises(CampaignStateError, match=r"budget for 4 more experiment\(s\); 5 added measurement\(s\) would "
                                                 r"pass it, nothing was added"):
        c.add_dataframe(pd.concat([rich_frame(), rich_frame().head(1)]), counts_toward_budget=True)
    assert len(c.experiments()) == 6
    with pytest.raises(CampaignStateError, match="has budget for 4 more experiment"):
        c.ask(5)
    c.add_dataframe(rich_frame(), counts_toward_budget=True)
    assert c.remaining_budget() == 0 and c.should_stop().reason == "budget spent: 6 of 6 experiments"
    assert c.store.find_campaign("rich").status == "completed"


def test_an_ask_tell_campaign_that_spent_its_budget_is_completed():
    c = Campaign.create(**{**SUZUKI, "budget": {"experiments": 4, "batch_size": 2}}, store="sqlite:///:memory:")
    c.add({"temp_c": 30, "base": "Cs2CO3"}, {"yield_pct": 12.0})  # outside the budget: does not end it
    a, b = c.ask()
    c.tell(a.id, {"yield_pct": 10.0})
    c.fail(b.id, reason="bubble in well")
    d, e = c.ask()
    c.tell(d.id, {"yield_pct": 30.0})
    assert c.store.find_campaign("suzuki-screen").status == "created"  # e still waits for its result
    c.fail(e.id, reason="tip jam", kind="instrument")
    assert c.store.find_campaign("suzuki-screen").status == "completed" and c.info.status == "completed"
    assert [ev["detail"] for ev in c.store.events(c.info.id, "campaign_completed")] == [{"reason": "budget spent"}]


def test_completion_is_one_conditional_update(store_url):
    """Of two processes that finish the last experiments, one marks the campaign; a running flow keeps its status."""
    store = CampaignStore(store_url)
    info = store.create_campaign("c", "", "name: c", "h", {})
    assert store.complete_campaign(info.id, reason="budget spent") is True
    assert store.complete_campaign(info.id, reason="budget spent") is False
    running = store.create_campaign("r", "", "name: r", "h", {})
    store.set_campaign_status(running.id, "running")
    assert store.complete_campaign(running.id) is False and store.find_campaign("r").status == "running"
    ids = store.add_measured(info.id, [({"x": 1.0}, {"y": 2}), ({"x": 3.0}, {"y": 4})])
    made = store.experiments(info.id)
    assert [e.id for e in made] == ids and [e.sequence for e in made] == [0, 1]
    assert made[1].values == {"y": 4.0} and made[1].proposal_info == {"source": "added", "uses_budget": False}


def test_to_dataframe_has_a_row_per_experiment_with_its_columns():
    c = Campaign.create(**RICH, store="sqlite:///:memory:")
    c.add_dataframe(rich_frame().head(2))
    a, b = c.ask(2)
    c.tell(a.id, {"yield_pct": 61.0})
    c.fail(b.id, reason="nothing formed")
    (pending,) = c.ask(1)
    df = c.to_dataframe()
    assert list(df.columns) == ["id", "number", "iteration", "status", "source", "temp_c", "cycles", "conc", "base",
                                "pressure", "yield_pct", "purity", "failure_reason", "failure_kind", "well",
                                "created_at", "dispatched_at", "finished_at"]
    assert df["number"].tolist() == [1, 2, 3, 4, 5] and df["id"].tolist()[2:] == [a.id, b.id, pending.id]
    assert df["status"].tolist() == ["measured", "measured", "measured", "failed", "proposed"]
    assert df["source"].tolist() == ["added", "added", "planner", "planner", "planner"]
    assert df["iteration"].tolist() == [0, 0, 1, 1, 2]
    assert df["yield_pct"].tolist()[:3] == [40.0, 40.0, 61.0] and df["yield_pct"].isna().tolist()[3:] == [True, True]
    assert df["purity"].tolist()[:2] == [0.95, 0.95] and math.isnan(df["purity"][2])
    assert df.loc[3, "failure_reason"] == "nothing formed" and df.loc[3, "failure_kind"] == "chemistry"
    assert df.loc[2, "temp_c"] == a.params["temp_c"] and df["pressure"].tolist() == [1] * 5
    assert str(df["created_at"].dt.tz) == "UTC" and df["finished_at"].isna().tolist() == [False] * 4 + [True]
    assert Campaign.create(**SUZUKI, store="sqlite:///:memory:").to_dataframe().shape == (0, 14)


def test_importing_campaign_loads_neither_pandas_nor_torch_nor_prefect():
    code = ("import sys; from orchestrator import Campaign; Campaign; "
            "print(sorted(m for m in ('pandas', 'torch', 'prefect') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
