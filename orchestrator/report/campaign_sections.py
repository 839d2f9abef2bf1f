"""The record sections: campaign summary, failures, step timings and every proposal's reasons."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any

import numpy as np

from orchestrator.report.data import ReportData
from orchestrator.run.campaign import planner_inputs
from orchestrator.report.html import Png, Section, esc, figure, fmt, paragraph, table
from orchestrator.report.plotting import COLOURS, STEP_GROUPS, category_ticks, new_figure, style_axes, to_png
from orchestrator.spec.parameters import Parameter
from instruments.errors import InstrumentError
from instruments.registry import ROLES, resolve_driver


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
        f"experiment {best.number} (iteration {best.iteration}): {_params_text(data, best.params)} \u2192 "
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


#: a well label inside a failure reason, e.g. "A1" or "H12"
_WELL = re.compile(r"\b[A-P]\d{1,2}\b")
#: a number standing on its own between spaces, e.g. "3.2" in "3.2 AU" (not the 2 of "x^2")
_NUMBER = re.compile(r"(?<!\S)[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\S)")


def failure_cause(reason: str | None, reporters: set[str] = frozenset()) -> str:
    """The cause a failure is grouped by: its reason without the name of whoever reported it, cut before its
    first ``": "`` (the detail after it differs from well to well), wells and numbers replaced by ``#``.

    ``reporters``: names that may lead a reason (``"<name>: <message>"``), the instruments' drivers and the
    objectives (``reporter_names``): dropped, so the same fault of two instruments counts as one cause.
    """
    text = (reason or "no reason recorded").strip()
    head, sep, rest = text.partition(": ")
    if sep and rest.strip() and head in reporters:
        text = rest.strip()
    cause = text.split(": ", 1)[0]
    return _NUMBER.sub("#", _WELL.sub("#", cause))


def reporter_names(data: ReportData) -> set[str]:
    """Names that lead a failure reason: each instrument's driver and its twin (an instrument is named by the
    driver that ran) and each objective (an analysis that failed names its objective)."""
    names = {o.name for o in data.spec.objectives}
    instruments = data.spec.instruments
    for role in (ROLES if instruments is not None else ()):
        driver = getattr(getattr(instruments, role, None), "driver", None)
        if isinstance(driver, str):
            names.add(driver)
            try:
                names.add(resolve_driver(driver, role, dry_run=True).name)
            except InstrumentError:  # a plugin gone since the run: its own name is still known
                pass
    return names


def failure_groups(failed: list, reporters: set[str] = frozenset()) -> dict[tuple[str, str], list]:
    """Failed experiments by (failure kind, ``failure_cause``), largest group first; a failure stored before
    failure kinds existed counts as chemistry, as the planner counts it."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for e in failed:
        groups[(e.failure_kind or "chemistry", failure_cause(e.failure_reason, reporters))].append(e)
    return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))


def planner_failures_text(data: ReportData) -> str:
    """What the planner makes of the failures, from the inputs it is given (``planner_inputs``): chemistry
    failures enter the objective's model at the worst value measured and the feasibility model; instrument
    failures reach neither. Empty when nothing failed."""
    chemistry = len(planner_inputs(data.experiments, {}).failed)
    instrument = len(data.failed) - chemistry
    parts = []
    if chemistry:
        parts.append(f"{chemistry} chemistry failure(s) (the sample itself) reach the planner: each enters its model "
                     "of the objective at the worst value measured so far, and its model of where experiments fail")
    if instrument:
        parts.append(f"{instrument} instrument failure(s) (a reading the sample is not to blame for) never reach "
                     "the planner")
    return "; ".join(parts) + "." if parts else ""


def failures_figure(groups: dict[tuple[str, str], list]) -> Png:
    """Horizontal bars: number of failed experiments per (kind, cause)."""
    keys = sorted(groups, key=lambda k: len(groups[k]))
    fig = new_figure(6.5, 0.38 * len(keys) + 1.0)
    ax = fig.add_subplot()
    colours = [COLOURS["failed"] if kind == "chemistry" else COLOURS["baseline"] for kind, _ in keys]
    ax.barh(range(len(keys)), [len(groups[k]) for k in keys], color=colours, height=0.55)
    category_ticks(ax.yaxis, [cause for _, cause in keys])  # a reason's text as written, "$" and all
    ax.xaxis.get_major_locator().set_params(integer=True)
    style_axes(ax, "failed experiments", "")
    return to_png(fig, "failures.png", "failed experiments by cause")


def failures_section(data: ReportData) -> Section:
    """Section ``failures``: failed experiments grouped by kind and cause (table and bars), and what the planner
    makes of them."""
    failed = data.failed
    if not failed:
        text = "No failures: every finished experiment was measured."
        return Section("failures", "Failures", paragraph(text, "note"))
    groups = failure_groups(failed, reporter_names(data))
    rows = [(kind, cause, len(es), ", ".join(str(e.number) for e in es), es[0].failure_reason)
            for (kind, cause), es in groups.items()]
    png = failures_figure(groups)
    body = paragraph(esc(f"{len(failed)} of {len(data.experiments)} experiments failed. "
                         f"{planner_failures_text(data)}"))
    body += table(("kind", "cause", "count", "experiments", "reason (first)"), rows)
    body += figure(png, "Failed experiments per cause: red chemistry, grey instrument. A cause is the reason "
                        "without the name of the instrument that reported it, up to its first colon, with wells "
                        "and numbers as #.")
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
    return (e.number, e.iteration, strategy, _params_text(data, e.proposed_params), predicted,
            info.get("acquisition_value"), info.get("n_observations"), outcome)


def proposals_section(data: ReportData) -> Section:
    """Section ``proposals``: why each point was proposed, and what it gave."""
    if not data.experiments:
        return Section("proposals", "Proposals", paragraph("No experiments have been proposed yet.", "note"))
    name = data.objective.name
    headers = ("experiment", "iteration", "strategy", "proposed parameters", f"predicted {name} (mean \u00b1 sd)",
               "acquisition value (log EI)", "observations seen", f"measured {name}")
    rows = [_proposal_row(data, e) for e in data.experiments]
    text = ("Every proposal and how it was chosen: Sobol points come from the seeded initial design; "
            "qLogEI points maximise the log expected improvement over the best predicted value so far, qLogNEI "
            "points the log noisy expected improvement (used when failures or outcome constraints weigh in), of "
            "the model fitted to the observations seen; both carry its prediction at the point. The acquisition "
            "value is that of the whole batch.")
    return Section("proposals", "Proposals", paragraph(esc(text)) + table(headers, rows, "wide"))
