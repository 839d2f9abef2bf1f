"""User text in the report is plain text (issue 27, item 8).

Units, failure reasons and the campaign's description are the user's own words. matplotlib
parses text between ``$`` signs as mathtext: a unit ``$\\frac{$`` crashed the report, and
``$x^2$`` silently became a formula. Protected here: every figure shows such text as written
(``parse_math`` and ``usetex`` off on its Text artists, tick labels included), and the HTML
shows it escaped, on a real campaign in a SQLite store.
"""

from __future__ import annotations

import re
import sys

import pytest
from matplotlib.text import Text

from orchestrator.report import SECTION_IDS, build_report, plotting
from orchestrator.report.html import esc
from orchestrator.report.plotting import category_ticks, new_figure, style_axes, to_png
from orchestrator.run.campaign import Campaign
from tests.conftest import demo_document, write_campaign

NAME = "text-report"
SQUARED = "$x^2$"  # valid mathtext: would render as a formula
BROKEN = "$\\frac{$"  # invalid mathtext: matplotlib raises ValueError when it draws it
DESCRIPTION = f"Dyes at {SQUARED} per <b>bottle</b> & {BROKEN} \"quoted\""
REASONS = (f"{BROKEN} price: the stock bottle broke", f"tip {SQUARED} lost: the rack was empty")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Six measured and two failed Sobol experiments told by hand, and the report with every figure it drew."""
    tmp = tmp_path_factory.mktemp("text-report")
    doc = demo_document()
    doc["name"] = NAME
    doc["description"] = DESCRIPTION
    doc["budget"] = {"experiments": 8, "batch_size": 4}
    doc["planner"] = {"initial_experiments": 8}
    del doc["instruments"]  # told by hand, so no robot; its reagents' volumes would have to be in uL
    doc["parameters"][0]["unit"] = SQUARED
    doc["parameters"][1]["unit"] = BROKEN
    campaign = Campaign.from_yaml(write_campaign(tmp, doc), store=f"sqlite:///{tmp / 'store.db'}")
    experiments = campaign.ask(8)
    for i, e in enumerate(experiments[:6]):
        campaign.tell(e.id, {"distance": 0.05 + 0.01 * i + 0.001 * e.params["red"]})
    for e, reason in zip(experiments[6:], REASONS):
        campaign.fail(e.id, reason)
    figures = {}
    real_to_png = plotting.to_png

    def keeping_to_png(fig, name, alt):  # the real renderer, keeping each figure to look at its Text artists
        png = real_to_png(fig, name, alt)
        figures[name] = fig
        return png

    with pytest.MonkeyPatch.context() as patch:
        for module in list(sys.modules.values()):
            if module.__name__.startswith("orchestrator.report.") and getattr(module, "to_png", None) is real_to_png:
                patch.setattr(module, "to_png", keeping_to_png)
        index = build_report(campaign.store, NAME, tmp / "out")
    return {"index": index, "html": index.read_text(encoding="utf-8"), "figures": figures}


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def _texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_text()]


def _literal(fig, text: str) -> Text:
    """The Text artist of ``fig`` whose string is ``text``, checked to be drawn as written."""
    found = [t for t in _texts(fig) if t.get_text() == text]
    assert found, f"{text!r} is not among {[t.get_text() for t in _texts(fig)]}"
    for t in found:
        assert t.get_parse_math() is False and t.get_usetex() is False, text
    return found[0]


def test_report_with_dollar_signs_in_user_text_is_written(built):
    assert built["index"].is_file()
    assert re.findall(r'<section id="([^"]+)"><h2>', built["html"]) == list(SECTION_IDS)
    assert {"parameter_space.png", "model_slices.png", "failures.png"} <= set(built["figures"])
    assert all((built["index"].parent / name).stat().st_size > 5_000 for name in built["figures"])


def test_units_are_literal_in_axis_labels(built):
    figures = built["figures"]
    for name in ("parameter_space.png", "model_slices.png"):
        _literal(figures[name], f"red [{SQUARED}]")
        _literal(figures[name], f"yellow [{BROKEN}]")


def test_failure_causes_are_literal_tick_labels(built):
    failures = built["figures"]["failures.png"]
    tick_labels = {t.get_text() for t in failures.axes[0].get_yticklabels()}
    assert tick_labels == {BROKEN + " price", f"tip {SQUARED} lost"}
    _literal(failures, BROKEN + " price")
    _literal(failures, f"tip {SQUARED} lost")


def test_no_text_with_a_dollar_sign_is_parsed_as_math_in_any_figure(built):
    parsed = [(name, t.get_text()) for name, fig in built["figures"].items() for t in _texts(fig)
              if "$" in t.get_text() and (t.get_parse_math() or t.get_usetex())]
    assert parsed == []


def test_user_text_is_escaped_in_the_html(built):
    html = built["html"]
    assert "<b>bottle</b>" not in html
    summary = _section(html, "summary")
    assert f"<td>{esc(DESCRIPTION)}</td>" in summary  # the description fact, escaped
    assert "Dyes at $x^2$ per &lt;b&gt;bottle&lt;/b&gt; &amp; $\\frac{$ &quot;quoted&quot;" in summary
    failures = _section(html, "failures")
    assert f"<td>{esc(REASONS[0])}</td>" in failures and f"<td>{esc(BROKEN + ' price')}</td>" in failures
    proposals = _section(html, "proposals")  # "red 40.0 $x^2$, yellow 95.0 $\frac{$, blue ..." per experiment
    assert proposals.count(f"\u00a0{esc(SQUARED)}, yellow\u00a0") == proposals.count(f"\u00a0{esc(BROKEN)}, blue") == 8


def test_figure_text_of_every_kind_is_drawn_as_written():
    fig = new_figure(4.0, 3.0)
    ax = fig.add_subplot()
    mapped = ax.scatter([0, 1, 2], [1, 2, 3], c=[1, 2, 3], label=f"legend {BROKEN}")
    ax.bar([0, 1], [1, 2])
    category_ticks(ax.xaxis, [SQUARED, BROKEN])
    ax.set_title(f"title {SQUARED}")
    ax.annotate(f"note {BROKEN}", (1, 2))
    style_axes(ax, f"x {BROKEN}", f"y {SQUARED}")
    ax.legend()
    fig.colorbar(mapped, ax=ax, label=f"colour {BROKEN}")
    png = to_png(fig, "kinds.png", "every kind of text")
    assert png.data.startswith(b"\x89PNG")
    for text in (f"legend {BROKEN}", SQUARED, BROKEN, f"title {SQUARED}", f"note {BROKEN}", f"x {BROKEN}",
                 f"y {SQUARED}", f"colour {BROKEN}"):
        _literal(fig, text)
    numeric_ticks = [t for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert numeric_ticks and all(t.get_parse_math() for t in numeric_ticks)  # matplotlib's own, left alone
