"""The convergence section: best-so-far against experiment number, with what it is measured against."""

from __future__ import annotations

import numpy as np

from orchestrator.report.baseline import (Baseline, random_search, rmse_scorer, sampled_names, summarise,
                                         uniform_feasible_sampler)
from orchestrator.report.data import ReportData, best_so_far, values_by_sequence
from orchestrator.report.html import Section, esc, figure, fmt, paragraph
from orchestrator.report.plotting import COLOURS, new_figure, style_axes, to_png

N_RANDOM_CAMPAIGNS = 200


def known_optimum(data: ReportData) -> tuple[dict[str, float] | None, str]:
    """The point where the objective is known to be 0, or None and the reason why it is not known.

    Known when a simulator backs the campaign, the objective is a spectral distance to be
    minimised whose target is a ``mixture``, and that mixture is a feasible point of the space
    (a fixed reagent at its fixed value).
    """
    entry = next((a for a in data.spec.analysis if a.objective == data.objective.name), None)
    if data.simulator is None or entry is None or entry.target is None or entry.target.mixture is None:
        return None, "the optimum is not known: that needs a simulation model and a target given as a mixture"
    if data.objective.direction != "minimize" or data.space.categorical:
        return None, ("the optimum is not known: the objective is not a distance to minimise "
                      "or the space has categorical parameters")
    mixture, reagents = entry.target.mixture, set(getattr(data.simulator, "reagents", ()))
    point: dict[str, float] = {}
    for p in data.space.numeric:
        if p.name not in mixture and p.name not in reagents:
            return None, f"the optimum is not known: parameter {p.name!r} is not part of the target mixture"
        point[p.name] = float(mixture.get(p.name, 0.0))
        if not p.bounds[0] <= point[p.name] <= p.bounds[1]:
            return None, f"the target mixture ({p.name} = {point[p.name]:g}) lies outside the search space"
    for p in data.spec.parameters:
        if p.is_fixed and p.is_numeric and (p.name in mixture or p.name in reagents):
            point[p.name] = float(mixture.get(p.name, 0.0))
            if point[p.name] != float(p.value):
                return None, (f"the optimum is not known: the target mixture has {p.name} = {point[p.name]:g}, "
                              f"but the campaign holds it fixed at {float(p.value):g}")
    outside = set(mixture) - set(point)
    if outside or not data.space.is_feasible(point):
        return None, "the target mixture lies outside the search space (it names other reagents or breaks a constraint)"
    return point, ""


def campaign_baseline(data: ReportData) -> tuple[Baseline | None, str]:
    """Random search of the campaign's budget, scored noise-free by the simulator; or None and why not."""
    if data.simulator is None or data.target is None:
        return None, "there is no simulator and target spectrum to score random points with"
    names = sampled_names(data.spec.parameters)
    try:
        sampler = uniform_feasible_sampler(data.spec.parameters, data.space.constraints)
        score = rmse_scorer(data.simulator, names, data.fill_volume_ul(), data.target)
        curves = random_search(sampler, score, data.spec.budget.experiments, data.objective, N_RANDOM_CAMPAIGNS,
                               seed=data.spec.seed)
    except ValueError as err:
        return None, f"random points cannot be drawn or scored: {err}"
    return summarise(curves), ""


def _sobol_end(data: ReportData) -> int:
    """Experiment number (1-based) of the last initial-design (Sobol) experiment, 0 when none."""
    numbers = [i + 1 for i, e in enumerate(data.experiments) if e.proposal_info.get("strategy") == "sobol"]
    return max(numbers, default=0)


