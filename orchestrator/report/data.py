"""Everything the report shows, read once from the store: campaign, spec, experiments, timings.

The simulator and the target spectrum are rebuilt from the stored campaign YAML, the way
``orchestrator.run.steps.make_runner`` builds them for a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.run.spectra_analysis import SpectralTarget, build_target
from orchestrator.run.best import best_measured
from orchestrator.errors import OrchestratorError
from orchestrator.planning.space import SearchSpace
from orchestrator.spec.schema import CampaignSpec
from orchestrator.spec.sections import Objective
from orchestrator.spec.loader import parse_spec
from orchestrator.store.campaign_store import CampaignInfo, CampaignStore, Experiment
from instruments.spectrometers.twin import cuvette_model
from simulators.model import SimulatorModel


@dataclass
class ReportData:
    """One campaign as the report sees it.

    ``experiments`` are in proposal order (``sequence``); ``timings`` are the ``detail``
    dicts of the campaign's ``timing`` events (seconds per step, see ``CampaignRunner``).
    ``simulator`` and ``target`` are None when the spec has none (``target_note`` says why).
    """

    store: CampaignStore
    info: CampaignInfo
    spec: CampaignSpec
    experiments: list[Experiment]
    timings: list[dict[str, Any]]
    space: SearchSpace
    simulator: SimulatorModel | None = None
    target: SpectralTarget | None = None
    target_note: str = ""
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def objective(self) -> Objective:
        return self.spec.objectives[0]

    @property
    def measured(self) -> list[Experiment]:
        return [e for e in self.experiments if e.status == "measured"]

    @property
    def failed(self) -> list[Experiment]:
        return [e for e in self.experiments if e.status == "failed"]

    def values(self, experiments: list[Experiment] | None = None) -> np.ndarray:
        """Objective values of measured ``experiments`` (default: all measured), shape ``(n,)``."""
        chosen = self.measured if experiments is None else experiments
        return np.array([e.values[self.objective.name] for e in chosen], dtype=float)

    def best(self) -> Experiment | None:
        """The measured experiment with the best objective value (meeting the outcome constraints while any
        does), or None before any."""
        return best_measured(self.experiments, self.objective, self.spec.parsed_outcome_constraints())

    def fill_volume_ul(self) -> float:
        """Well volume [uL] that spectra are computed for (1.0 without a liquid handler, as the target)."""
        return self.spec.instruments.liquid_handler.fill_volume_ul if self.spec.instruments else 1.0


def load_report_data(store: CampaignStore, campaign_name: str, spec: CampaignSpec | None = None) -> ReportData:
    """Read campaign ``campaign_name``; raises ``StoreError`` when the store has no such campaign.

    ``spec``: its stored file, already parsed (a run's own spec: its simulator is not built again); None: parsed here.
    """
    info = store.get_campaign(campaign_name)
    spec = spec or parse_spec(info.spec_yaml, source=f"stored spec of {info.name}")
    timings = [dict(e["detail"]) for e in store.events(info.id) if e["kind"] == "timing"]
    data = ReportData(store, info, spec, store.experiments(info.id), timings,
                      SearchSpace(spec.parameters, spec.parsed_constraints()))
    data.simulator, data.target, data.target_note = _simulator_and_target(spec)
    return data


def _simulator_and_target(spec: CampaignSpec) -> tuple[SimulatorModel | None, SpectralTarget | None, str]:
    """The spec's simulator model and the target spectrum of its objective, or a note saying why not.

    A CSV target is looked up relative to the current directory: the store keeps the
    campaign text, not where its file was.
    """
    model = None
    if spec.simulation is not None:
        try:  # read through a cuvette's light path when the dry run did (``make_runner``'s targets do)
            model = cuvette_model(spec.simulation_model, getattr(spec.instruments.spectrometer, "cuvette", None)
                                  if spec.instruments is not None else None)
        except (KeyError, TypeError, ValueError) as err:
            return None, None, f"the simulator could not be built ({err})"
    entry = next((a for a in spec.analysis if a.objective == spec.objectives[0].name), None)
    if entry is None:
        return model, None, "the campaign file has no analysis entry (so no target spectrum) for its objective"
    try:
        target = build_target(entry, spec, Path.cwd(), model)
    except OrchestratorError as err:
        problems = "; ".join(getattr(err, "problems", [err.message]))
        return model, None, f"the target spectrum is not available: {problems}"
    if not isinstance(target, SpectralTarget):
        return model, None, f"the objective is a {entry.kind} analysis, which has no target spectrum"
    return model, target, ""


def objective_scores(values: np.ndarray, objective: Objective) -> np.ndarray:
    """``objective.score`` of every entry of ``values`` (any shape): higher is better, NaN stays NaN."""
    values = np.asarray(values, dtype=float)
    if objective.target is not None:
        return -np.abs(values - objective.target)
    return values if objective.direction == "maximize" else -values


def best_so_far(values: np.ndarray, objective: Objective) -> np.ndarray:
    """Running best of ``values`` along the last axis (shape ``(..., n)``, NaN where no value).

    Best by ``objective``: its direction, or nearest its target. Returns the same shape: the
    value of the best experiment among ``0..i`` (its own value, not a distance), NaN until
    the first value.
    """
    values = np.asarray(values, dtype=float)
    if values.shape[-1] == 0:
        return values.copy()
    scores = np.nan_to_num(objective_scores(values, objective), nan=-np.inf)
    running = np.maximum.accumulate(scores, axis=-1)
    before = np.concatenate([np.full(values.shape[:-1] + (1,), -np.inf), running[..., :-1]], axis=-1)
    positions = np.broadcast_to(np.arange(values.shape[-1]), values.shape)
    # a tie keeps the earlier experiment: only a strictly better score takes over
    best_at = np.maximum.accumulate(np.where(scores > before, positions, 0), axis=-1)
    best = np.take_along_axis(values, best_at, axis=-1)
    return np.where(np.isneginf(running), np.nan, best)


def values_by_sequence(data: ReportData) -> np.ndarray:
    """Objective value of every experiment in proposal order, NaN where not measured; shape ``(n,)``."""
    name = data.objective.name
    return np.array([e.values[name] if e.status == "measured" else np.nan for e in data.experiments], dtype=float)
