"""The approval pause against a hostile or careless person (issue 27, item 14).

Protected here:
- text a person typed (an edit, a note) shows literally in the pause form's markdown, never as a
  link, an image, HTML or a table column;
- edits typed in the dashboard with the decision left at "approve" are made, never dropped;
- ``sdl approve`` waits for the flow and exits 2 with the flow's reason when it refused the answer;
- a refusal for a constraint names the constraint as written and the value its sides take;
- a rejected batch teaches the planner: the next batch lies away from it (and replays identically).

The flow test runs a real campaign flow on the session's Prefect server; the others need none.
"""

from __future__ import annotations

import html
import time

import numpy as np
import yaml
from markdown_it import MarkdownIt

from orchestrator.cli import main
from orchestrator.prefect.approval import BatchDecision, apply_decision, describe, edit_problems
from orchestrator.prefect.artifacts import markdown_text
from orchestrator.run.campaign import Campaign, planner_inputs
from orchestrator.store.campaign_store import CampaignStore
from tests.test_approval_and_locks import api_url, campaign_text, start_flow  # noqa: F401

LINK, IMAGE, SCRIPT, EMPHASIS = "[click](http://evil.example)", "![i](http://e.example/i.png)", "<script>x</script>", \
    "**b** | x\n# h"


def rendered(markdown: str) -> str:
    """HTML of ``markdown`` as a CommonMark renderer with tables makes it (the dashboard uses marked)."""
    return MarkdownIt("commonmark").enable("table").render(markdown)


def assert_literal(html: str) -> None:
    """No link, image, tag, heading or emphasis in ``html`` but the form's own bold label."""
    for tag in ("<a", "<img", "<script", "<h1", "<em"):
        assert tag not in html, f"{tag} made from typed text: {html}"
    assert html.count("<strong>") <= 1, html


def dye_campaign(tmp_path, parameters=(), constraints=("red + yellow + blue <= 300",)) -> Campaign:
    """An ask/tell campaign over three dye volumes [uL] (and ``parameters``), with ``constraints``."""
    text = yaml.safe_dump({
        "name": "hardening", "seed": 7, "budget": {"experiments": 8, "batch_size": 2},
        "parameters": [{"name": n, "type": "continuous", "bounds": [0, 150]} for n in ("red", "yellow", "blue")]
        + list(parameters),
        "constraints": list(constraints), "objectives": [{"name": "distance", "direction": "minimize"}],
    }, sort_keys=False)
    return Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'h.db'}")


# (a) markdown ------------------------------------------------------------------------------------

def test_markdown_text_renders_as_exactly_the_text_given():
    for text in (LINK, IMAGE, SCRIPT, "yield_pct", "x|y", "&amp; *a* `b` ~c~ \\d", "www.e.example http://e.example"):
        assert rendered(markdown_text(text)) == f"<p>{html.escape(text, quote=False)}</p>\n", text
    assert rendered(markdown_text(EMPHASIS)) == "<p>**b** | x # h</p>\n"  # a line break would start a heading


def test_a_refused_answer_shows_literally_in_the_pause_form(tmp_path):
    campaign = dye_campaign(tmp_path, [{"name": "dye", "type": "categorical", "values": ["<b>red</b>", "x|y"]}])
    batch = campaign.ask(2)
    problems = edit_problems(campaign, batch, {str(batch[0].id): {"red": LINK, "yellow": IMAGE, EMPHASIS: 1.0},
                                               SCRIPT: {"red": 1.0}})
    html = rendered(describe(batch, problems))
    assert_literal(html)
    assert all(text in html for text in (LINK, IMAGE, "&lt;script&gt;x&lt;/script&gt;", "**b** | x"))
    assert "<b>" not in html and "&lt;b&gt;red&lt;/b&gt;" in html  # a categorical value from the file, too
    rows = [line for line in html.splitlines() if line == "<tr>"]
    cells = html.count("<td>")
    assert cells == len(batch) * (len(batch[0].params) + 1) and len(rows) == len(batch) + 1  # no extra column


# (b) edits with "approve" ------------------------------------------------------------------------

def test_edits_sent_with_approve_are_made_and_edits_with_reject_are_refused(tmp_path):
    from orchestrator.prefect.approval import settle

    campaign = dye_campaign(tmp_path)
    batch = campaign.ask(2)
    first = str(batch[0].id)
    decision, problems = settle(campaign, batch, BatchDecision(decision="approve", edits={first: {"red": 40.0}}))
    assert problems == [] and decision.decision == "edit" and decision.edits == {first: {"red": 40.0}}
    made = apply_decision(campaign, batch, decision)
    assert made[0].params["red"] == 40.0 and campaign.store.experiments(campaign.info.id)[0].params["red"] == 40.0

    _, problems = settle(campaign, batch, BatchDecision(decision="reject", edits={first: {"red": 41.0}}))
    assert problems == [f"a rejection cannot carry edits (experiment {first}: red=41.0); send decision edit to make "
                        "the batch with them, or reject with no edits"]
    _, problems = settle(campaign, batch, BatchDecision(decision="edit", edits={first: {}}))
    assert problems and "names no change" in problems[0]
    _, problems = settle(campaign, batch, BatchDecision(decision="approve", note="bad\x00note"))
    assert problems and "NUL" in problems[0]


# (d) the constraint a refused edit breaks ---------------------------------------------------------

