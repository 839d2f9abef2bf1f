"""The campaign store: lifecycle, append-only events, JSON (never pickles), SQLite WAL, clear errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from orchestrator.errors import CampaignStateError, StoreError
from orchestrator.store.campaign_store import CampaignStore
from orchestrator.store.tables import SCHEMA_VERSION

PARAMS = [{"red": 40.0, "yellow": 95.5, "blue": 22.25}, {"red": 1.0, "yellow": 2.0, "blue": 3.0},
          {"red": 0.0, "yellow": 150.0, "blue": 10.0}]


@pytest.fixture
def store(tmp_path: Path) -> CampaignStore:
    return CampaignStore(f"sqlite:///{tmp_path / 'store.db'}")


@pytest.fixture
def campaign(store: CampaignStore):
    return store.create_campaign("c1", "a test campaign", "name: c1\n", "f" * 64, {"python": "3.11"})


def propose(store, campaign, n=3):
    return store.add_proposals(campaign.id, 1, [(PARAMS[i], {"strategy": "sobol", "design_index": i}) for i in range(n)])


def reading(values):
    return {"kind": "absorbance", "instrument": "simulated_uvvis", "wavelengths_nm": [400.0, 402.0, 404.0],
            "values": values, "saturated": False, "meta": {"well": "P1-A1"}}


def raw_events(store, campaign_id):
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT id, experiment_id, kind, detail, at FROM events WHERE campaign_id = :c ORDER BY id"),
                            {"c": campaign_id}).all()


def row_state(store, experiment_id):
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT * FROM experiments WHERE id = :i"), {"i": experiment_id}).one()


# events -----------------------------------------------------------------------------------


def test_every_transition_is_recorded_and_the_event_log_only_grows(store, campaign):
    log = [raw_events(store, campaign.id)]
    assert [e.kind for e in log[-1]] == ["campaign_created"]

    def step(action, expected_new):
        action()
        now = raw_events(store, campaign.id)
        before = log[-1]
        assert now[: len(before)] == before, "an earlier event changed or vanished"
        assert [e.kind for e in now[len(before):]] == expected_new
        log.append(now)
        return now[len(before):]

    e1, e2, e3 = [e.id for e in propose(store, campaign)]
    now = raw_events(store, campaign.id)
    assert now[:1] == log[-1]
    new = now[1:]
    log.append(now)
    assert [(e.kind, e.experiment_id) for e in new] == [("proposed", e1), ("proposed", e2), ("proposed", e3)]
    assert json.loads(new[0].detail) == {"params": PARAMS[0]}

    made = {"red": 40.0, "yellow": 95.5, "blue": 22.2}
    (ev,) = step(lambda: store.mark_dispatched({e1: ("P1-A1", made)}), ["dispatched"])
    assert ev.experiment_id == e1
    assert json.loads(ev.detail) == {"from": "proposed", "well": "P1-A1", "params": made}
    (ev,) = step(lambda: store.record_result(e1, {"distance": 0.12}, reading([0.1, 0.2, 0.3])), ["measured"])
    assert json.loads(ev.detail) == {"from": "dispatched", "values": {"distance": 0.12}}
    (ev,) = step(lambda: store.record_failure(e2, "bubble in well"), ["failed"])
    assert json.loads(ev.detail) == {"from": "proposed", "reason": "bubble in well", "failure_kind": "chemistry"}
    (ev,) = step(lambda: store.record_result(e3, {"distance": 0.5}), ["measured"])  # proposed -> measured (ask/tell)
    assert json.loads(ev.detail)["from"] == "proposed"
    step(lambda: store.record_iteration(campaign.id, 1, "simulated_ot2", {"wells": []}, "# protocol", "log", 1.5),
         ["protocol_run"])
    step(lambda: store.set_campaign_status(campaign.id, "completed", experiments=3), ["campaign_completed"])

    final = log[-1]
    ids = [e.id for e in final]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [e.kind for e in final] == ["campaign_created", "proposed", "proposed", "proposed", "dispatched", "measured",
                                       "failed", "measured", "protocol_run", "campaign_completed"]
    # the API view agrees with the table
    assert [e["kind"] for e in store.events(campaign.id)] == [e.kind for e in final]
    # every experiment's status is the kind of its last event
    for experiment in store.experiments(campaign.id):
        last = [e for e in final if e.experiment_id == experiment.id][-1]
        assert last.kind == experiment.status
    assert store.get_campaign("c1").status == "completed"


def test_events_of_one_campaign_stay_with_it(store, campaign):
    other = store.create_campaign("c2", "", "name: c2\n", "e" * 64, {})
    propose(store, campaign, 2)
    propose(store, other, 1)
    assert [e["kind"] for e in store.events(campaign.id)] == ["campaign_created", "proposed", "proposed"]
    assert [e["kind"] for e in store.events(other.id)] == ["campaign_created", "proposed"]
    assert [e["kind"] for e in store.events(campaign.id, "proposed")] == ["proposed", "proposed"]
    assert store.events(other.id, "refilled") == []
    assert [e.sequence for e in store.experiments(other.id)] == [0]


# illegal transitions -------------------------------------------------------------------------


def _measured(store, eid):
    store.record_result(eid, {"distance": 0.1})


def _failed(store, eid):
    store.record_failure(eid, "bubble in well")


def _dispatched(store, eid):
    store.mark_dispatched({eid: ("P1-A1", PARAMS[0])})


ILLEGAL = [
    pytest.param(_measured, _measured, "measured", "measured", id="measured-to-measured"),
    pytest.param(_measured, _failed, "measured", "failed", id="measured-to-failed"),
    pytest.param(_measured, _dispatched, "measured", "dispatched", id="measured-to-dispatched"),
    pytest.param(_failed, _measured, "failed", "measured", id="failed-to-measured"),
    pytest.param(_failed, _failed, "failed", "failed", id="failed-to-failed"),
    pytest.param(_failed, _dispatched, "failed", "dispatched", id="failed-to-dispatched"),
    pytest.param(_dispatched, _dispatched, "dispatched", "dispatched", id="dispatched-to-dispatched"),
]


@pytest.mark.parametrize("first, second, status, target", ILLEGAL)
def test_illegal_transitions_raise_and_change_nothing(store, campaign, first, second, status, target):
    eid = propose(store, campaign, 1)[0].id
    first(store, eid)
    row, events = row_state(store, eid), raw_events(store, campaign.id)
    with pytest.raises(CampaignStateError) as caught:
        second(store, eid)
    assert f"experiment {eid} is {status}; it cannot become {target}" in caught.value.message
    assert row_state(store, eid) == row
    assert raw_events(store, campaign.id) == events
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM measurements")).scalar() == 0


def test_a_refused_batch_change_is_rolled_back_whole(store, campaign):
    e1, e2 = [e.id for e in propose(store, campaign, 2)]
    _measured(store, e2)
    rows, events = (row_state(store, e1), row_state(store, e2)), raw_events(store, campaign.id)
    with pytest.raises(CampaignStateError):
        store.mark_dispatched({e1: ("P1-A1", PARAMS[0]), e2: ("P1-B1", PARAMS[1])})
    assert (row_state(store, e1), row_state(store, e2)) == rows
    assert store.experiment(e1).status == "proposed" and store.experiment(e1).well is None
    assert raw_events(store, campaign.id) == events


def test_unknown_experiment_and_duplicate_campaign_raise(store, campaign):
    with pytest.raises(CampaignStateError, match="no experiment with id 999"):
        store.record_result(999, {"distance": 0.1})
    with pytest.raises(CampaignStateError, match="no experiment with id 999"):
        store.experiment(999)
    with pytest.raises(CampaignStateError, match="'c1' already exists"):
        store.create_campaign("c1", "", "other", "0" * 64, {})
    assert len(store.campaigns()) == 1
    with pytest.raises(StoreError, match="no campaign named 'nope'") as caught:
        store.get_campaign("nope")
    assert "c1" in caught.value.hint


# JSON, never pickles ------------------------------------------------------------------------


def test_measurements_and_params_are_json_text_and_round_trip(store, campaign):
    values = [0.1, 1 / 3, 1e-300, -2.5e10, None, 0.0]
    eid = propose(store, campaign, 1)[0].id
    store.record_result(eid, {"distance": 1 / 7}, reading(values))

    with store.engine.connect() as conn:
        kinds = conn.execute(text('SELECT typeof(wavelengths_nm), typeof("values"), typeof(meta), '
                                  'wavelengths_nm, "values" FROM measurements')).one()
        assert kinds[:3] == ("text", "text", "text")
        assert json.loads(kinds[3]) == [400.0, 402.0, 404.0]
        assert kinds[4].startswith("[") and json.loads(kinds[4]) == values
        exp = conn.execute(text("SELECT typeof(params), params, objective_values FROM experiments WHERE id = :i"),
                           {"i": eid}).one()
        assert exp[0] == "text" and json.loads(exp[1]) == PARAMS[0]
        assert json.loads(exp[2]) == {"distance": 1 / 7}

        # no column of any table is declared binary, and no stored value is a blob
        for table in inspect(store.engine).get_table_names():
            for column in inspect(store.engine).get_columns(table):
                declared = str(column["type"]).upper()
                assert "BLOB" not in declared and "BINARY" not in declared and "PICKLE" not in declared, (table, column)
                blobs = conn.execute(text(f'SELECT count(*) FROM "{table}" WHERE typeof("{column["name"]}") = \'blob\'')).scalar()
                assert blobs == 0, (table, column["name"])

    stored = store.measurements(eid)
    assert len(stored) == 1
    assert stored[0]["values"] == values and stored[0]["wavelengths_nm"] == [400.0, 402.0, 404.0]
    assert stored[0]["meta"] == {"well": "P1-A1"} and stored[0]["saturated"] is False
    assert store.experiment(eid).values == {"distance": 1 / 7}


def test_failure_keeps_its_reading(store, campaign):
    eid = propose(store, campaign, 1)[0].id
    store.record_failure(eid, "saturated detector", reading([4.0, None, 4.0]))
    assert store.measurements(eid)[0]["values"] == [4.0, None, 4.0]
    assert store.experiment(eid).failure_reason == "saturated detector"


# SQLite settings, schema ---------------------------------------------------------------------


def test_sqlite_runs_in_wal_mode_with_foreign_keys(store):
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar().lower() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    reopened = CampaignStore(store.url)
    with reopened.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar().lower() == "wal"


def test_schema_version_row_is_present_once(store, tmp_path):
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT id, version FROM schema_info")).all() == [(1, SCHEMA_VERSION)]
    CampaignStore(store.url)  # reopening does not stamp twice
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT id, version FROM schema_info")).all() == [(1, SCHEMA_VERSION)]


def test_a_store_of_another_schema_version_is_refused(store):
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE schema_info SET version = 99"))
    with pytest.raises(StoreError) as caught:
        CampaignStore(store.url)
    assert "schema version 99" in caught.value.message and f"reads {SCHEMA_VERSION}" in caught.value.message


def test_store_display_is_an_absolute_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = CampaignStore("sqlite:///runs/x.db")
    assert relative.display == f"sqlite:///{(tmp_path / 'runs' / 'x.db').resolve()}"
    assert (tmp_path / "runs" / "x.db").exists()


# bad URLs --------------------------------------------------------------------------------------


def _bad_urls(tmp_path: Path) -> dict[str, str]:
    garbage = tmp_path / "garbage.db"
    garbage.write_text("this is not a database\n" * 200)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {
        "not-a-url": "not a url",
        "unknown-dialect": "nosuchdialect://host/db",
        "unreachable-server-with-password": "postgresql+psycopg://user:s3cret-pw@127.0.0.1:1/db",
        "directory": f"sqlite:///{tmp_path}",
        "not-a-database": f"sqlite:///{garbage}",
        "parent-is-a-file": f"sqlite:///{a_file / 'x.db'}",
    }


@pytest.mark.parametrize("case", ["not-a-url", "unknown-dialect", "unreachable-server-with-password", "directory",
                                  "not-a-database", "parent-is-a-file"])
def test_bad_urls_give_a_one_line_store_error(tmp_path, case):
    url = _bad_urls(tmp_path)[case]
    with pytest.raises(StoreError) as caught:
        CampaignStore(url)
    err = caught.value
    assert "\n" not in str(err) and "\n" not in err.one_line()
    assert err.hint
    assert "s3cret-pw" not in err.one_line(), "the password leaked into the message"
    named = {"not-a-url": "not a url", "unknown-dialect": "nosuchdialect", "unreachable-server-with-password": "127.0.0.1",
             "directory": str(tmp_path), "not-a-database": "garbage.db", "parent-is-a-file": "a_file"}[case]
    assert named in err.message


def test_a_nul_in_the_url_is_a_store_error(tmp_path):
    """Found by tests/test_fuzz_ask_tell.py: sqlite3 raised a bare ValueError."""
    with pytest.raises(StoreError, match="NUL character"):
        CampaignStore(f"sqlite:///{tmp_path}/a\x00b.db")


@pytest.mark.parametrize("command", ["export", "report", "resume", "refill", "status", "status-all"])
def test_a_command_that_reads_a_store_refuses_a_missing_sqlite_file_and_creates_none(tmp_path, capsys, command):
    from orchestrator.cli import main

    missing = tmp_path / "typo.db"
    args = {"refill": ["refill", "demo", "--stock", "red=100"],
            "status-all": ["status"]}.get(command, [command, "demo"])
    assert main([*args, "--store", f"sqlite:///{missing}"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"error: no store at sqlite:///{missing}: the file does not exist") and "\n" not in err
    assert captured.out == "" and list(tmp_path.iterdir()) == []  # no store, no .migrate-lock


def test_status_without_a_store_in_a_fresh_folder_says_nothing_has_run_and_creates_nothing(tmp_path, capsys,
                                                                                            monkeypatch):
    from orchestrator.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["status"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("no campaign has been run here yet") and "\n" not in out
    assert str(tmp_path / "runs" / "sdl.db") in out and "sdl run FILE --dry-run" in out and "--store URL" in out
    assert list(tmp_path.iterdir()) == []
    assert main(["status", "demo"]) == 2  # a named campaign that cannot be there is an error, as for export
    assert "error: no store at" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


#: A campaign file of one parameter and one objective; ``{name}`` is its name.
ONE_PARAMETER = """\
name: {name}
parameters:
  - {{name: temperature, type: continuous, bounds: [20, 80]}}
