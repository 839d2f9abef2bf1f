"""The model and importance sections: how well the GP predicts, what it looks like, what matters."""

from __future__ import annotations

import math

import numpy as np

from orchestrator.report.campaign_sections import fixed_parameters_text, planner_failures_text
from orchestrator.report.data import ReportData
from orchestrator.report.html import Png, Section, esc, figure, fmt, paragraph, table
from orchestrator.report.insights import SOBOL_BASE, model_sobol_indices
from orchestrator.report.model import MIN_POINTS, ModelSummary, summarise_model
from orchestrator.report.plotting import COLOURS, category_ticks, new_figure, parameter_axis, style_axes, to_png
from orchestrator.report.samples import objective_label


def model_or_reason(data: ReportData) -> tuple[ModelSummary | None, str]:
    """The fitted model's summary, or None and one sentence saying why there is none."""
    n = len(data.measured)
    if n < MIN_POINTS:
        return None, (f"Too little data for a model: {n} measured experiment(s), "
                      f"and a Gaussian process needs at least {MIN_POINTS}.")
    try:
        return summarise_model(data), ""
    except (RuntimeError, ValueError) as err:  # e.g. a covariance that is not positive definite
        return None, f"The Gaussian process could not be fitted to the {n} measured experiments: {err}."


def loo_figure(data: ReportData, summary: ModelSummary) -> Png:
    """LOO predicted vs observed [objective units] with +-2 sd bars and the identity line."""
    fig = new_figure(4.6, 4.2)
    ax = fig.add_subplot()
    ax.errorbar(summary.observed, summary.loo_mean, yerr=2 * summary.loo_sd, fmt="o", ms=5, color=COLOURS["line"],
                ecolor="#9db4dc", elinewidth=1.2, capsize=2.5, label="LOO prediction \u00b1 2 sd")
    band = 2 * summary.loo_sd
    values = np.concatenate([summary.observed, summary.loo_mean - band, summary.loo_mean + band])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#555", lw=1, ls="--", label="predicted = observed")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    name = data.objective.name
    style_axes(ax, f"observed {name}", f"predicted {name} (leave-one-out)")  # objectives have no unit field
    ax.legend(fontsize=8, loc="upper left")
    return to_png(fig, "model_loo.png", "leave-one-out predicted against observed objective values")


