"""The plate-map section: which well of each iteration's plate got which experiment, and what became of it."""

from __future__ import annotations

import math
import re
from collections import defaultdict

import numpy as np
from matplotlib.colors import Normalize

from orchestrator.report.data import ReportData
from orchestrator.report.html import Png, Section, esc, figure, paragraph, table
from orchestrator.report.plotting import COLOURS, category_ticks, new_figure, to_png
from orchestrator.report.samples import objective_label
from orchestrator.store.campaign_store import Experiment

TITLE = "Plate map"
#: the most iterations drawn (the latest ones); the table lists every iteration
MAX_PLATES = 12
#: a well label at the end of a stored well, e.g. "A1" or "B12" (a slot or plate prefix is ignored)
_WELL = re.compile(r"([A-Pa-p])(\d{1,2})$")


def well_position(label: str | None) -> tuple[int, int] | None:
    """(row, column), both from 0, of a well label such as ``"B7"``; None when it is no well label."""
    match = _WELL.search((label or "").strip())
    if not match:
        return None
    return ord(match.group(1).upper()) - ord("A"), int(match.group(2)) - 1


def plate_shape(positions: list[tuple[int, int]]) -> tuple[int, int]:
    """(rows, columns) of the smallest standard plate (24, 96 or 384 wells) holding every position."""
    rows = max((r for r, _ in positions), default=0) + 1
    cols = max((c for _, c in positions), default=0) + 1
    for shape in ((4, 6), (8, 12), (16, 24)):
        if rows <= shape[0] and cols <= shape[1]:
            return shape
    return rows, cols


def wells_by_iteration(data: ReportData) -> dict[int, list[tuple[Experiment, tuple[int, int]]]]:
    """Iteration -> its experiments that have a well label, with the well's (row, column)."""
    plates: dict[int, list] = defaultdict(list)
    for e in data.experiments:
        position = well_position(e.well)
        if position is not None:
            plates[e.iteration].append((e, position))
    return dict(sorted(plates.items()))


def plate_figure(data: ReportData, plates: dict[int, list[tuple[Experiment, tuple[int, int]]]]) -> Png:
    """One plate per iteration: measured wells coloured by objective value, failed ones red with a cross, other
    used wells grey; each labelled with its experiment id."""
    shown = list(plates.items())[-MAX_PLATES:]
    n_rows, n_cols = plate_shape([pos for _, wells in shown for _, pos in wells])
    cols = min(len(shown), 2 if n_cols > 12 else 3)
    rows = math.ceil(len(shown) / cols)
    fig = new_figure(0.42 * n_cols * cols + 1.4, 0.42 * n_rows * rows + 0.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    values = data.values()
    norm = Normalize(float(values.min()), float(values.max()) + 1e-12) if len(values) else Normalize(0, 1)
    mapped = None
    name = data.objective.name
    for ax, (iteration, wells) in zip(axes, shown):
        grid_r, grid_c = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
        ax.scatter(grid_c.ravel(), grid_r.ravel(), s=110, facecolor="none", edgecolor="#d5d9e0", linewidth=0.8)
        done = [(e, p) for e, p in wells if e.status == "measured"]
        if done:
            mapped = ax.scatter([c for _, (_, c) in done], [r for _, (r, _) in done], s=110, cmap="viridis",
                                c=[e.values[name] for e, _ in done], norm=norm, edgecolor="#333", linewidth=0.5)
        for e, (r, c) in wells:
            if e.status == "failed":
                ax.scatter([c], [r], s=110, color=COLOURS["failed"], marker="o", edgecolor="#333", linewidth=0.5)
                ax.scatter([c], [r], s=50, color="white", marker="x", linewidth=1.2)
            elif e.status != "measured":
                ax.scatter([c], [r], s=110, color="#bbbbbb", edgecolor="#333", linewidth=0.5)
            ax.text(c, r + 0.42, str(e.number), ha="center", va="top", fontsize=5, color="#333")
        ax.set_xlim(-0.7, n_cols - 0.3)
        ax.set_ylim(n_rows - 0.2, -0.7)
        ax.set_aspect("equal")
        ax.set_title(f"iteration {iteration}", fontsize=9)
        category_ticks(ax.xaxis, [str(i + 1) for i in range(n_cols)])
        category_ticks(ax.yaxis, [chr(ord("A") + i) for i in range(n_rows)])
        ax.tick_params(labelsize=6, length=0)
        ax.xaxis.tick_top()
        for spine in ax.spines.values():
            spine.set_visible(False)
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    if mapped is not None:
        fig.colorbar(mapped, ax=list(axes[:len(shown)]), shrink=0.8, label=objective_label(data))
    return to_png(fig, "plate_map.png", "plate map of each iteration: which well got which experiment")


def plate_map_section(data: ReportData) -> Section:
    """Section ``plate-map``: each iteration's plate, and a table of its wells by outcome."""
    plates = wells_by_iteration(data)
    if not plates:
        return Section("plate-map", TITLE, paragraph(
            "No experiment has a well recorded (experiments told through ask/tell or added from existing data "
            "are made outside the robot's plate), so there is no plate map.", "note"))
    png = plate_figure(data, plates)
    rows = []
    for iteration, wells in plates.items():
        by_status: dict[str, list[str]] = defaultdict(list)
        for e, _ in wells:
            by_status[e.status].append(f"{e.well} ({e.number})")
        rows.append((iteration, len(wells), ", ".join(by_status.get("measured", [])) or "\u2013",
                     ", ".join(by_status.get("failed", [])) or "\u2013",
                     ", ".join(w for s, ws in by_status.items() if s not in ("measured", "failed") for w in ws)
                     or "\u2013"))
    caption = ("Each iteration's plate: measured wells coloured by their objective value, failed wells red with a "
               "cross, wells used but not measured grey; the number under each well is its experiment's number in the campaign.")
    if len(plates) > MAX_PLATES:
        caption += f" Only the latest {MAX_PLATES} of {len(plates)} iterations are drawn; the table lists all."
    body = figure(png, caption) + table(("iteration", "wells", "measured: well (id)", "failed: well (id)",
                                         "other: well (id)"), rows, "wide")
    return Section("plate-map", TITLE, paragraph(esc(
        "Which well got which experiment, and which failed, from the wells stored with each experiment.")) + body,
        (png,))