def test_a_refused_edit_names_the_constraint_and_its_value(tmp_path):
    campaign = dye_campaign(tmp_path, constraints=["red + yellow + blue <= 300", "red * blue <= 15000"])
    batch = campaign.ask(2)
    first = batch[0].id
    problems = edit_problems(campaign, batch, {str(first): {"red": 150, "yellow": 150, "blue": 150}})
    assert problems == [
        f"experiment {first}: breaks the constraint 'red + yellow + blue <= 300': red + yellow + blue = 450, "
        "not <= 300 (at blue=150, red=150, yellow=150)",
        f"experiment {first}: breaks the constraint 'red * blue <= 15000': its left side is 2.25e+04, its right "
        "side 1.5e+04 (at blue=150, red=150)",
    ]


# (e) a rejected batch teaches the planner ---------------------------------------------------------

ASK_TELL = yaml.safe_dump({
    "name": "rejected-batch", "seed": 3,
    "budget": {"experiments": 40, "batch_size": 2},
    "parameters": [{"name": "x", "type": "continuous", "bounds": [0, 1]},
                   {"name": "y", "type": "continuous", "bounds": [0, 1]}],
    "objectives": [{"name": "f", "direction": "maximize"}],
    "planner": {"initial_experiments": 8},
}, sort_keys=False)


def bump(params: dict) -> float:
    return float(np.exp(-((params["x"] - 0.7) ** 2 + (params["y"] - 0.3) ** 2) / 0.05))


def nearest(campaign: Campaign, batch, rejected) -> float:
    """Smallest distance, in unit coordinates, between a point of ``batch`` and one of ``rejected``."""
    units = [np.stack([campaign.space.to_unit(p.params) for p in points]) for points in (batch, rejected)]
    return float(np.linalg.norm(units[0][:, None] - units[1][None], axis=-1).min())


def test_the_batch_after_a_rejection_lies_away_from_the_rejected_one_and_replays(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    campaign = Campaign.from_text(ASK_TELL, store=url)
    while len(campaign.experiments("measured")) < 8:
        for p in campaign.ask():
            campaign.tell(p.id, {"f": bump(p.params)})
    rejected = campaign.ask()
    assert rejected[0].info["strategy"] == "qLogEI"
    assert apply_decision(campaign, rejected, BatchDecision(decision="reject", note="too close to the wall")) is None

    # the control: the same planner, told nothing of the rejection, proposes the rejected batch again
    inputs = planner_inputs(campaign.experiments(), {})
    unaware = campaign.planner.suggest(inputs.observations, [], 2, n_proposed=len(campaign.experiments()))
    assert nearest(campaign, unaware, rejected) < 0.02
    after = campaign.ask()
    assert nearest(campaign, after, rejected) > 0.05
    assert after[0].info["n_pending"] == len(rejected)

    for p in after:
        campaign.tell(p.id, {"f": bump(p.params)})
    assert main(["export", "rejected-batch", "--bundle", str(tmp_path / "bundle"), "--store", url]) == 0
    capsys.readouterr()
    assert main(["replay", str(tmp_path / "bundle")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "replay: 12/12 proposals identical"


# (b), (c), (d) through a real flow, sdl approve and the dashboard's resume -----------------------

def wait_for_pause(name: str, key: str, timeout_s: float = 300):
    """Campaign ``name``'s flow run once it pauses with ``key`` (``approval-<iteration>-<attempt>``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = time.monotonic() + timeout_s
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])),
                                         sort=FlowRunSort.START_TIME_DESC, limit=5, offset=0)
        for run in runs:
            if run.state is not None and run.state.is_paused() and run.state.state_details.pause_key == key:
                return run
        assert time.monotonic() < deadline, f"{name} never paused as {key}"
        time.sleep(0.3)


def sdl(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_sdl_approve_exits_2_with_the_flow_s_reason_and_dashboard_edits_with_approve_are_made(api_url, tmp_path,
                                                                                               capsys):
    from prefect.flow_runs import resume_flow_run
    from prefect.input.actions import read_flow_run_input

    name, url = "approval-hardening", f"sqlite:///{tmp_path / 'flow.db'}"
    thread, outcome = start_flow(campaign_text(name, approval={"mode": "each_batch", "poll_seconds": 1}), url)

    wait_for_pause(name, "approval-1-1")
    code, out, err = sdl(capsys, "approve", name, "--edit", "1:red=[x](http://evil.example)")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (code, out, err)
    assert "the flow refused the edit: experiment 1: red='[x](http://evil.example)' is not a finite number" in err
    run = wait_for_pause(name, "approval-1-2")
    description = read_flow_run_input("paused-approval-1-2-description", flow_run_id=run.id)
    assert "Previous answer refused" in description
    assert_literal(rendered(description))

    code, _, err = sdl(capsys, "approve", name, "--edit", "1:red=150", "--edit", "1:yellow=150", "--edit", "1:blue=150")
    assert code == 2 and "breaks the constraint 'red + yellow + blue <= 300': red + yellow + blue = 450" in err, err

    run = wait_for_pause(name, "approval-1-3")  # the dashboard's form, its decision left at "approve"
    resume_flow_run(run.id, run_input={"decision": "approve", "note": "a round number",
                                       "edits": {"2": {"blue": 33.0}}})
    wait_for_pause(name, "approval-2-1")
    code, out, _ = sdl(capsys, "approve", name, "--approve")
    assert code == 0 and "approve taken by flow run" in out
    thread.join(timeout=600)
    assert "error" not in outcome, outcome.get("error")

    store = CampaignStore(url)
    campaign = store.get_campaign(name)
    events = store.events(campaign.id)
    assert [e["detail"]["decision"] for e in events if e["kind"] == "approval"] == ["edit", "approve"]
    assert len([e for e in events if e["kind"] == "approval_refused"]) == 2
    experiment = next(e for e in store.experiments(campaign.id) if e.id == 2)
    assert experiment.params["blue"] == 33.0 and experiment.proposed_params["blue"] != 33.0
    assert experiment.status == "measured"