def slices_figure(data: ReportData, summary: ModelSummary) -> Png:
    """Posterior mean +- 2 sd along each numeric parameter through the best point (on the parameter's own scale,
    infeasible grey), then at each level of each categorical parameter."""
    by_name = {p.name: p for p in data.space.searched}
    n = len(summary.slices) + len(summary.effects)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = new_figure(3.3 * cols + 0.6, 2.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    legend: dict[str, object] = {}
    for ax, s in zip(axes, summary.slices):
        ax.fill_between(s.x, s.mean - 2 * s.sd, s.mean + 2 * s.sd, color="#9db4dc", alpha=0.5, label="\u00b1 2 sd")
        ax.plot(s.x, s.mean, color=COLOURS["line"], lw=2, label="mean")
        if not s.feasible.all():
            ax.fill_between(s.x, 0, 1, where=~s.feasible, transform=ax.get_xaxis_transform(), color="#bbb",
                            alpha=0.45, step="mid", label="breaks a constraint")
        ax.axvline(s.at, color=COLOURS["best"], lw=1.5, ls="--", label="best point")
        style_axes(ax, "", objective_label(data))
        parameter_axis(ax, "x", by_name[s.name])
        legend.update({label: h for h, label in zip(*ax.get_legend_handles_labels())})
    for ax, effect in zip(axes[len(summary.slices):], summary.effects):
        x = np.arange(len(effect.levels))
        ax.errorbar(x, effect.mean, yerr=2 * effect.sd, fmt="o", color=COLOURS["line"], ecolor="#9db4dc",
                    elinewidth=3, capsize=3)
        best = effect.levels.index(effect.at)
        ax.scatter([best], [effect.mean[best]], marker="*", s=160, facecolor=COLOURS["best"], edgecolor="black",
                   zorder=4, label="level of the best point")
        style_axes(ax, "", objective_label(data))
        parameter_axis(ax, "x", by_name[effect.name])
        legend.update({label: h for h, label in zip(*ax.get_legend_handles_labels())})
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.legend(legend.values(), legend.keys(), loc="outside upper center", ncols=len(legend), fontsize=8,
               frameon=False)
    return to_png(fig, "model_slices.png", "model mean and two standard deviations along each parameter")


def model_section(data: ReportData, summary: ModelSummary | None, reason: str) -> Section:
    """Section ``model``: LOO predicted vs observed, and slices through the best point."""
    if summary is None:
        return Section("model", "Model", paragraph(esc(reason), "note"))
    residual = summary.loo_mean - summary.observed
    rmse = float(np.sqrt(np.mean(residual ** 2)))
    covered = float(np.mean(np.abs(residual) <= 2 * summary.loo_sd))
    loo = loo_figure(data, summary)
    cuts = slices_figure(data, summary) if summary.slices or summary.effects else None
    extras = []
    if summary.imputed:
        extras.append(f"{summary.imputed} chemistry failure(s) at the worst value seen")
    if summary.pulled_in:
        extras.append(f"{summary.pulled_in} of the worst values pulled in to the planner's outlier fence (so "
                      "their predictions are better than what was measured)")
    text = (f"The planner's model ({summary.model}, standardised outcome, ARD {summary.kernel} kernel) refitted to all "
            f"{len(summary.observed)} measured experiments{', with ' + ' and '.join(extras) if extras else ''}, "
            f"as the planner fits them. Leave-one-out RMSE {fmt(rmse)}; "
            f"{covered:.0%} of the observations lie within \u00b1 2 sd of their prediction; "
            f"fitted noise sd {fmt(summary.noise_sd)}.")
    failures = planner_failures_text(data)
    if failures:
        text += f" Failures: {failures}"
    body = paragraph(esc(text)) + figure(loo, (
        "Leave-one-out: each observation predicted from all the others in closed form with the hyperparameters "
        "fitted to all points (no refit per left-out point); bars are \u00b1 2 sd of an observation."))
    if cuts is not None:
        caption = ("Model mean and \u00b1 2 sd (latent function) along each parameter on its own scale, all other "
                   "parameters held at the best experiment (dashed line); grey where the point breaks a constraint. "
                   "A categorical parameter shows the mean \u00b1 2 sd at each of its levels.")
        if data.space.fixed_values:
            caption += f" Fixed parameters have no axis of their own: {fixed_parameters_text(data)}."
        body += figure(cuts, caption)
    return Section("model", "Model", body, tuple(png for png in (loo, cuts) if png is not None))


def importance_figure(importance: dict[str, float], sobol: dict[str, tuple[float, float]]) -> Png:
    """Horizontal bars per parameter, largest lengthscale share on top: the share (fractions summing to 1) and,
    where given, the first- and total-order Sobol indices of the model's mean (clipped to [0, 1])."""
    names = sorted(importance, key=importance.get)
    fig = new_figure(6.5, 0.6 * len(names) + 1.4)
    ax = fig.add_subplot()
    bars = [("lengthscale share", [importance[n] for n in names], COLOURS["line"])]
    if sobol:
        bars += [("Sobol first order", [sobol[n][0] for n in names], COLOURS["optimum"]),
                 ("Sobol total order", [sobol[n][1] for n in names], COLOURS["best"])]
    height = 0.8 / len(bars)
    for k, (label, values, colour) in enumerate(bars):
        y = np.arange(len(names)) + (k - (len(bars) - 1) / 2) * height
        shown = np.clip(values, 0.0, 1.0)
        ax.barh(y, shown, height=height, color=colour, label=label)
        for yi, v in zip(y, shown):
            ax.text(v, yi, f" {v:.0%}", va="center", fontsize=7)
    category_ticks(ax.yaxis, names)
    ax.set_xlim(0, 1.15)
    style_axes(ax, "share of the objective's variation (fraction)", "")
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    return to_png(fig, "importance.png", "parameter importance: lengthscale shares and Sobol indices")


def model_sensitivity(data: ReportData, summary: ModelSummary) -> tuple[dict[str, tuple[float, float]], str]:
    """Sobol indices (first, total) of the model's mean per searched parameter, or empty and why not."""
    if summary.predict is None:
        return {}, "the model cannot be evaluated here, so no Sobol index is computed"
    try:
        return model_sobol_indices(data.space, summary.predict, data.spec.seed), ""
    except (RuntimeError, ValueError) as err:
        return {}, f"the Sobol indices could not be computed: {err}"


def importance_section(data: ReportData, summary: ModelSummary | None, reason: str) -> Section:
    """Section ``importance``: normalised inverse ARD lengthscales (one-hot columns grouped) beside the Sobol
    indices of the model's mean; fixed parameters are listed with their values below the table."""
    if summary is None:
        return Section("importance", "Parameter importance", paragraph(esc(reason), "note"))
    sobol, why_not = model_sensitivity(data, summary)
    png = importance_figure(summary.importance, sobol)
    rows = []
    for p in data.space.searched:
        scales = summary.lengthscales[data.space.columns[p.name]]
        first, total = sobol.get(p.name, (None, None))
        rows.append((p.name, p.type, ", ".join(f"{v:.3g}" for v in scales), f"{summary.importance[p.name]:.1%}",
                     "\u2013" if first is None else f"{first:.2f}", "\u2013" if total is None else f"{total:.2f}"))
    body = figure(png, (
        "Importance of each parameter, two ways. Lengthscale share: the inverse of its ARD lengthscale in unit "
        "coordinates (a short lengthscale means the objective changes fast along it), normalised to sum to 1; a "
        "categorical parameter sums the inverse lengthscales of its one-hot columns. Sobol indices of the model's "
        f"mean over {SOBOL_BASE} x (parameters + 2) scrambled Sobol points (Saltelli's first-order estimator, "
        "Jansen's total-order one): first order is the share of the mean's variance the parameter explains alone, "
        "total order with its interactions. Each parameter is uniform over its bounds in the planner's coordinates "
        "(logarithmic for scale: log, uniform over levels for a categorical one); constraints are not applied, as "
        "the indices need independent inputs."))
    body += table(("parameter", "type", "lengthscale(s) [unit cube]", "lengthscale share", "Sobol first order",
                   "Sobol total order"), rows)
    if why_not:
        body += paragraph(esc(why_not[:1].upper() + why_not[1:] + "."), "note")
    if data.space.fixed_values:
        body += paragraph(esc(f"Fixed parameters are never searched, so they have no importance: "
                              f"{fixed_parameters_text(data)}."), "note")
    return Section("importance", "Parameter importance", body, (png,))