def convergence_figure(data: ReportData, baseline: Baseline | None, optimum_known: bool):
    """Best-so-far [objective units] vs experiment number; Sobol region, failures, baseline, optimum."""
    values = values_by_sequence(data)
    x = np.arange(1, len(values) + 1)
    fig = new_figure(9.5, 4.0)
    ax = fig.add_subplot()
    sobol_end = _sobol_end(data)
    if sobol_end:
        ax.axvspan(0.5, sobol_end + 0.5, color=COLOURS["sobol"], label="initial design (Sobol)")
    if baseline is not None:
        xb = np.arange(1, len(baseline.median) + 1)
        ax.fill_between(xb, baseline.q25, baseline.q75, color=COLOURS["baseline"], alpha=0.25, step="post",
                        label=f"random search: interquartile band ({baseline.n_campaigns} runs)")
        ax.plot(xb, baseline.median, color=COLOURS["baseline"], ls="--", drawstyle="steps-post",
                label="random search: median best so far")
    if optimum_known:
        ax.axhline(0.0, color=COLOURS["optimum"], lw=1.5, ls=":", label="known optimum (0)")
    if data.objective.target is not None:
        ax.axhline(data.objective.target, color=COLOURS["optimum"], lw=1.5, ls=":",
                   label=f"target ({data.objective.target:g})")
    ax.scatter(x, values, s=16, color=COLOURS["line"], alpha=0.35, label="measured value")
    ax.plot(x, best_so_far(values, data.objective), color=COLOURS["line"], lw=2, marker="o", ms=3.5,
            drawstyle="steps-post", label="best so far")
    failed = x[[e.status == "failed" for e in data.experiments]]
    if len(failed):
        ax.scatter(failed, np.full(len(failed), 0.03), marker="x", color=COLOURS["failed"], s=40,
                   transform=ax.get_xaxis_transform(), label="failed (no value)", zorder=5)
    ax.set_xlim(0.5, max(len(values), len(baseline.median) if baseline else 0, 1) + 0.5)
    style_axes(ax, "experiment number (proposal order)", f"{data.objective.name} ({data.objective.goal})")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return to_png(fig, "convergence.png", "best objective value so far against experiment number")


def _summary_sentence(data: ReportData, baseline: Baseline | None) -> str:
    values = values_by_sequence(data)
    running = best_so_far(values, data.objective)
    if not len(running) or np.isnan(running[-1]):
        return "No experiment has a measured value yet."
    text = f"After {len(values)} experiments the best {data.objective.name} is {fmt(float(running[-1]))}."
    if baseline is not None:
        i = min(len(values), len(baseline.median)) - 1
        text += (f" Random search reaches a median of {fmt(float(baseline.median[i]))} "
                 f"(interquartile {fmt(float(baseline.q25[i]))}\u2013{fmt(float(baseline.q75[i]))}) "
                 f"after the same number of experiments.")
    return text


def convergence_section(data: ReportData) -> Section:
    """Section ``convergence``: the figure, a one-line summary, and what is or is not compared."""
    if not data.experiments:
        return Section("convergence", "Convergence", paragraph("No experiments have been proposed yet.", "note"))
    optimum, optimum_note = known_optimum(data)
    baseline, baseline_note = campaign_baseline(data)
    png = convergence_figure(data, baseline, optimum is not None)
    caption = ("Best value so far (line) and every measured value (dots) in proposal order; the shaded band "
               "on the left is the Sobol initial design, red crosses are failed experiments.")
    if baseline is not None:
        caption += (f" Grey: best so far of {baseline.n_campaigns} random-search campaigns of the same budget "
                    "(uniform feasible points, scored noise-free by the simulator, seed of the campaign).")
    notes = [n for n in (optimum_note, baseline_note) if n]
    if data.simulator is None:
        notes = ["no simulation model backs this campaign, so neither a known optimum nor a random-search "
                 "baseline (which scores points with the simulator) is drawn"]
    if optimum is not None:
        shown = ", ".join(f"{k} = {v:g}" for k, v in optimum.items())
        notes.insert(0, f"The known optimum (0) is the target mixture: {shown}.")
    body = paragraph(esc(_summary_sentence(data, baseline))) + figure(png, caption)
    body += "".join(paragraph(esc(_capital(n)), "note") for n in notes)
    return Section("convergence", "Convergence", body, (png,))


def _capital(text: str) -> str:
    text = text if text.endswith(".") else text + "."
    return text[:1].upper() + text[1:]
