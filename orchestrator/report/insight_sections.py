"""The sections that read the fitted model: its predicted optimum, its response surface, its effects per category."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap

from orchestrator.report.campaign_sections import fixed_parameters_text, param_value
from orchestrator.report.data import ReportData
from orchestrator.report.html import Png, Section, esc, figure, fmt, paragraph, table
from orchestrator.report.insights import (OPTIMUM_CANDIDATES, PredictedOptimum, Surface, most_important_numeric,
                                          predicted_optimum, response_surface)
from orchestrator.report.model import ModelSummary
from orchestrator.report.plotting import COLOURS, new_figure, parameter_axis, style_axes, to_png
from orchestrator.report.samples import objective_label


def _params_cell(data: ReportData, params: dict) -> str:
    return ", ".join(f"{p.name} {param_value(p, params[p.name])}" for p in data.space.searched)


def _interval(mean: float, sd: float) -> str:
    return f"{fmt(mean)} \u00b1 {fmt(2 * sd)} ({fmt(mean - 2 * sd)} to {fmt(mean + 2 * sd)})"


def model_optimum(data: ReportData, summary: ModelSummary) -> PredictedOptimum | None:
    """The model's predicted optimum among the measured points and feasible Sobol candidates (cached per report)."""
    if "optimum" not in data.cache:
        measured_u = np.array([data.space.to_unit(e.params) for e in data.measured]).reshape(-1, data.space.dim)
        data.cache["optimum"] = predicted_optimum(data.space, data.objective, summary.predict, measured_u,
                                                  data.spec.seed)
    return data.cache["optimum"]


def optimum_section(data: ReportData, summary: ModelSummary | None, reason: str) -> Section:
    """Section ``optimum``: the model's best predicted point with mean +- 2 sd, beside the best measured."""
    title = "Predicted optimum"
    if summary is None or summary.predict is None:
        return Section("optimum", title, paragraph(esc(reason or "There is no model to predict with."), "note"))
    optimum = model_optimum(data, summary)
    if optimum is None:
        return Section("optimum", title, paragraph("No candidate point meets the constraints.", "note"))
    best = data.best()
    best_mean, best_sd = summary.predict(data.space.to_unit(best.params)[None, :])
    name = data.objective.name
    rows = [("predicted optimum (model)", _params_cell(data, optimum.params), "\u2013",
             _interval(optimum.mean, optimum.sd)),
            (f"best measured (experiment {best.number})", _params_cell(data, best.params), fmt(best.values[name]),
             _interval(float(best_mean[0]), float(best_sd[0])))]
    where = ("is one of the measured points" if optimum.measured
             else "is a point not measured yet")
    text = (f"The point where the model's mean {name} is best ({data.objective.goal}) among the {optimum.candidates} "
            f"measured and feasible candidate points (the measured experiments and {OPTIMUM_CANDIDATES} scrambled "
            f"Sobol points that meet every constraint) {where}. Its interval is the model's mean \u00b1 2 sd of the "
            "latent function (no measurement noise), about 95% if the model is right.")
    body = paragraph(esc(text)) + table(("", "parameters", f"measured {name}", f"model's {name}: mean \u00b1 2 sd"),
                                        rows, "wide")
    if data.space.fixed_values:
        body += paragraph(esc(f"Fixed parameters: {fixed_parameters_text(data)}."), "note")
    return Section("optimum", title, body)