objectives:
  - {{name: yield, direction: maximize}}
budget: {{experiments: 4, batch_size: 2}}
"""


def test_status_reads_an_existing_store_given_or_default(tmp_path, capsys, monkeypatch):
    from orchestrator.cli import main

    from orchestrator.run.campaign import Campaign

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    empty = tmp_path / "empty.db"
    CampaignStore(f"sqlite:///{empty}").engine.dispose()
    Campaign.from_text(ONE_PARAMETER.format(name="here"), store="sqlite:///runs/sdl.db").store.engine.dispose()
    assert main(["status", "--store", f"sqlite:///{empty}"]) == 0
    assert capsys.readouterr().out.startswith(f"no campaigns in sqlite:///{empty} yet")
    assert main(["status"]) == 0
    assert "here" in capsys.readouterr().out
    assert main(["status", "here"]) == 0
    assert "here" in capsys.readouterr().out


@pytest.mark.parametrize("last_run, hint", [("interrupted", True), ("failed", True), ("completed", False)])
def test_status_of_a_campaign_whose_run_stopped_early_says_how_to_go_on(last_run, hint, tmp_path, capsys):
    from orchestrator.run.campaign import Campaign
    from orchestrator.cli import main

    url = f"sqlite:///{tmp_path / 'store.db'}"
    campaign = Campaign.from_text(ONE_PARAMETER.format(name="stopped"), store=url)
    campaign.store.set_campaign_status(campaign.info.id, last_run)
    assert main(["status", "stopped", "--store", url]) == 0
    out = capsys.readouterr().out
    assert f"stopped ({last_run})" in out
    said = f"its last run was {last_run} before the end; go on with: sdl resume stopped --store {url}"
    assert (said in out.replace("\n", "")) is hint, out


def test_a_campaign_stored_by_a_version_that_checked_less_still_lists_and_exports(tmp_path, capsys):
    """Each release checks campaign files more closely; a stored file the new checks refuse must not lock its data."""
    import sqlite3

    from orchestrator.run.campaign import Campaign
    from orchestrator.cli import main

    url = f"sqlite:///{tmp_path / 'store.db'}"
    campaign = Campaign.from_text(ONE_PARAMETER.format(name="older"), store=url)
    told = [campaign.tell(p.id, {"yield": 0.5 + p.id}) for p in campaign.ask(2)]
    Campaign.from_text(ONE_PARAMETER.format(name="newer"), store=url).ask(1)
    Campaign.from_text(ONE_PARAMETER.format(name="unreadable"), store=url)
    campaign.store.engine.dispose()
    with sqlite3.connect(tmp_path / "store.db") as db:  # as if written before seeds were limited to 32 bits
        db.execute("update campaigns set spec_yaml = 'seed: 1099511627776' || char(10) || spec_yaml "
                   "where name = 'older'")
        db.execute("update campaigns set spec_yaml = replace(spec_yaml, 'direction: maximize', 'direction: up') "
                   "where name = 'unreadable'")
    capsys.readouterr()
    assert main(["status", "--store", url]) == 0
    cells = [[c.strip() for c in line.split("\u2502")[1:-1]] for line in capsys.readouterr().out.splitlines()]
    rows = {row[0]: row for row in cells if row}
    # the table reads only the fields it shows: a seed refused today does not hide the campaign's counts
    assert rows["older"][:5] == ["older", "created", "2", "0", "4"] and "newer" in rows
    assert rows["unreadable"][2:] == ["?", "?", "?", "sdl status unreadable: its stored file is refused"]
    assert main(["status", "older", "--store", url]) == 0  # an ask/tell campaign's view reads the same few fields
    assert "measured 2, failed 0, budget 4" in capsys.readouterr().out
    assert main(["export", "older", "--format", "json", "--store", url]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["temperature"], r["yield"]) for r in rows] == [
        (e.id, e.params["temperature"], e.values["yield"]) for e in told]


def test_status_in_a_pipe_prints_whole_rows_and_the_pareto_front_of_several_objectives(tmp_path, capsys):
    from orchestrator.run.campaign import Campaign
    from orchestrator.cli import main

    name = "a-campaign-name-long-enough-to-be-cut-in-a-narrow-table-" + "x" * 40
    first = "  - {name: yield, direction: maximize}"
    text = ONE_PARAMETER.format(name=name).replace(first, first + "\n  - {name: cost, direction: minimize}")
    url = f"sqlite:///{tmp_path / 's.db'}"
    c = Campaign.from_text(text, store=url)
    for p, (y, cost) in zip(c.ask(3), [(1.0, 1.0), (2.0, 2.0), (0.5, 3.0)]):  # the third is dominated
        c.tell(p.id, {"yield": y, "cost": cost})
    c.store.engine.dispose()
    assert main(["status", "--store", url]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if name in line)
    assert "yield=2 (Pareto front: 2)" in row and "│ 3 " in row


def test_a_warm_start_from_a_missing_store_file_is_an_error_and_creates_none(tmp_path):
    from orchestrator.run.campaign import Campaign

    missing = tmp_path / "lab.db"
    text = ONE_PARAMETER.format(name="plant") + f"warm_start: {{campaign: lab, store: 'sqlite:///{missing}'}}\n"
    with pytest.raises(StoreError, match="no store at .*lab.db: the file does not exist"):
        Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'plant.db'}")
    assert not missing.exists()
