"""One runner per campaign: a lease in the store that a runner takes, renews and gives back.

Two ``sdl run`` (or ``sdl resume``) of one campaign on one store would propose the same points
and dispatch them twice. The lease makes the second one wait for nothing: it is refused at once,
in one line naming the runner that holds the campaign (host, pid, since when). The lease lives in
the store, not in Prefect, so it holds whatever the Prefect and ``lock:`` settings are.

A runner renews its lease every ``RENEW_S`` seconds and the store checks it again in the
transaction that dispatches a batch (``CampaignStore.mark_dispatched``), so a runner that lost it
never moves anything. A runner that died stops renewing: its lease lapses after ``LEASE_S``
seconds, or at once when the next runner is on the same host and finds the holder's process gone.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from orchestrator.errors import CampaignStateError
from orchestrator.store.tables import RunnerLeaseRow, utcnow

#: how long a lease holds without renewal [s]
LEASE_S = 60.0
#: how often a runner renews its lease [s]
RENEW_S = 15.0


class CampaignBusyError(CampaignStateError):
    """Another live runner holds the campaign."""


class LeaseLostError(CampaignStateError):
    """This runner's lease lapsed and another runner took the campaign: nothing more may be dispatched."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or asks for) a campaign: ``token`` is unique per runner; ``process`` tells a pid
    reused by another program apart from the holder (the process's start time on Linux, else "")."""

    token: str
    host: str
    pid: int
    process: str

    @classmethod
    def this_process(cls) -> "Holder":
        pid = os.getpid()
        return cls(uuid.uuid4().hex, socket.gethostname(), pid, _process_start(pid))


@dataclass(frozen=True)
class Lease:
    """A campaign's lease as stored: its holder, since when, and until when it holds without renewal."""

    holder: Holder
    since: datetime
    expires_at: datetime

    def describe(self) -> str:
        return (f"pid {self.holder.pid} on host {self.holder.host}, "
                f"since {self.since.strftime('%Y-%m-%d %H:%M:%S')} UTC")

    def lapsed(self, now: datetime) -> bool:
        """True when nobody holds it any more: expired, or its process is gone from this host."""
        if self.expires_at <= now:
            return True
        return self.holder.host == socket.gethostname() and not _alive(self.holder.pid, self.holder.process)


def _process_start(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22; the name in (...) may hold spaces


def _alive(pid: int, process: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return not process or _process_start(pid) in ("", process)


def busy(campaign: str, lease: Lease) -> CampaignBusyError:
    """The one line a second runner of ``campaign`` reads, naming the runner that holds ``lease``."""
    return CampaignBusyError(
        f"campaign {campaign!r} is being run by {lease.describe()}; a campaign has one runner at a time",
        hint=f"wait for it to end or stop it (dashboard, Ctrl-C there); a runner that died frees the campaign "
             f"within {LEASE_S:.0f} s (at once on the same host), then: sdl resume {campaign}")


def refuse_if_held(lease: Lease | None, campaign: str) -> None:
    """Raise ``CampaignBusyError`` when ``lease`` (as read from the store) is held by a live runner."""
    if lease is not None and not lease.lapsed(utcnow()):
        raise busy(campaign, lease)


def runs_elsewhere(lease: Lease | None) -> bool:
    """Whether ``lease`` is held, live, by a runner other than this process."""
    if lease is None or lease.lapsed(utcnow()):
        return False
    return (lease.holder.host, lease.holder.pid) != (socket.gethostname(), os.getpid())


def _lease(row: RunnerLeaseRow) -> Lease:
    return Lease(Holder(row.token, row.host, row.pid, row.process), _utc(row.since), _utc(row.expires_at))


def _utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def read(s: Session, campaign_id: int) -> Lease | None:
    """The campaign's lease as stored, lapsed or not; None when nobody ever held it or it was given back."""
    row = s.get(RunnerLeaseRow, campaign_id)
    return _lease(row) if row is not None else None


def take(s: Session, campaign_id: int, campaign: str, holder: Holder) -> Lease:
    """Make ``holder`` the campaign's runner for ``LEASE_S`` seconds, inside a writing transaction ``s``.

    Raises ``CampaignBusyError`` (one line naming the holder) when another runner holds it and has
    not lapsed.
    """
    row = s.execute(select(RunnerLeaseRow).where(RunnerLeaseRow.campaign_id == campaign_id)
                    .with_for_update()).scalar_one_or_none()
    if row is not None and row.token != holder.token:
        refuse_if_held(_lease(row), campaign)
        s.delete(row)
        s.flush()
        row = None
    now = utcnow()
    expires = now + timedelta(seconds=LEASE_S)
    if row is None:
        row = RunnerLeaseRow(campaign_id=campaign_id, token=holder.token, host=holder.host, pid=holder.pid,
                             process=holder.process, since=now, expires_at=expires)
        s.add(row)
    else:
        row.expires_at = expires
    s.flush()
    return _lease(row)


def renew(s: Session, campaign_id: int, token: str) -> bool:
    """Extend the lease of runner ``token`` by ``LEASE_S`` seconds from now; False when it holds it no more
    (it lapsed and another runner took the campaign, or it was given back)."""
    renewed = s.execute(update(RunnerLeaseRow)
                        .where(RunnerLeaseRow.campaign_id == campaign_id, RunnerLeaseRow.token == token)
                        .values(expires_at=utcnow() + timedelta(seconds=LEASE_S))
                        .execution_options(synchronize_session=False)).rowcount
    return renewed == 1


def give_back(s: Session, campaign_id: int, token: str) -> None:
    """Runner ``token`` ends: the campaign is free at once (nothing happens when it held it no more)."""
    s.execute(delete(RunnerLeaseRow).where(RunnerLeaseRow.campaign_id == campaign_id, RunnerLeaseRow.token == token)
              .execution_options(synchronize_session=False))


class RunnerLeases:
    """The lease verbs of ``CampaignStore``, mixed in there (they use its ``_tx`` and ``_read`` transactions)."""

    def take_lease(self, campaign_id: int, campaign: str, holder: Holder) -> Lease:
        """See ``take``."""
        with self._tx() as s:
            return take(s, campaign_id, campaign, holder)

    def renew_lease(self, campaign_id: int, token: str) -> bool:
        """See ``renew``."""
        with self._tx() as s:
            return renew(s, campaign_id, token)

    def give_back_lease(self, campaign_id: int, token: str) -> None:
        """See ``give_back``."""
        with self._tx() as s:
            give_back(s, campaign_id, token)

    def lease(self, campaign_id: int) -> Lease | None:
        """See ``read``."""
        with self._read() as s:
            return read(s, campaign_id)
