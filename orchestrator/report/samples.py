"""The parameter-space and spectra sections: where the experiments went and what they measured."""

from __future__ import annotations

import itertools
import math

import numpy as np

from orchestrator.report.campaign_sections import fixed_parameters_text
from orchestrator.report.convergence import known_optimum
from orchestrator.report.data import ReportData
from orchestrator.report.html import Png, Section, esc, figure, fmt, paragraph
from orchestrator.report.plotting import COLOURS, new_figure, parameter_axis, parameter_positions, style_axes, to_png
from orchestrator.store.campaign_store import Experiment

MAX_PAIR_PARAMETERS = 6


def _column(experiments: list[Experiment], p) -> np.ndarray:
    """Positions of parameter ``p`` of ``experiments`` (as made) on its axis, shape ``(n,)``: the values, or for a
    categorical parameter each level's index spread by a little (seeded) jitter so equal levels stay visible."""
    x = np.array(parameter_positions(p, [e.params[p.name] for e in experiments]), dtype=float)
    if p.type == "categorical":
        x += np.random.default_rng(len(x)).uniform(-0.15, 0.15, len(x))
    return x


def _pairs_axes(fig, n_pairs: int):
    cols = min(n_pairs, 3)
    rows = math.ceil(n_pairs / cols)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_pairs:]:
        ax.set_visible(False)
    return axes[:n_pairs]


def _xy(data: ReportData, experiments: list[Experiment], px, py) -> tuple[np.ndarray, np.ndarray]:
    """x = parameter ``px``, y = parameter ``py`` (or the objective when ``py`` is None), shape ``(n,)`` each."""
    y = _column(experiments, py) if py is not None else data.values(experiments)
    return _column(experiments, px), y


def _pair_panel(ax, data: ReportData, px, py, optimum: dict[str, float] | None):
    """One panel: measured (coloured), failed (crosses), best (star), target mixture; returns the colour mapping."""
    measured, failed, best = data.measured, data.failed, data.best()
    mapped = ax.scatter(*_xy(data, measured, px, py), c=data.values(), cmap="viridis", s=34, edgecolor="white",
                        linewidth=0.5, label="measured")
    if failed and py is not None:
        ax.scatter(*_xy(data, failed, px, py), marker="x", color=COLOURS["failed"], s=40, label="failed")
    if best is not None:
        ax.scatter(*_xy(data, [best], px, py), marker="*", s=220, facecolor=COLOURS["best"], edgecolor="black",
                   linewidth=0.8, label=f"best (experiment {best.number})", zorder=4)
    if optimum is not None and py is not None and px.name in optimum and py.name in optimum:
        ax.scatter([optimum[px.name]], [optimum[py.name]], marker="P", s=90, color=COLOURS["optimum"],
                   edgecolor="white", label="target mixture", zorder=4)
    style_axes(ax, "", "")
    parameter_axis(ax, "x", px)
    if py is not None:
        parameter_axis(ax, "y", py)
    else:
        ax.set_ylabel(objective_label(data))
    return mapped


def parameter_figure(data: ReportData) -> Png:
    """Pairwise scatter of the searched parameters (numeric first, then categorical) on their own scales,
    colour = objective value; one legend for the markers, beside the panels."""
    params = (data.space.numeric + data.space.categorical)[:MAX_PAIR_PARAMETERS]
    pairs = list(itertools.combinations(params, 2)) or [(params[0], None)]
    cols, rows = min(len(pairs), 3), math.ceil(len(pairs) / 3)
    fig = new_figure(3.4 * cols + 2.6, 3.1 * rows)
    optimum, _ = known_optimum(data)
    axes = _pairs_axes(fig, len(pairs))
    mapped = [_pair_panel(ax, data, px, py, optimum) for ax, (px, py) in zip(axes, pairs)][0]
    legend: dict[str, object] = {}
    for ax in axes:
        legend.update({label: h for h, label in zip(*ax.get_legend_handles_labels())})
    fig.legend(legend.values(), legend.keys(), loc="outside right upper", fontsize=7, frameon=False)
    if data.measured:
        fig.colorbar(mapped, ax=list(axes), shrink=0.9, label=objective_label(data))
    return to_png(fig, "parameter_space.png", "pairwise scatter of the parameters coloured by objective value")


