"""Each campaign's latest HTML report, kept in the store: a report a browser on any PC can open.

A run writes its report into the folder of the PC that ran it (``runs/reports/<key>``); a
worker on the robot's PC is not where a person sits. Kept in the store too, the page is served
over HTTP by ``sdl dashboard`` (``orchestrator.prefect.report_server``) wherever the store is
reachable. The page is self-contained (its figures are data URIs), so one text per campaign.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from orchestrator.store.tables import CampaignReportRow, utcnow


@dataclass(frozen=True)
class StoredReport:
    html: str
    written_at: datetime


class CampaignReports:
    """The report verbs of ``CampaignStore``, mixed in there (they use its ``_tx`` and ``_read`` transactions)."""

    def keep_report(self, campaign_id: int, html: str) -> None:
        """Keep ``html`` as the campaign's report, in place of the one before (the later of two writers wins)."""
        for attempt in range(2):
            try:
                with self._tx() as s:
                    row = s.get(CampaignReportRow, campaign_id, with_for_update=True)
                    if row is None:
                        s.add(CampaignReportRow(campaign_id=campaign_id, html=html, written_at=utcnow()))
                    else:
                        row.html, row.written_at = html, utcnow()
                return
            except IntegrityError:  # another writer kept the first report a moment ago: replace it
                if attempt:
                    raise

    def report(self, campaign_id: int) -> StoredReport | None:
        """The campaign's latest report, or None when no run or ``sdl report`` kept one yet."""
        with self._read() as s:
            row = s.get(CampaignReportRow, campaign_id)
            return StoredReport(row.html, row.written_at) if row is not None else None
