"""The record sections: campaign summary, failures, step timings and every proposal's reasons."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any

import numpy as np

from orchestrator.report.data import ReportData
from orchestrator.report.html import Png, Section, esc, figure, fmt, paragraph, table
from orchestrator.report.plotting import COLOURS, STEP_GROUPS, category_ticks, new_figure, style_axes, to_png
from orchestrator.spec.parameters import Parameter


def param_value(p: Parameter, value: Any) -> str:
    """A parameter value as text: continuous ones to about 4 digits of their range, with the unit."""
    if p.type == "continuous":
        lo, hi = p.bounds
        decimals = max(0, 3 - math.floor(math.log10(hi - lo)))
        text = f"{float(value):.{decimals}f}"
    else:
        text = str(value)
    return f"{text}\u00a0{p.unit}" if p.unit and p.is_numeric else text


def _params_text(data: ReportData, params: dict[str, Any]) -> str:
    shown = [p for p in data.spec.parameters if p.name in params]
    return ", ".join(f"{p.name}\u00a0{param_value(p, params[p.name])}" for p in shown)


def fixed_parameters_text(data: ReportData) -> str:
    """The fixed parameters with their values, e.g. ``"blue 22 uL"`` (no-break spaces); empty when there are none."""
    return _params_text(data, data.space.fixed_values)


def summary_section(data: ReportData) -> Section:
    """Section ``summary``: identity, counts, best experiment, spec hash, versions, the YAML."""
    info, spec, best = data.info, data.spec, data.best()
    count = Counter(e.status for e in data.experiments)
    best_text = "none yet" if best is None else (
        f"experiment {best.id} (iteration {best.iteration}): {_params_text(data, best.params)} \u2192 "
        f"{data.objective.name} {fmt(best.values[data.objective.name])}")
    facts = [
        ("description", info.description.strip() or "\u2013"),
        ("status", info.status),
        ("experiments", f"{count['measured']} measured, {count['failed']} failed, {count['abandoned']} abandoned, "
                        f"{len(data.experiments)} proposed of a budget of {spec.budget.experiments} "
                        f"(batches of {spec.budget.batch_size})"),
        *([("fixed parameters", fixed_parameters_text(data))] if data.space.fixed_values else []),
        ("objective", f"{data.objective.name} ({data.objective.goal})"),
        ("best experiment", best_text),
        ("spec sha256", info.spec_hash),
        ("store", data.store.display),
        ("created", info.created_at.isoformat(timespec="seconds") if info.created_at else "\u2013"),
        ("report generated", datetime.now(timezone.utc).isoformat(timespec="seconds")),
    ]
    versions = sorted(info.versions.items())
    body = table(None, facts, "facts wide")
    body += '<div class="columns"><div><h3>Package versions</h3>'
    body += table(("package", "version"), versions) if versions else paragraph("No versions were recorded.", "note")
    body += f'</div><div class="grow"><h3>Campaign file</h3><pre class="spec">{esc(info.spec_yaml)}</pre></div></div>'
    return Section("summary", "Campaign", body)


def failure_cause(reason: str | None) -> str:
    """The cause a failure is grouped by: the reason's text before its first ``": "``."""
    text = (reason or "no reason recorded").strip()
    return text.split(": ", 1)[0]


def failures_figure(groups: dict[str, list]) -> Png:
    """Horizontal bars: number of failed experiments per cause."""
    causes = sorted(groups, key=lambda c: len(groups[c]))
    fig = new_figure(6.5, 0.38 * len(causes) + 1.0)
    ax = fig.add_subplot()
    ax.barh(range(len(causes)), [len(groups[c]) for c in causes], color=COLOURS["failed"], height=0.55)
    category_ticks(ax.yaxis, causes)  # a reason's text as written, "$" and all
    ax.xaxis.get_major_locator().set_params(integer=True)
    style_axes(ax, "failed experiments", "")
    return to_png(fig, "failures.png", "failed experiments by cause")


def failures_section(data: ReportData) -> Section:
    """Section ``failures``: failed experiments grouped by cause (table and bars)."""
    failed = data.failed
    if not failed:
        text = "No failures: every finished experiment was measured."
        return Section("failures", "Failures", paragraph(text, "note"))
    groups: dict[str, list] = defaultdict(list)
    for e in failed:
        groups[failure_cause(e.failure_reason)].append(e)
    rows = [(cause, len(es), ", ".join(str(e.id) for e in es), es[0].failure_reason)
            for cause, es in sorted(groups.items(), key=lambda kv: -len(kv[1]))]
    png = failures_figure(groups)
    body = paragraph(esc(f"{len(failed)} of {len(data.experiments)} experiments failed; failed experiments "
                         "never reach the planner."))
    body += table(("cause", "count", "experiment ids", "reason (first)"), rows)
    body += figure(png, "Failed experiments per cause (the text of the reason before its first colon).")
    return Section("failures", "Failures", body, (png,))


