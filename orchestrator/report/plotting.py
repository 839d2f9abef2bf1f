"""Shared matplotlib helpers: Agg figures without pyplot's global state, rendered to PNG bytes.

Text in the figures is shown as written: parameter units, failure reasons and other user text
may hold ``$`` or backslashes, which matplotlib would otherwise parse as mathtext (a crash for
``$\\frac{$``, a formula for ``$x^2$``) or hand to LaTeX when ``text.usetex`` is set.
"""

from __future__ import annotations

import io
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from orchestrator.report.html import Png

DPI = 110
#: keyword arguments of a matplotlib ``Text`` that show its string literally: no mathtext, no LaTeX
PLAIN_TEXT = {"parse_math": False, "usetex": False}
#: one colour per role, reused across figures
COLOURS = {
    "line": "#2859a8", "sobol": "#e8eef8", "bo": "#2859a8", "failed": "#c62828", "target": "#111111",
    "baseline": "#8a93a3", "optimum": "#2e7d32", "best": "#f9a825", "latest": "#6a1b9a",
}
#: timing steps: label -> the ``timing`` event keys [s] summed into it, and its colour
STEP_GROUPS = (
    ("planner", ("propose_s",), "#2859a8"),
    ("robot", ("prepare_s",), "#ef6c00"),
    ("spectrometer", ("measure_s",), "#2e7d32"),
    ("analysis + record", ("analyse_s", "record_s"), "#8e24aa"),
    ("overhead", ("overhead_s",), "#9e9e9e"),
)


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure ``width_in`` x ``height_in`` inches on the Agg canvas, with constrained layout."""
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def show_text_as_written(fig: Figure) -> None:
    """Make every text of ``fig`` but its tick labels plain (``PLAIN_TEXT``): titles, axis and colour-bar
    labels, legends, annotations.

    Tick labels are left alone: numeric ones come from matplotlib's formatters, which may rightly use
    mathtext, and ticks made while drawing would not keep the setting anyway. Label ticks with user text
    through ``category_ticks``.
    """
    texts = fig.findobj(Text)  # first: listing an axis's children makes its ticks
    tick_labels = {id(label) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
                   for tick in (*axis.majorTicks, *axis.minorTicks) for label in (tick.label1, tick.label2)}
    for text in texts:
        if id(text) not in tick_labels:
            text.update(PLAIN_TEXT)


def category_ticks(axis, labels: Sequence[str]) -> None:
    """Ticks at 0, 1, ... on ``axis`` (``ax.xaxis`` or ``ax.yaxis``) labelled with ``labels`` as written."""
    axis.set_ticks(range(len(labels)), list(labels), **PLAIN_TEXT)


def to_png(fig: Figure, name: str, alt: str) -> Png:
    """Render ``fig`` as PNG bytes (``DPI`` dots per inch, no timestamp metadata), its text as written
    (``show_text_as_written``)."""
    show_text_as_written(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return Png(name, buffer.getvalue(), alt)


def style_axes(ax, xlabel: str, ylabel: str) -> None:
    """Axis labels, a light grid behind the data, no top/right spines."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, color="#e4e7ec", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def unit_label(name: str, unit: str | None) -> str:
    """``"red [uL]"``, or the bare name without a unit."""
    return f"{name} [{unit}]" if unit else name


def parameter_positions(p, values: Sequence) -> list[float]:
    """Where ``values`` of parameter ``p`` sit on its axis: the value itself, or a category's index."""
    if p.type == "categorical":
        levels = [str(v) for v in p.values]
        return [float(levels.index(str(v))) for v in values]
    return [float(v) for v in values]


def parameter_axis(ax, which: str, p) -> None:
    """Draw axis ``which`` (``"x"`` or ``"y"``) of ``ax`` on parameter ``p``'s own scale: logarithmic for
    ``scale: log``, the levels as ticks for a categorical one (``parameter_positions``); labelled with its unit."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    if p.type == "categorical":
        category_ticks(axis, [str(v) for v in p.values])
        (ax.set_xlim if which == "x" else ax.set_ylim)(-0.5, len(p.values) - 0.5)
    elif p.is_log:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    (ax.set_xlabel if which == "x" else ax.set_ylabel)(unit_label(p.name, p.unit))