def objective_label(data: ReportData) -> str:
    """The objective's axis label: its name and goal (objectives have no unit field in the campaign file)."""
    return f"{data.objective.name} ({data.objective.goal})"


def parameter_section(data: ReportData) -> Section:
    """Section ``parameter-space``: the pairwise scatter, or why it is empty."""
    title = "Parameter space"
    if not data.space.searched:
        return Section("parameter-space", title, paragraph("The campaign searches no parameter.", "note"))
    if not data.measured and not data.failed:
        return Section("parameter-space", title, paragraph("No experiment has been measured or failed yet.", "note"))
    png = parameter_figure(data)
    caption = ("Each measured experiment at the parameter values the robot made, coloured by its objective value; "
               "red crosses are failed experiments, the star is the best. Each parameter is drawn on its own scale "
               "(logarithmic for scale: log); a categorical parameter's levels are spread a little so that "
               "experiments at the same level stay apart.")
    if len(data.space.searched) > MAX_PAIR_PARAMETERS:
        caption += f" Only the first {MAX_PAIR_PARAMETERS} searched parameters are shown."
    if data.space.fixed_values:
        caption += f" Fixed parameters are not plotted: {fixed_parameters_text(data)}."
    return Section("parameter-space", title, figure(png, caption), (png,))


def _spectrum(data: ReportData, experiment: Experiment) -> tuple[np.ndarray, np.ndarray] | None:
    """(wavelengths [nm], absorbance [AU]) of the experiment's first spectrum, shape ``(n_wl,)`` each."""
    readings = [m for m in data.store.measurements(experiment.id) if m.get("wavelengths_nm")]
    if not readings:
        return None
    wl = np.asarray(readings[0]["wavelengths_nm"], dtype=float)
    values = np.array([np.nan if v is None else v for v in readings[0]["values"]], dtype=float)
    return wl, values


def spectra_figure(data: ReportData, shown: list[tuple[str, Experiment, tuple[np.ndarray, np.ndarray]]]) -> Png:
    """Absorbance [AU] vs wavelength [nm] of the shown experiments, with the target dashed."""
    fig = new_figure(8.5, 4.0)
    ax = fig.add_subplot()
    if data.target is not None:
        ax.plot(data.target.wavelengths_nm, data.target.absorbance, color=COLOURS["target"], ls="--", lw=1.8,
                label="target")
    name = data.objective.name
    for role, e, (wl, values) in shown:
        colour = COLOURS["best"] if role.startswith("best") else COLOURS["latest"]
        ax.plot(wl, values, color=colour, lw=2, label=f"{role}: experiment {e.number} ({name} {fmt(e.values[name])})")
    style_axes(ax, "wavelength [nm]", "absorbance [AU]")
    ax.legend(fontsize=8)
    return to_png(fig, "spectra.png", "spectra of the best and latest experiments against the target")


def spectra_section(data: ReportData) -> Section:
    """Section ``spectra``: best and latest measured spectra against the target spectrum."""
    best = data.best()
    if best is None:
        return Section("spectra", "Spectra", paragraph("No measured spectrum yet.", "note"))
    latest = data.measured[-1]
    roles = [("best and latest", best)] if latest.id == best.id else [("best", best), ("latest", latest)]
    shown = [(role, e, s) for role, e in roles if (s := _spectrum(data, e)) is not None]
    if not shown:
        text = "None of the measured experiments has a stored spectrum (values told through ask/tell come without one)."
        return Section("spectra", "Spectra", paragraph(text, "note"))
    png = spectra_figure(data, shown)
    caption = "Measured absorbance of the best and the most recent measured experiments"
    caption += " against the target spectrum (dashed)." if data.target is not None else "."
    body = figure(png, caption)
    if data.target is None:
        body += paragraph(esc(f"No target spectrum is drawn: {data.target_note}."), "note")
    return Section("spectra", "Spectra", body, (png,))
