"""Random sequences of ask/tell/fail calls, good and bad, against a real SQLite store.

A hypothesis state machine drives one campaign per example: ``ask(n)`` with good and bad
``n``, ``tell(id, values)`` with unknown ids, wrong objective names and NaN/inf/text/None
values, telling twice, failing after telling, failing without a reason, reopening the
campaign. The properties:

* every call succeeds or raises ``OrchestratorError`` with a one-line message;
* a refused call changes nothing in the store;
* after every step the experiments' statuses match a model kept by the test;
* after every sequence the store passes ``check_store_integrity`` (SQLite's own check,
  each experiment's status equals its last state event, no measured experiment without
  finite values, no NaN/inf stored, ids increasing, counts consistent);
* at the end the planner can still be asked for the next experiment.

Bad store URLs and bad campaign texts through ``Campaign.from_text`` are covered too.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import tempfile
from collections import Counter
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import text as sql

from orchestrator.run.campaign import MAX_ABS_VALUE
from orchestrator.run.campaign import Campaign
from orchestrator.errors import CampaignStateError, OrchestratorError
from orchestrator.spec.loader import parse_spec
from orchestrator.store.campaign_store import CampaignStore
from tests.fuzz_settings import QUICK_SHARE, examples

FUZZ_COUNTS: Counter[str] = Counter()




# Sobol proposals only (initial_experiments = the budget): fast, and still the real planner.
CONTINUOUS = """\
name: fuzz-continuous
seed: 5
budget: {experiments: 12, batch_size: 3}
parameters:
  - {name: temperature, type: continuous, bounds: [20, 80], unit: C}
  - {name: ratio, type: continuous, bounds: [0, 1]}
constraints:
  - "temperature + 40*ratio <= 90"
objectives:
  - {name: distance, direction: minimize}
planner: {initial_experiments: 12}
"""
MIXED = """\
name: fuzz-mixed
seed: 2
budget: {experiments: 10, batch_size: 2}
parameters:
  - {name: cycles, type: integer, bounds: [0, 10]}
  - {name: volume, type: continuous, bounds: [0, 10], unit: uL}
  - {name: solvent, type: categorical, values: [water, ethanol, 3]}
constraints:
  - "cycles + volume <= 10.5"
objectives:
  - {name: yield_pct, direction: maximize}
