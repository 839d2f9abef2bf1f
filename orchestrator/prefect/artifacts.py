"""What the Prefect dashboard shows of a running campaign, under stable keys per campaign.

- ``<key>-progress``: experiments finished / budget, as a progress bar;
- ``<key>-experiments``: the table of every experiment so far;
- ``<key>-convergence``: the best value after each iteration (a table, and the report's
  convergence figure once the campaign is done);
- ``<key>-report``: a link to the HTML report over HTTP, served by ``sdl dashboard`` from the
  campaign store (written at the end, see ``flows.publish``), and where the PC that ran it wrote it.

Each update is a new version of the same key; the dashboard shows the latest. The dashboard renders
markdown with raw HTML allowed, so every text from a file or a person enters it through ``markdown_text``.
"""

from __future__ import annotations

import base64
import re
import string
import time
import unicodedata
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact, create_progress_artifact, create_table_artifact, update_progress_artifact,
)

from orchestrator.prefect.report_server import report_url, reports_base_url
from orchestrator.run.best import best_measured
from orchestrator.run.campaign import Campaign
from orchestrator.store.campaign_store import TERMINAL, CampaignInfo
from orchestrator.store.export import experiment_rows


#: CommonMark lets any ASCII punctuation mark be escaped with a backslash, and every markdown or HTML
#: construct (a link, an image, emphasis, a tag, an entity, a table column, an autolink) starts with one
_MARKDOWN_PUNCTUATION = frozenset(string.punctuation)
#: line and paragraph separators and control characters: a line break would end a table row or start a block
_BREAKS = ("Cc", "Zl", "Zp")


def markdown_text(value: Any) -> str:
    """``str(value)`` as literal text inside markdown (a paragraph or a table cell): it shows as typed.

    Every ASCII punctuation mark is backslash-escaped, so a note or an edited value never becomes a link,
    an image, HTML or an extra table column; line breaks and other control characters become spaces.
    """
    return "".join(" " if unicodedata.category(ch) in _BREAKS else "\\" + ch if ch in _MARKDOWN_PUNCTUATION else ch
                   for ch in str(value))


def artifact_key(campaign: CampaignInfo) -> str:
    """The key of a campaign's artifacts: its ``CampaignInfo.key`` (name and uid start, so a campaign of the same
    name in another store keeps its own), as Prefect takes keys: lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", campaign.key.lower()).strip("-") or "campaign"


def report_markdown(campaign: CampaignInfo, path: Path, api_url: str | None) -> str:
    """The report artifact: a link a browser on any PC opens (``report_server``), never a ``file://`` one (browsers
    refuse those from an http page); the page's path on the PC that ran the campaign as plain text."""
    written = f"Written on the PC that ran it to {markdown_text(path)}"
    base = reports_base_url(api_url)
    if base is None:
        return (f"Report of {markdown_text(campaign.name)}: kept in the campaign store; open it with "
                f"sdl dashboard \\-\\-store URL.\n\n{written}")
    # a campaign's name is a slug (letters, digits, _ . -), safe as it is: the dashboard shows a link's text raw,
    # a backslash escape or a code span's backticks included
    return (f"[Report of {campaign.name}]({report_url(base, campaign)}) (served by sdl dashboard from "
            f"the campaign store)\n\n{written}")


#: the dashboard is refreshed at most this often [s]: a lab iteration takes minutes, so each
#: one shows; an instant dry run does not pay three API calls per few-millisecond iteration
MIN_INTERVAL_S = 10.0


class LiveArtifacts:
    """Keeps a campaign's dashboard artifacts up to date; call ``update`` after each iteration."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign, self.key = campaign, artifact_key(campaign.info)
        self._progress_id: UUID | None = None
        self._last = -MIN_INTERVAL_S

    def update(self, force: bool = False) -> None:
        """Refresh every artifact, unless the last refresh was under ``MIN_INTERVAL_S`` ago."""
        now = time.monotonic()
        if not force and now - self._last < MIN_INTERVAL_S:
            return
        self._last = now
        campaign = self.campaign
        experiments = campaign.experiments()
        finished = sum(e.status in TERMINAL and e.status != "abandoned" for e in experiments)
        percent = 100.0 * finished / campaign.spec.budget.experiments
        name, objective = markdown_text(campaign.spec.name), markdown_text(campaign.spec.objectives[0].name)
        if self._progress_id is None:
            self._progress_id = create_progress_artifact(
                percent, key=f"{self.key}-progress", description=f"experiments finished of {name}")
        else:
            update_progress_artifact(self._progress_id, percent)
        columns, rows = experiment_rows(campaign.store, campaign.info)
        create_table_artifact(key=f"{self.key}-experiments", table=[{c: r[c] for c in columns} for r in rows],
                              description=f"Every experiment of campaign {name}")
        create_markdown_artifact(key=f"{self.key}-convergence", markdown=self.convergence_markdown(),
                                 description=f"Best {objective} after each iteration")

    def convergence_markdown(self, figure: Path | None = None) -> str:
        """Best-so-far per iteration as a markdown table; with ``figure`` (a PNG), the figure above it."""
        objective = self.campaign.spec.objectives[0]
        experiments = self.campaign.experiments()
        lines = []
        if figure is not None and figure.exists():
            encoded = base64.b64encode(figure.read_bytes()).decode()
            lines += [f"![convergence of {markdown_text(self.campaign.spec.name)}](data:image/png;base64,{encoded})", ""]
        lines += [f"| iteration | measured | best {markdown_text(objective.name)} |", "|---|---|---|"]
        outcome_constraints = self.campaign.spec.parsed_outcome_constraints()
        for iteration in sorted({e.iteration for e in experiments}):
            so_far = [e for e in experiments if e.iteration <= iteration]
            best = best_measured(so_far, objective, outcome_constraints)
            measured = sum(e.status == "measured" for e in so_far)
            lines.append(f"| {iteration} | {measured} | {best.values[objective.name]:.4g} |" if best
                         else f"| {iteration} | {measured} | - |")
        return "\n".join(lines)
