"""The Pareto section: non-dominated experiments when a campaign has two or more objectives.

Dominance is judged on each objective's score (its direction, or the distance to its
target); the figure shows the measured values themselves.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from orchestrator.run.best import constrained_measured
from orchestrator.report.data import ReportData, objective_scores
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


def pareto_figure(values: np.ndarray, labels: Sequence[str], front: np.ndarray) -> Png:
    """Scatter of the first two objectives (``values`` shape ``(n, m)``, m >= 2) with the Pareto front joined up.

    ``labels`` are the axis titles of the first two objectives; ``front`` (shape ``(n,)``
    bool) marks the non-dominated rows.
    """
    fig = new_figure(6.0, 4.6)
    ax = fig.add_subplot()
    ax.scatter(values[~front, 0], values[~front, 1], s=22, color=COLOURS["baseline"], label="dominated")
    ordered = values[front][np.argsort(values[front, 0])]
    ax.plot(ordered[:, 0], ordered[:, 1], "o-", color=COLOURS["line"], ms=6, label="Pareto front")
    style_axes(ax, labels[0], labels[1])
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
    measured = data.measured
    values = np.array([[e.values[n] for n in names] for e in measured], dtype=float).reshape(-1, len(names))
    if len(values) == 0:
        return Section("pareto", "Pareto front", paragraph("No measured experiments yet.", "note"))
    counted = {e.id for e in constrained_measured(measured, data.spec.parsed_outcome_constraints())}
    meets = np.array([e.id in counted for e in measured])
    scores = np.stack([objective_scores(values[:, i], o) for i, o in enumerate(objectives)], axis=1)
    front = pareto_mask(np.where(meets[:, None], scores, np.nan), [True] * len(objectives))
    png = pareto_figure(values, [f"{o.name} ({o.goal})" for o in objectives[:2]], front)
    caption = (f"Measured experiments in the first two objectives; {int(front.sum())} "
               f"of {len(values)} are non-dominated over all {len(names)} objectives")
    if not meets.all():
        caption += f" ({int((~meets).sum())} that break an outcome constraint are left off the front)"
    return Section("pareto", "Pareto front", figure(png, caption + "."), (png,))