def surface_figure(data: ReportData, surface: Surface, optimum: PredictedOptimum | None) -> Png:
    """Filled contours of the model's mean over two parameters (their own scales), infeasible hatched, with the
    measured (coloured like the surface), failed (crosses), best (star) and predicted optimum (plus)."""
    by_name = {p.name: p for p in data.space.searched}
    px, py = by_name[surface.x_name], by_name[surface.y_name]
    fig = new_figure(6.8, 5.0)
    ax = fig.add_subplot()
    levels = np.linspace(float(surface.mean.min()), float(surface.mean.max()) + 1e-12, 15)
    filled = ax.contourf(surface.x, surface.y, surface.mean, levels=levels, cmap="viridis")
    if not surface.feasible.all():
        ax.contourf(surface.x, surface.y, (~surface.feasible).astype(float), levels=[0.5, 1.5], hatches=["//"],
                    cmap=ListedColormap(["#ffffff"]), alpha=0.55)
        ax.plot([], [], color="#bbb", lw=6, label="breaks a constraint (hatched)")
    measured, failed, best = data.measured, data.failed, data.best()

    def coords(experiments):
        return ([float(e.params[px.name]) for e in experiments], [float(e.params[py.name]) for e in experiments])

    ax.scatter(*coords(measured), c=data.values(), cmap="viridis", norm=filled.norm, s=36, edgecolor="white",
               linewidth=0.8, label="measured", zorder=3)
    if failed:
        ax.scatter(*coords(failed), marker="x", color=COLOURS["failed"], s=40, label="failed", zorder=3)
    ax.scatter(*coords([best]), marker="*", s=240, facecolor=COLOURS["best"], edgecolor="black", linewidth=0.8,
               label=f"best measured (experiment {best.number})", zorder=4)
    if optimum is not None:
        ax.scatter([float(optimum.params[px.name])], [float(optimum.params[py.name])], marker="P", s=110,
                   color=COLOURS["optimum"], edgecolor="white", label="predicted optimum", zorder=4)
    style_axes(ax, "", "")
    parameter_axis(ax, "x", px)
    parameter_axis(ax, "y", py)
    fig.colorbar(filled, ax=ax, label=f"model mean of {objective_label(data)}")
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return to_png(fig, "response_surface.png", f"model mean over {px.name} and {py.name}")


def surface_section(data: ReportData, summary: ModelSummary | None, reason: str) -> Section:
    """Section ``surface``: the model's mean over its two most important numeric parameters."""
    title = "Response surface"
    if summary is None or summary.predict is None:
        return Section("surface", title, paragraph(esc(reason or "There is no model to draw."), "note"))
    if len(data.space.numeric) < 2:
        return Section("surface", title, paragraph(esc(
            f"The campaign searches {len(data.space.numeric)} numeric parameter(s); a response surface needs two "
            "(the model along each parameter is in the Model section)."), "note"))
    x_name, y_name = most_important_numeric(data.space, summary.importance)
    surface = response_surface(data.space, summary.predict, x_name, y_name, summary.best_u)
    png = surface_figure(data, surface, model_optimum(data, summary))
    others = [p for p in data.space.searched if p.name not in (x_name, y_name)]
    held = ", ".join(f"{p.name} {param_value(p, surface.held[p.name])}" for p in others)
    caption = (f"The model's mean over {x_name} and {y_name}, the two numeric parameters with the largest "
               "lengthscale share, on their own scales"
               + (f"; the other parameters held at the best measured experiment ({held})" if held else "")
               + ". Experiments are drawn where they were made, whatever their other parameters.")
    if data.space.fixed_values:
        caption += f" Fixed parameters: {fixed_parameters_text(data)}."
    return Section("surface", title, figure(png, caption), (png,))


def effects_section(data: ReportData, summary: ModelSummary | None, reason: str) -> Section:
    """Section ``effects``: the model's mean +- 2 sd at each level of each categorical parameter."""
    title = "Effects per category"
    if not data.space.categorical:
        return Section("effects", title, paragraph("The campaign searches no categorical parameter.", "note"))
    if summary is None:
        return Section("effects", title, paragraph(esc(reason), "note"))
    name = data.objective.name
    rows = []
    for effect in summary.effects:
        measured = {level: [e.values[name] for e in data.measured if str(e.params[effect.name]) == level]
                    for level in effect.levels}
        for level, mean, sd in zip(effect.levels, effect.mean, effect.sd):
            rows.append((effect.name, level + (" (best point's)" if level == effect.at else ""),
                         _interval(float(mean), float(sd)), len(measured[level]),
                         fmt(float(np.mean(measured[level]))) if measured[level] else "\u2013"))
    text = ("The model's mean of the objective at each level of each categorical parameter, every other parameter "
            "held at the best measured experiment (the Model section draws the same as a figure), beside the "
            "experiments measured at that level and their plain average.")
    body = paragraph(esc(text)) + table(("parameter", "level", f"model's {name}: mean \u00b1 2 sd", "measured",
                                         f"average measured {name}"), rows, "wide")
    return Section("effects", title, body)