def timing_table(data: ReportData) -> tuple[list[int], np.ndarray]:
    """Iterations (sorted) and seconds per step group, shape ``(n_iterations, len(STEP_GROUPS))``."""
    by_iteration: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(len(STEP_GROUPS)))
    for detail in data.timings:
        row = by_iteration[int(detail.get("iteration", 0))]
        for j, (_, keys, _) in enumerate(STEP_GROUPS):
            row[j] += sum(float(detail.get(k) or 0.0) for k in keys)
    iterations = sorted(by_iteration)
    return iterations, np.array([by_iteration[i] for i in iterations]).reshape(len(iterations), len(STEP_GROUPS))


def timing_figure(iterations: list[int], seconds: np.ndarray) -> Png:
    """Stacked bars of seconds per step (shape ``(n_iterations, n_groups)``) for each iteration."""
    fig = new_figure(8.5, 3.8)
    ax = fig.add_subplot()
    x = np.arange(len(iterations))
    bottom = np.zeros(len(iterations))
    for j, (label, _, colour) in enumerate(STEP_GROUPS):
        ax.bar(x, seconds[:, j], bottom=bottom, color=colour, label=label, width=0.65)
        bottom += seconds[:, j]
    ax.set_xticks(x, [str(i) for i in iterations])
    style_axes(ax, "iteration", "wall time [s]")
    ax.legend(fontsize=8, ncols=len(STEP_GROUPS), loc="upper center", bbox_to_anchor=(0.5, 1.15), frameon=False)
    return to_png(fig, "timing.png", "time per step for each iteration")


def timing_section(data: ReportData) -> Section:
    """Section ``timing``: where the wall time of each iteration went."""
    if not data.timings:
        return Section("timing", "Time per step", paragraph(
            "No step timings are stored for this campaign (they are recorded by the closed loop, "
            "not by ask/tell, and only by versions that record them).", "note"))
    iterations, seconds = timing_table(data)
    png = timing_figure(iterations, seconds)
    headers = ["iteration", *(label + " [s]" for label, _, _ in STEP_GROUPS), "total [s]"]
    rows = [(i, *(f"{v:.3f}" for v in row), f"{row.sum():.3f}") for i, row in zip(iterations, seconds)]
    rows.append(("all", *(f"{v:.3f}" for v in seconds.sum(axis=0)), f"{seconds.sum():.3f}"))
    caption = ("Wall time of each iteration by step: planner = propose, robot = plan check and liquid handler run, "
               "spectrometer = reading the wells, analysis + record = objective values and the store, overhead = "
               "the rest of the iteration.")
    return Section("timing", "Time per step", figure(png, caption) + table(headers, rows), (png,))


def _proposal_row(data: ReportData, e) -> tuple:
    info = e.proposal_info
    strategy = info.get("strategy", "\u2013")
    if strategy == "sobol" and "design_index" in info:
        strategy = f"sobol (design point {info['design_index']})"
    mean, sd = info.get("predicted_mean"), info.get("predicted_sd")
    predicted = f"{fmt(mean)} \u00b1 {fmt(sd)}" if mean is not None and sd is not None else None
    if e.status == "measured":
        outcome = fmt(e.values[data.objective.name])
    else:
        outcome = e.status + (f": {e.failure_reason}" if e.failure_reason else "")
    return (e.id, e.iteration, strategy, _params_text(data, e.proposed_params), predicted,
            info.get("acquisition_value"), info.get("n_observations"), outcome)


def proposals_section(data: ReportData) -> Section:
    """Section ``proposals``: why each point was proposed, and what it gave."""
    if not data.experiments:
        return Section("proposals", "Proposals", paragraph("No experiments have been proposed yet.", "note"))
    name = data.objective.name
    headers = ("id", "iteration", "strategy", "proposed parameters", f"predicted {name} (mean \u00b1 sd)",
               "acquisition value (log EI)", "observations seen", f"measured {name}")
    rows = [_proposal_row(data, e) for e in data.experiments]
    text = ("Every proposal and how it was chosen: Sobol points come from the seeded initial design; "
            "qLogEI points maximise the log expected improvement over the best predicted value so far, qLogNEI "
            "points the log noisy expected improvement (used when failures or outcome constraints weigh in), of "
            "the model fitted to the observations seen; both carry its prediction at the point. The acquisition "
            "value is that of the whole batch.")
    return Section("proposals", "Proposals", paragraph(esc(text)) + table(headers, rows, "wide"))
