"""``build_report``: one campaign as a self-contained HTML page, with its figures as PNG files beside it."""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import OrchestratorError
from orchestrator.report.deck_map import deck_section
from orchestrator.report.campaign_sections import failures_section, proposals_section, summary_section, timing_section
from orchestrator.report.convergence import convergence_section
from orchestrator.report.data import load_report_data
from orchestrator.report.html import Section, esc, page
from orchestrator.report.hybrid import hybrid_section
from orchestrator.report.insight_sections import effects_section, optimum_section, surface_section
from orchestrator.report.model_sections import importance_section, model_or_reason, model_section
from orchestrator.report.pareto import pareto_section
from orchestrator.report.plate_map import plate_map_section
from orchestrator.report.samples import parameter_section, spectra_section
from orchestrator.spec.schema import CampaignSpec
from orchestrator.store.campaign_store import CampaignStore

#: section ids in the order the page shows them
SECTION_IDS = ("summary", "convergence", "parameter-space", "model", "optimum", "surface", "importance", "effects",
               "hybrid", "pareto", "spectra", "plate-map", "failures", "timing", "deck", "proposals")


def build_sections(store: CampaignStore, campaign_name: str,
                   spec: CampaignSpec | None = None) -> tuple[str, list[Section]]:
    """The page subtitle (HTML) and every section of campaign ``campaign_name``, in ``SECTION_IDS`` order.

    ``spec``: its stored file, already parsed (None: parsed here).
    """
    data = load_report_data(store, campaign_name, spec)
    summary, reason = model_or_reason(data)
    sections = [
        summary_section(data), convergence_section(data), parameter_section(data),
        model_section(data, summary, reason), optimum_section(data, summary, reason),
        surface_section(data, summary, reason), importance_section(data, summary, reason),
        effects_section(data, summary, reason), hybrid_section(data), pareto_section(data),
        spectra_section(data), plate_map_section(data), failures_section(data), timing_section(data), deck_section(data),
        proposals_section(data),
    ]
    subtitle = f'<p class="note">Campaign report \u00b7 {esc(data.info.status)} \u00b7 store {esc(store.display)}</p>'
    return subtitle, sections


def build_report(store: CampaignStore, campaign_name: str, out_dir: Path, spec: CampaignSpec | None = None) -> Path:
    """Write ``index.html`` (figures embedded as data URIs) and each figure's PNG into ``out_dir``.

    Returns the path of ``index.html``. Raises ``StoreError`` when the store has no campaign
    ``campaign_name`` (before anything is written), ``OrchestratorError`` when ``out_dir``
    cannot be written. ``spec``: the campaign's stored file, already parsed (None: parsed here).
    """
    subtitle, sections = build_sections(store, campaign_name, spec)
    out_dir = Path(out_dir)
    index = out_dir / "index.html"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for section in sections:
            for png in section.figures:
                (out_dir / png.name).write_bytes(png.data)
        index.write_text(page(f"Campaign {campaign_name}", subtitle, sections), encoding="utf-8")
    except OSError as err:
        raise OrchestratorError(f"cannot write the report to {out_dir}: {err.strerror or err}",
                                hint="pass --output DIR with a folder you can write to") from None
    return index
