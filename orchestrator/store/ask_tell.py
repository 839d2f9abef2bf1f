"""The store's verbs for a campaign driven from Python: measurements made elsewhere, and its end.

``add_measured`` records experiments a lab already made (``Campaign.add``) as ``measured`` in one
transaction, each with an ``added`` event that holds its parameters and values, so that the event
log alone still rebuilds what the planner saw (``sdl replay``). Their ``proposal_info`` says
``{"source": "added", "uses_budget": ...}``: by default they take no place in the budget, which
counts the experiments the campaign itself makes (``uses_budget``).

``complete_campaign`` marks an ask/tell campaign ``completed`` once its budget is spent (the closed
loop's flow marks its own campaigns).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from sqlalchemy import select, update

from orchestrator.errors import CampaignStateError
from orchestrator.store.tables import CampaignRow, EventRow, ExperimentRow, utcnow

#: the event kind, and the ``proposal_info["source"]``, of an experiment made outside the campaign
ADDED = "added"
#: campaign statuses ``complete_campaign`` leaves alone: already done, or a runner's flow owns the status
_NOT_COMPLETED_HERE = ("completed", "running")


def uses_budget(status: str, proposal_info: Mapping[str, Any] | None) -> bool:
    """Whether an experiment takes a place in the budget: every one the campaign made or will make (an abandoned
    one was never made), and an added one only when it was added with ``uses_budget=True``."""
    return status != "abandoned" and bool((proposal_info or {}).get("uses_budget", True))


def added_info(counts_toward_budget: bool) -> dict[str, Any]:
    """The ``proposal_info`` of an added experiment."""
    return {"source": ADDED, "uses_budget": counts_toward_budget}


class AskTellVerbs:
    """Verbs of ``CampaignStore``, mixed in there (they use its ``_tx`` transactions)."""

    def add_measured(self, campaign_id: int, rows: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]],
                     counts_toward_budget: bool = False, budget: int | None = None) -> list[int]:
        """Experiments made outside the campaign, (params, values) each, recorded ``measured``: one transaction,
        all or none. Their ids, in order.

        They take iteration 0 (no batch of the campaign made them). ``budget``: with
        ``counts_toward_budget``, the most experiments the campaign may hold; rows that would pass it
        are refused, nothing added.
        """
        info = added_info(counts_toward_budget)
        with self._tx() as s:
            # PostgreSQL: the campaign's row lock queues this behind a batch being added (SQLite: BEGIN IMMEDIATE)
            name = s.execute(select(CampaignRow.name).where(CampaignRow.id == campaign_id).with_for_update()).scalar()
            held = s.execute(select(ExperimentRow.status, ExperimentRow.proposal_info)
                             .where(ExperimentRow.campaign_id == campaign_id)).all()
            if counts_toward_budget and budget is not None:
                used = sum(uses_budget(status, proposal_info) for status, proposal_info in held)
                if used + len(rows) > budget:
                    raise CampaignStateError(
                        f"campaign {name!r} has budget for {budget - used} more experiment(s); {len(rows)} added "
                        "measurement(s) would pass it, nothing was added",
                        hint="add them with counts_toward_budget=False, or add fewer")
            now = utcnow()
            made = [ExperimentRow(campaign_id=campaign_id, sequence=len(held) + i, iteration=0, status="measured",
                                  proposed_params=dict(params), params=dict(params),
                                  objective_values={k: float(v) for k, v in values.items()},
                                  proposal_info=dict(info), created_at=now, finished_at=now)
                    for i, (params, values) in enumerate(rows)]
            s.add_all(made)
            s.flush()
            s.add_all(EventRow(campaign_id=campaign_id, experiment_id=r.id, kind=ADDED,
                               detail={"params": r.params, "values": r.objective_values, **info}) for r in made)
            return [r.id for r in made]

    def complete_campaign(self, campaign_id: int, **detail: Any) -> bool:
        """Mark the campaign ``completed`` (with a ``campaign_completed`` event holding ``detail``) unless it
        already is or a runner's flow holds it ``running``; whether this call did. One conditional update:
        of two processes that finish the last experiments at once, one marks it."""
        with self._tx() as s:
            moved = s.execute(update(CampaignRow)
                              .where(CampaignRow.id == campaign_id, CampaignRow.status.not_in(_NOT_COMPLETED_HERE))
                              .values(status="completed", updated_at=utcnow())
                              .execution_options(synchronize_session=False)).rowcount
            if moved == 1:
                s.add(EventRow(campaign_id=campaign_id, kind="campaign_completed", detail=dict(detail)))
            return moved == 1
