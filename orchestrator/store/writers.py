"""Several writers on one store: SQLite's write lock taken up front, and the lines a loser of a race reads.

SQLite in WAL mode lets readers and one writer work at once. A transaction that reads and then
writes (every state change: read the experiment, check, update) would, begun the default way,
fail with "database is locked" when another writer committed in between, however long the busy
timeout. ``install_write_locks`` makes the store's writing transactions begin with
``BEGIN IMMEDIATE`` instead: they take the write lock first and queue for up to the busy timeout.
PostgreSQL needs none of this: its conditional updates and row locks do the same.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from orchestrator.errors import CampaignStateError

_WRITE = "sdl_write_transaction"


def install_write_locks(engine: Engine) -> Engine:
    """The engine to open writing transactions with: on SQLite, theirs begin with ``BEGIN IMMEDIATE``
    (and every other transaction with a plain ``BEGIN``, which pysqlite would otherwise emit lazily);
    elsewhere ``engine`` itself."""
    if not engine.url.drivername.startswith("sqlite"):
        return engine

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the "begin" hook below emits BEGIN itself

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine.execution_options(**{_WRITE: True})


class ProposalsChanged(CampaignStateError):
    """Another process added experiments to the campaign after this one read it to choose a batch."""

    def __init__(self, campaign: str, added: int) -> None:
        super().__init__(f"campaign {campaign!r}: another process added {added} experiment(s) while this batch was "
                         "chosen; nothing was added", hint="ask again: their experiments are then pending points")


def no_transition(row: Any, status: str, by_another: bool = False) -> CampaignStateError:
    """Why experiment ``row`` (as stored now) cannot become ``status``: one line, with what it already is."""
    verb = {"measured": "told", "failed": "failed", "abandoned": "abandoned", "dispatched": "dispatched",
            "voided": "voided"}.get(row.status, row.status)
    already = {"measured": f": {_values(row.objective_values)}",
               "failed": f": {row.failure_reason}", "abandoned": f": {row.failure_reason}"}.get(row.status, "")
    who = " by another process" if by_another else ""
    message = f"experiment {row.id} is {row.status}; it cannot become {status}"
    if row.status != "proposed":
        message += f": it was already {verb}{who}{already}"
    hint = ("a told or failed experiment is never overwritten; if its record is wrong, void it: "
            f"sdl void CAMPAIGN {row.id} --reason WHY (or Campaign.void)" if row.status in ("measured", "failed")
            else "only proposed or dispatched experiments can change")
    return CampaignStateError(message, hint=hint)


def _values(values: dict[str, Any] | None) -> str:
    return ", ".join(f"{name}={value:g}" if isinstance(value, (int, float)) else f"{name}={value}"
                     for name, value in (values or {}).items()) or "no values"
