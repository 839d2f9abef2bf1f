"""The hybrid-model section: how a calibrated prior mean's settings were fitted, iteration by iteration.

A campaign whose ``prior_mean`` has ``calibrate`` ranges stores, with each proposal, the settings
in use and the last fit (``orchestrator.planning.calibration.Calibration.describe``): the fitted values,
their standard deviations and the relative mean squared error at the start and at the fit. This
section shows them per iteration, so a scientist sees what the campaign learned about the
larger scale (say, how much hotter the plant runs) and how sure it is.
"""

from __future__ import annotations

from typing import Any

from orchestrator.planning.prior_mean import starting_values
from orchestrator.report.data import ReportData
from orchestrator.report.html import Png, Section, esc, figure, fmt, paragraph, table
from orchestrator.report.plotting import COLOURS, new_figure, style_axes, to_png

TITLE = "Hybrid model"


def calibration_by_iteration(data: ReportData) -> list[tuple[int, dict[str, Any]]]:
    """``(iteration, info["prior_mean"])`` of the first proposal of each iteration that has a calibration."""
    seen: dict[int, dict[str, Any]] = {}
    for e in data.experiments:
        prior = (e.proposal_info or {}).get("prior_mean")
        if isinstance(prior, dict) and "calibration" in prior and e.iteration not in seen:
            seen[e.iteration] = prior
    return sorted(seen.items())


def _setting_text(calibration: dict[str, Any], name: str) -> str:
    if not calibration.get("fitted"):
        return "\u2013"
    value, sd = calibration["fit"][name], (calibration.get("fit_sd") or {}).get(name)
    return f"{fmt(value)} \u00b1 {fmt(sd)}" if sd is not None else fmt(value)


def hybrid_figure(rows: list[tuple[int, dict[str, Any]]], ranges: dict[str, tuple[float, float]],
                  given: dict[str, float]) -> Png:
    """One panel per calibrated setting: the fit (+- 2 sd) at each iteration within its range, and the
    ``given`` value (where the fit starts) as a dashed line."""
    names = list(ranges)
    fig = new_figure(3.4 * len(names), 2.8)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    fitted = [(i, p["calibration"]) for i, p in rows if p["calibration"].get("fitted")]
    iterations = [i for i, _ in fitted]
    for ax, name in zip(axes, names):
        values = [c["fit"][name] for _, c in fitted]
        sds = [2.0 * ((c.get("fit_sd") or {}).get(name) or 0.0) for _, c in fitted]
        ax.axhline(given[name], color=COLOURS["baseline"], ls="--", lw=1, label="given")
        ax.errorbar(iterations, values, yerr=sds, fmt="o-", color=COLOURS["line"], capsize=2, lw=1, ms=3, label="fit")
        ax.legend(fontsize=8, frameon=False)
        ax.set_ylim(*ranges[name])
        style_axes(ax, "iteration", name)
    return to_png(fig, "hybrid.png", "fitted settings of the hybrid model per iteration")


def hybrid_section(data: ReportData) -> Section:
    """Section ``hybrid``: the calibrated settings per iteration, or why there are none."""
    prior_mean = data.spec.prior_mean
    if prior_mean is None or not prior_mean.calibrate:
        why = ("This campaign has no mechanistic prior mean" if prior_mean is None
               else f"The prior mean {prior_mean.model!r} has no calibrated settings")
        return Section("hybrid", TITLE, paragraph(esc(
            f"{why}, so there is no fitted model setting to show (see prior_mean.calibrate in docs/plugins.md)."),
            "note"))
    rows = calibration_by_iteration(data)
    if not rows:
        return Section("hybrid", TITLE, paragraph("No proposal has recorded a calibration yet.", "note"))
    names = list(prior_mean.calibrate)
    headers = ["iteration", "observations", *(f"{n} fit \u00b1 sd" for n in names),
               *(f"{n} in use" for n in names), "relative MSE at start", "relative MSE at fit"]
    table_rows = []
    for iteration, prior in rows:
        c = prior["calibration"]
        table_rows.append((iteration, c.get("observations", "\u2013"), *(_setting_text(c, n) for n in names),
                           *(prior["calibrated"].get(n) for n in names),
                           c.get("relative_mse_at_start", "\u2013"), c.get("relative_mse_fitted", "\u2013")))
    text = ("Before each proposal the planner fits these settings of the model to the measurements so far (the "
            "most probable values given the data and a prior about the given values), and the GP learns what the "
            "fitted model still misses. The settings in use are the fit rounded to 1/128 of each range; \u00b1 is "
            "one standard deviation from the curvature of the fit's posterior. The relative MSE is the mean "
            "squared residual (offset removed) over the variance of the measurements: how much of their spread "
            "the model explains (0 = all of it).")
    fitted = any(prior["calibration"].get("fitted") for _, prior in rows)
    body, figures = paragraph(esc(text)), ()
    if fitted:
        ranges = {n: tuple(prior_mean.calibrate[n]) for n in names}
        png = hybrid_figure(rows, ranges, starting_values(prior_mean.settings, ranges))
        body += figure(png, "Fitted settings per iteration, with bars of \u00b1 2 standard deviations; dashed: "
                            "the value given in the campaign file (the middle of the range when none is).")
        figures = (png,)
    return Section("hybrid", TITLE, body + table(headers, table_rows, "wide"), figures)