planner: {initial_experiments: 10}
"""
CAMPAIGNS = [CONTINUOUS, MIXED]
STATE_EVENTS = ("proposed", "dispatched", "measured", "failed", "abandoned")


def assert_one_line_error(err: BaseException) -> None:
    assert isinstance(err, OrchestratorError), f"{type(err).__name__}: {err}"
    line = err.one_line()
    assert line.strip() and len(line.splitlines()) == 1 and "\n" not in line and "\r" not in line, repr(line)
    assert err.message.strip() and len(err.message.splitlines()) == 1, repr(err.message)


def _strict_json(raw: Any) -> Any:
    """JSON text as stored, read back refusing NaN and Infinity."""
    if raw is None or not isinstance(raw, str):
        return raw

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-finite number {constant} stored: {raw[:200]}")

    return json.loads(raw, parse_constant=refuse)


def check_store_integrity(campaign: Campaign) -> None:
    """The store behind ``campaign`` is sound; raises AssertionError naming what is not.

    Checks SQLite's integrity and foreign keys, and for every experiment of the campaign:
    contiguous sequence numbers, increasing ids, status equal to its last state event,
    values present, finite and complete exactly when measured, a reason when failed,
    parameters within bounds and constraints, no NaN/inf in any stored JSON, event ids
    increasing with time, and event counts that match the experiments.
    """
    store, spec = campaign.store, campaign.spec
    with store.engine.connect() as conn:
        assert conn.execute(sql("PRAGMA integrity_check")).scalar() == "ok"
        assert conn.execute(sql("PRAGMA foreign_key_check")).fetchall() == []
        for table, columns in (("experiments", "params, proposed_params, objective_values, proposal_info"),
                               ("events", "detail"), ("campaigns", "versions")):
            for row in conn.execute(sql(f"SELECT {columns} FROM {table}")):  # noqa: S608 - fixed names
                for raw in row:
                    _strict_json(raw)
    experiments = campaign.experiments()
    events = store.events(campaign.info.id)
    assert [e.sequence for e in experiments] == list(range(len(experiments)))
    assert [e.id for e in experiments] == sorted(e.id for e in experiments)
    event_ids = [e["id"] for e in events]
    assert event_ids == sorted(set(event_ids)), "event ids are not strictly increasing"
    assert all(a["at"] <= b["at"] for a, b in zip(events, events[1:])), "event times go back"
    assert events and events[0]["kind"] == "campaign_created"
    state_events: dict[int, list[str]] = {}
    for event in events:
        if event["experiment_id"] is not None and event["kind"] in STATE_EVENTS:
            state_events.setdefault(event["experiment_id"], []).append(event["kind"])
    assert set(state_events) == {e.id for e in experiments}, "events name experiments the campaign lacks"
    objectives = {o.name for o in spec.objectives}
    for e in experiments:
        kinds = state_events[e.id]
        assert kinds[0] == "proposed" and kinds.count("proposed") == 1, (e.id, kinds)
        assert kinds[-1] == e.status, (e.id, kinds, e.status)
        assert len(kinds) == len(set(kinds)), f"experiment {e.id} went through a state twice: {kinds}"
        if e.status == "measured":
            assert e.values is not None and set(e.values) == objectives, (e.id, e.values)
            assert all(isinstance(v, float) and math.isfinite(v) for v in e.values.values()), e.values
        else:
            assert e.values is None, (e.id, e.status, e.values)
        if e.status == "failed":
            assert e.failure_reason and e.failure_reason.strip(), e.id
        assert (e.finished_at is not None) == (e.status in ("measured", "failed", "abandoned"))
        assert set(e.params) == {p.name for p in spec.parameters}
        for p in spec.parameters:
            value = e.params[p.name]
            if p.type == "categorical":
                assert value in p.values, (p.name, value)
            else:
                assert math.isfinite(value) and p.bounds[0] <= value <= p.bounds[1], (p.name, value)
                assert p.type != "integer" or type(value) is int, (p.name, value)
        assert campaign.space.is_feasible(e.params), e.params
    counts = Counter(e.status for e in experiments)
    for kind in ("measured", "failed"):
        assert sum(k.count(kind) for k in state_events.values()) == counts[kind]
    assert len(experiments) <= spec.budget.experiments


# values and ids, good and bad ---------------------------------------------------------------------

NUMBERS = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-10**6, 10**6)
    | st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 10**400, -(10**400), 2**63])
    | st.sampled_from([np.float64(0.5), np.int64(3), np.float32(2.5), Decimal("0.25"), Fraction(1, 3)])
)
BAD_NUMBERS = st.sampled_from([
    math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf"), Decimal("nan"), Decimal("-inf"),
    Decimal("snan"), "0.1", "abc", "", b"1", None, True, False, [0.1], {"v": 1}, 1 + 2j, np.array([1.0, 2.0]),
    np.array(1.5), object(),
])
REASONS = st.text(max_size=40) | st.sampled_from(["", "   ", "\n", "\t\r\n", "bubble in well", "x" * 5000,
                                                   "\x00nul", "\ud800 lone surrogate", "émoji 🧪", None, 42, b"bytes"])


def bad_ids(known: list[int]) -> st.SearchStrategy:
    top = max(known, default=0)
    return st.sampled_from([0, -1, top + 1, top + 1000, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, None,
                            "1", 1.0, float(top), True, False, math.nan, b"1", [1], (1,)])


class AskTellMachine(RuleBasedStateMachine):
    """One campaign in a fresh SQLite store, driven by random calls; ``model`` is what the test expects."""

    mode = "quick"  # where the calls are counted: the default run's share, or the slow run's

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory(prefix="fuzz-ask-tell-")
        path = Path(self.folder.name) / "store.db"
        shutil.copyfile(_empty_store(), path)  # a fresh, migrated SQLite store without paying for the migrations
        self.url = f"sqlite:///{path}"
        self.campaign: Campaign | None = None
        self.model: dict[int, str] = {}

    @initialize(text=st.sampled_from(CAMPAIGNS))
    def open_campaign(self, text: str) -> None:
        self.text = text
        self.campaign = Campaign.from_text(text, store=self.url)

    # helpers ------------------------------------------------------------------------------------

    def snapshot(self) -> tuple:
        c = self.campaign
        return c.experiments(), c.store.events(c.info.id), c.store.campaigns()

    def refused(self, call, *args, **kwargs) -> Any:
        """Run a call; on an error, check it is ours, one line, and changed nothing. Returns the result or None."""
        before = self.snapshot()
        try:
            return call(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - the property is that only our errors come out
            assert_one_line_error(err)
            assert self.snapshot() == before, f"a refused {call.__name__} changed the store"
            return None

    def ids_strategy(self, known: list[int]) -> st.SearchStrategy:
        return st.sampled_from(known) if known else st.nothing()

    # rules ----------------------------------------------------------------------------------------

    @rule(n=st.none() | st.integers(-2, 5) | st.sampled_from([0, 2.0, "2", True, False, 10**20, -(10**20), math.nan,
                                                             np.int64(2), [2], b"2"]))
    def ask(self, n: Any) -> None:
        FUZZ_COUNTS[f"{self.mode}:ask_tell_calls"] += 1
        left = self.campaign.remaining_budget()
        batch = self.refused(self.campaign.ask, n)
        if batch is None:
            return
        wanted = self.campaign.spec.budget.batch_size if n is None else n
        assert type(wanted) is int and not isinstance(wanted, bool), f"ask({n!r}) was accepted"
        assert len(batch) == wanted <= left
        for proposal in batch:
            assert proposal.id not in self.model
            self.model[proposal.id] = "proposed"

    @rule(data=st.data(), good_values=st.booleans(), good_id=st.booleans(),
          uncertainty=st.none() | st.none() | st.just("sd"))
    def tell(self, data: st.DataObject, good_values: bool, good_id: bool, uncertainty: Any) -> None:
        FUZZ_COUNTS[f"{self.mode}:ask_tell_calls"] += 1
        names = [o.name for o in self.campaign.spec.objectives]
        known = list(self.model)
        experiment_id = data.draw(self.ids_strategy(known) if good_id and known else bad_ids(known))
        if good_values:
            values: Any = {name: data.draw(NUMBERS) for name in names}
        else:
            values = data.draw(st.sampled_from(["bad_number", "wrong_names", "not_a_mapping"]))
            if values == "bad_number":
                values = {name: data.draw(BAD_NUMBERS | NUMBERS) for name in names}
            elif values == "wrong_names":
                values = data.draw(st.dictionaries(st.text(max_size=6) | st.sampled_from(names + ["", None, 1]),
                                                   NUMBERS, max_size=3))
            else:
                values = data.draw(st.sampled_from([None, 0.1, "distance=0.1", [("distance", 0.1)], b"", set()]))
        if uncertainty == "sd":  # the instrument's sd per value: good, negative, non-finite, or not a mapping
            uncertainty = data.draw(st.dictionaries(st.sampled_from(names + ["other"]), NUMBERS | BAD_NUMBERS, max_size=2)
                                    | st.sampled_from([0.1, "sd", [0.1], None]))
        result = self.refused(self.campaign.tell, experiment_id, values, uncertainty)
        if result is not None:
            assert self.model.get(experiment_id) == "proposed" and type(experiment_id) is int, experiment_id
            self.model[experiment_id] = "measured"
            assert result.status == "measured"
            for name in names:
                assert result.values[name] == float(values[name])
        elif type(experiment_id) is int and self.model.get(experiment_id) == "proposed" and good_values and uncertainty is None:
            # a finite number the model can use (|v| <= MAX_ABS_VALUE) for every objective of a proposed
            # experiment must be accepted...
            finite = all(_is_finite_number(v) and abs(float(v)) <= MAX_ABS_VALUE for v in values.values())
            assert not finite, f"tell({experiment_id}, {values!r}) was refused"

    @rule(data=st.data(), reason=REASONS, good_id=st.booleans(),
          kind=st.sampled_from(["chemistry", "chemistry", "instrument", "", None, "CHEMISTRY", 1]))
    def fail(self, data: st.DataObject, reason: Any, good_id: bool, kind: Any) -> None:
        FUZZ_COUNTS[f"{self.mode}:ask_tell_calls"] += 1
        known = list(self.model)
        experiment_id = data.draw(self.ids_strategy(known) if good_id and known else bad_ids(known))
        result = self.refused(self.campaign.fail, experiment_id, reason, kind)
        if result is not None:
            assert self.model.get(experiment_id) == "proposed" and type(experiment_id) is int, experiment_id
            assert kind in ("chemistry", "instrument"), kind
            assert str(reason).strip(), f"fail() took the empty reason {reason!r}"
            self.model[experiment_id] = "failed"
            assert result.status == "failed"

    @rule()
    def best(self) -> None:
        FUZZ_COUNTS[f"{self.mode}:ask_tell_calls"] += 1
        best = self.campaign.best()
        measured = [e for e in self.campaign.experiments() if e.status == "measured"]
        if not measured:
            assert best is None
            return
        name = self.campaign.objective.name
        scores = [e.values[name] for e in measured]
        target = max(scores) if self.campaign.objective.direction == "maximize" else min(scores)
        assert best.values[name] == target

    @rule(changed=st.booleans())
    def reopen(self, changed: bool) -> None:
        """Open the same campaign again (continues it), or a changed file under the same name (refused once an
        experiment exists; before that it replaces the first file)."""
        FUZZ_COUNTS[f"{self.mode}:ask_tell_calls"] += 1
        if changed and not self.model:
            changed_text = self.text.replace("seed: ", "seed: 1")
            again = Campaign.from_text(changed_text, store=self.url)
            assert again.info.id == self.campaign.info.id and again.info.spec_yaml == changed_text
            self.text, self.campaign = changed_text, again
            return
        if changed:
            before = self.snapshot()
            with pytest.raises(CampaignStateError) as caught:
                Campaign.from_text(self.text.replace("seed: ", "seed: 1"), store=self.url)
            assert_one_line_error(caught.value)
            assert self.snapshot() == before
            return
        again = Campaign.from_text(self.text, store=self.url)
        assert again.info.id == self.campaign.info.id
        self.campaign = again

    # invariants -----------------------------------------------------------------------------------

    @invariant()
    def store_matches_the_model(self) -> None:
        if self.campaign is not None:
            assert {e.id: e.status for e in self.campaign.experiments()} == self.model

    def teardown(self) -> None:
        try:
            if self.campaign is not None:
                FUZZ_COUNTS[f"{self.mode}-sequences"] += 1  # not inputs: the calls are
                check_store_integrity(self.campaign)  # the log is append-only: a fault would still show here
                # the planner still proposes after whatever happened
                if self.campaign.remaining_budget() > 0:
                    (proposal,) = self.campaign.ask(1)
                    self.model[proposal.id] = "proposed"
                    check_store_integrity(self.campaign)
                self.campaign.store.engine.dispose()
        finally:
            self.folder.cleanup()


@functools.cache
def _empty_store() -> Path:
    """A store file made once by ``CampaignStore`` (all migrations run), copied for each sequence."""
    path = Path(tempfile.mkdtemp(prefix="fuzz-template-")) / "empty.db"
    CampaignStore(f"sqlite:///{path}").engine.dispose()
    return path


def _is_finite_number(value: Any) -> bool:
    if isinstance(value, (bool, str, bytes)):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


class FullAskTellMachine(AskTellMachine):
    mode = "full"


SEQUENCES, STEPS = 150, 12


def test_random_ask_tell_sequences_keep_the_store_sound():
    run_state_machine_as_test(AskTellMachine, settings=examples(SEQUENCES // QUICK_SHARE, stateful_step_count=STEPS))


@pytest.mark.slow
def test_random_ask_tell_sequences_keep_the_store_sound_full():
    run_state_machine_as_test(FullAskTellMachine, settings=examples(SEQUENCES, stateful_step_count=STEPS))


# bad stores and bad campaign texts through Campaign.from_text -----------------------------------------

STORE_URLS = (
    st.text(max_size=30)
    | st.sampled_from(["", "sqlite://", "sqlite:///", "sqlite:////", "sqlite:///:memory:", "nosuchdb:///x",
                       "mysql://u@127.0.0.1:1/x", "sqlite+nosuchdriver:///x.db", "postgresql://", "://", "sqlite:/x",
                       "sqlite:///DIR", "sqlite:///DIR/not_a_db.txt", "sqlite:///DIR/not_a_db.txt/inner.db",
                       "sqlite:///DIR/a\x00b.db", "sqlite:///DIR/" + "x" * 300 + ".db", "sqlite:///DIR/é 🧪.db",
                       "sqlite:///DIR/new/dir/s.db", "sqlite:///DIR/s.db?mode=ro", "sqlite:///DIR/s.db?foo=bar"])
    | st.text(max_size=20).map(lambda t: "sqlite:///DIR/" + t)
)


@pytest.fixture(scope="module")
def url_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-urls")
    (folder / "not_a_db.txt").write_text("this is not a database\n" * 50)
    return folder


def check_bad_store_url(url_dir: Path, url: str, mode: str) -> None:
    FUZZ_COUNTS[f"{mode}:store_urls"] += 1
    url = url.replace("DIR", str(url_dir))
    try:
        store = CampaignStore(url)
    except Exception as err:  # noqa: BLE001 - the property is that only our errors come out
        assert_one_line_error(err)
        return
    try:
        campaign = Campaign(parse_spec(CONTINUOUS), CONTINUOUS, store)
        check_store_integrity(campaign)
    except Exception as err:  # noqa: BLE001
        assert_one_line_error(err)
    finally:
        store.engine.dispose()


@examples(100 // QUICK_SHARE)
@given(url=STORE_URLS)
def test_bad_store_urls_give_one_line_errors(url_dir, url):
    check_bad_store_url(url_dir, url, "quick")


@pytest.mark.slow
@examples(100)
@given(url=STORE_URLS)
def test_bad_store_urls_give_one_line_errors_full(url_dir, url):
    check_bad_store_url(url_dir, url, "full")
