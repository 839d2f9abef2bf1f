"""Holding a campaign's runner lease for as long as a run lasts (see ``orchestrator.store.lease``)."""

from __future__ import annotations

import threading
from types import TracebackType

from orchestrator.store.campaign_store import CampaignStore
from orchestrator.store.lease import RENEW_S, Holder, Lease


class HeldCampaign:
    """``with HeldCampaign(store, campaign_id, name) as held:`` this process is the campaign's one runner.

    Entering takes the lease (``CampaignBusyError`` when a live runner holds it); a background
    thread renews it every ``renew_s`` seconds; leaving gives it back. ``held.token`` goes with
    every dispatch (``CampaignStore.mark_dispatched``), which refuses once the lease was lost.
    """

    def __init__(self, store: CampaignStore, campaign_id: int, campaign: str, renew_s: float = RENEW_S) -> None:
        self.store, self.campaign_id, self.campaign, self.renew_s = store, campaign_id, campaign, renew_s
        self.holder = Holder.this_process()
        self.lease: Lease | None = None
        self.lost = False  # set when a renewal found the lease taken by another runner
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name=f"sdl-lease-{campaign}", daemon=True)

    @property
    def token(self) -> str:
        return self.holder.token

    def __enter__(self) -> "HeldCampaign":
        self.lease = self.store.take_lease(self.campaign_id, self.campaign, self.holder)
        self._renewer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._renewer.join(timeout=5)
        try:
            self.store.give_back_lease(self.campaign_id, self.token)
        except Exception:  # e.g. a full disk: the error that ended the run is the one to report; the lease lapses
            if error is None:
                raise

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                if not self.store.renew_lease(self.campaign_id, self.token):
                    self.lost = True
                    return
            except Exception:  # a store that is briefly unreachable: the next renewal tries again
                continue
