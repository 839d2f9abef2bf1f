"""The Pareto section: non-dominated experiments when a campaign has two or more objectives.

Campaign files allow one objective today, so the section usually says so; the helpers are
generic and work on any ``(n, m)`` array of objective values.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from orchestrator.report.data import ReportData
from orchestrator.report.html import Png, Section, esc, figure, paragraph
from orchestrator.report.plotting import COLOURS, new_figure, style_axes, to_png


def pareto_mask(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Which rows of ``values`` (shape ``(n, m)``) no other row dominates; shape ``(n,)`` bool.

    Row ``j`` dominates row ``i`` when it is at least as good in every objective and better in
    one (direction per column from ``maximize``). Rows with a NaN are never on the front.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(maximize):
        raise ValueError(f"values must have shape (n, {len(maximize)}), got {values.shape}")
    cost = values * np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)  # smaller is better
    valid = ~np.isnan(cost).any(axis=1)
    c = np.where(valid[:, None], cost, np.inf)
    no_worse = np.all(c[None, :, :] <= c[:, None, :], axis=2)  # [i, j]: j no worse than i everywhere
    better = np.any(c[None, :, :] < c[:, None, :], axis=2)  # [i, j]: j better than i somewhere
    dominated = np.any(no_worse & better & valid[None, :], axis=1)
    return valid & ~dominated


def pareto_figure(values: np.ndarray, names: Sequence[str], maximize: Sequence[bool]) -> Png:
    """Scatter of the first two objectives (shape ``(n, m)``, m >= 2) with the Pareto front joined up."""
    front = pareto_mask(values, maximize)
    fig = new_figure(6.0, 4.6)
    ax = fig.add_subplot()
    ax.scatter(values[~front, 0], values[~front, 1], s=22, color=COLOURS["baseline"], label="dominated")
    ordered = values[front][np.argsort(values[front, 0])]
    ax.plot(ordered[:, 0], ordered[:, 1], "o-", color=COLOURS["line"], ms=6, label="Pareto front")
    direction = ["max" if m else "min" for m in maximize]
    style_axes(ax, f"{names[0]} ({direction[0]})", f"{names[1]} ({direction[1]})")
    ax.legend(fontsize=8)
    return to_png(fig, "pareto.png", "Pareto front of the first two objectives")


def pareto_section(data: ReportData) -> Section:
    """Section ``pareto``: the front of the measured experiments, or why there is none."""
    objectives = data.spec.objectives
    if len(objectives) < 2:
        return Section("pareto", "Pareto front", paragraph(esc(
            f"This campaign has a single objective ({objectives[0].name}), so there is no Pareto front to show; "
            "it needs two or more objectives."), "note"))
    names = [o.name for o in objectives]
    values = np.array([[e.values[n] for n in names] for e in data.measured], dtype=float).reshape(-1, len(names))
    if len(values) == 0:
        return Section("pareto", "Pareto front", paragraph("No measured experiments yet.", "note"))
    maximize = [o.direction == "maximize" for o in objectives]
    png = pareto_figure(values, names, maximize)
    caption = (f"Measured experiments in the first two objectives; {int(pareto_mask(values, maximize).sum())} "
               f"of {len(values)} are non-dominated over all {len(names)} objectives.")
    return Section("pareto", "Pareto front", figure(png, caption), (png,))
