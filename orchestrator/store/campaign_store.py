"""The campaign store: the source of truth for every campaign, experiment and reading.

Any SQLAlchemy URL works; the default is a SQLite file (WAL mode) under ``runs/``. Every
state change is one transaction and leaves an append-only event row behind it.

Several processes may write one store at once (two notebooks, a runner and ``sdl refill``).
A state change is a conditional update (``... WHERE status = <the status read>``), so of two
writers racing for one experiment exactly one wins and the other is told, never overwritten;
on SQLite every writing transaction starts with ``BEGIN IMMEDIATE``, so writers queue instead
of failing on a stale snapshot. ``add_proposals`` adds a batch only if no other process added
one since the caller read the campaign, and never past the budget.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from orchestrator.errors import CampaignStateError, StoreError
from orchestrator.store import lease
from orchestrator.store.ask_tell import AskTellVerbs, uses_budget
from orchestrator.store.engine import display_url, open_engine, sqlite_file_missing
from orchestrator.store.lease import RunnerLeases
from orchestrator.store.reports import CampaignReports
from orchestrator.store.migrate import upgrade_to_head
from orchestrator.store.tables import (
    SCHEMA_VERSION,
    CampaignRow,
    EventRow,
    ExperimentRow,
    IterationRow,
    MeasurementRow,
    SchemaInfo,
    utcnow,
)
from orchestrator.store.writers import ProposalsChanged, install_write_locks, no_transition

DEFAULT_STORE_PATH = Path("runs") / "sdl.db"
TERMINAL = ("measured", "failed", "abandoned", "voided")
#: proposed or on the deck, not finished: the planner treats these points as pending
PENDING = ("proposed", "dispatched")
#: why an experiment failed: "chemistry" teaches the planner where not to go; "instrument"
#: (a robot or spectrometer fault) says nothing about the chemistry and is not learned.
FAILURE_KINDS = ("chemistry", "instrument")
_TRANSITIONS = {
    "proposed": {"dispatched", "measured", "failed", "abandoned"},
    "dispatched": {"measured", "failed", "abandoned"},
    # a record found wrong after the fact: kept, with why, and no longer learned from (``void``)
    "measured": {"voided"},
    "failed": {"voided"},
}


def default_report_dir(campaign: "CampaignInfo") -> Path:
    """Where ``sdl report`` and ``sdl run`` write a campaign's report: ``runs/reports/<name>-<uid start>``
    (``CampaignInfo.key``: a campaign of the same name in another store writes elsewhere)."""
    return Path("runs") / "reports" / campaign.key


def default_store_url() -> str:
    """``sqlite:///runs/sdl.db`` relative to the working directory."""
    return f"sqlite:///{DEFAULT_STORE_PATH.as_posix()}"


@dataclass(frozen=True)
class Experiment:
    """A snapshot of one experiment row (detached from the database)."""

    id: int
    campaign_id: int
    sequence: int
    iteration: int
    status: str
    params: dict[str, Any]
    proposed_params: dict[str, Any]
    values: dict[str, float] | None
    failure_reason: str | None
    well: str | None
    proposal_info: dict[str, Any]
    created_at: datetime
    dispatched_at: datetime | None
    finished_at: datetime | None
    failure_kind: str | None = None

    @property
    def number(self) -> int:
        """1..n in its campaign, in the order proposed, as a person reads it; ``id`` counts across the store."""
        return self.sequence + 1


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    name: str
    description: str
    spec_yaml: str
    spec_hash: str
    versions: dict[str, Any]
    status: str
    created_at: datetime
    uid: str = ""

    @property
    def key(self) -> str:
        """The campaign's name and the start of its uid, e.g. ``colour-match-demo-3f9a1c2e``: what names its report
        folder and its dashboard artifacts, apart from a campaign of the same name in another store."""
        return f"{self.name}-{self.uid[:8]}" if self.uid else self.name


def _utc(moment: datetime | None) -> datetime | None:
    """Timestamps are written in UTC; SQLite hands them back without a zone, so add it."""
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


def _experiment(row: ExperimentRow) -> Experiment:
    return Experiment(
        row.id, row.campaign_id, row.sequence, row.iteration, row.status, dict(row.params),
        dict(row.proposed_params), row.objective_values, row.failure_reason, row.well,
        dict(row.proposal_info or {}), _utc(row.created_at), _utc(row.dispatched_at), _utc(row.finished_at),
        row.failure_kind,
    )


def _campaign(row: CampaignRow) -> CampaignInfo:
    return CampaignInfo(
        row.id, row.name, row.description, row.spec_yaml, row.spec_hash, dict(row.versions), row.status,
        _utc(row.created_at), row.uid or "",
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class CampaignStore(RunnerLeases, CampaignReports, AskTellVerbs):
    """Opens (and creates) the store at ``url``; describe it with ``display``.

    ``must_exist``: a SQLite file that is not there is a ``StoreError`` instead of a new empty store
    (for commands that read a campaign: a mistyped path should not leave an empty file behind).
    """

    def __init__(self, url: str | None = None, must_exist: bool = False) -> None:
        self.url = url or default_store_url()
        if must_exist and not self._sqlite_file_exists(self.url):
            raise StoreError(f"no store at {self.display}: the file does not exist",
                             hint="check the path in --store or warm_start.store: sdl run creates a store, "
                                  "resume, refill, status, export, report and a warm start read one")
        self.engine = self._engine(self.url)
        writing = install_write_locks(self.engine)  # before the first connection: it changes how each begins
        try:
            upgrade_to_head(self.engine)
        except DatabaseError as err:  # OperationalError, or e.g. "file is not a database"
            reason = " ".join(str(err.orig).split())  # drivers' messages span lines; ours is one
            raise StoreError(f"cannot open store {self.display}: {reason}", hint="check --store") from None
        self._write_session = sessionmaker(writing, expire_on_commit=False)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._proposing = threading.local()  # .session: the transaction ``proposing`` holds in this thread
        self._stamp_schema()

    @staticmethod
    def _sqlite_file_exists(url: str) -> bool:
        """False only for a SQLite URL naming a file that is not there (the part before ``?``; other databases: True)."""
        return not sqlite_file_missing(url)

    @staticmethod
    def _engine(url: str) -> Engine:
        engine = open_engine(url)
        if engine.url.drivername.startswith("sqlite"):
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    @property
    def display(self) -> str:
        """The URL a user can pass back as ``--store`` (password hidden), a SQLite path made absolute."""
        return display_url(self.url)

    def folder_beside(self, name: str) -> Path:
        """Folder ``name`` beside a SQLite store's file, else ``runs/<name>`` (in-memory and server stores); not created.

        Read from the engine's URL, parsed once when the store was opened.
        """
        url = self.engine.url
        if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
            return Path(url.database).parent / name
        return Path("runs") / name

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """A writing transaction (on SQLite: ``BEGIN IMMEDIATE``, so it holds the write lock from its first read)."""
        with self._write_session.begin() as session:
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """A transaction that only reads (one consistent snapshot; it never waits for writers)."""
        with self._session.begin() as session:
            yield session

    def _stamp_schema(self) -> None:
        try:
            with self._tx() as s:
                if s.get(SchemaInfo, 1) is None:
                    s.add(SchemaInfo(id=1, version=SCHEMA_VERSION))
        except IntegrityError:  # another process stamped the new store first
            pass
        with self._tx() as s:
            info = s.get(SchemaInfo, 1)
            if info.version != SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.display} has schema version {info.version}, this code reads {SCHEMA_VERSION}",
                    hint="use a matching version of sdl-orchestrator",
                )

    # campaigns ---------------------------------------------------------------------------

    def create_campaign(self, name: str, description: str, spec_yaml: str, spec_hash: str, versions: dict) -> CampaignInfo:
        with self._tx() as s:
            if s.scalar(select(CampaignRow).where(CampaignRow.name == name)) is not None:
                raise CampaignStateError(f"campaign {name!r} already exists in {self.display}")
            row = CampaignRow(name=name, description=description, spec_yaml=spec_yaml, spec_hash=spec_hash,
                              versions=versions, status="created")
            s.add(row)
            s.flush()
            s.add(EventRow(campaign_id=row.id, kind="campaign_created", detail={"spec_hash": spec_hash}))
            return _campaign(row)

    def replace_unused_campaign_file(self, campaign_id: int, description: str, spec_yaml: str,
                                     spec_hash: str) -> CampaignInfo | None:
        """Give a campaign that has no experiment yet a changed campaign file; None (nothing changed) once it has one.

        A run that stopped before its first proposal (say, at the instruments' check) can then be
        fixed and run again under its name; the event ``campaign_file_replaced`` keeps both hashes.
        """
        with self._tx() as s:
            row = s.get(CampaignRow, campaign_id, with_for_update=True)
            if s.scalar(select(ExperimentRow.id).where(ExperimentRow.campaign_id == campaign_id).limit(1)) is not None:
                return None
            s.add(EventRow(campaign_id=campaign_id, kind="campaign_file_replaced",
                           detail={"old_spec_hash": row.spec_hash, "spec_hash": spec_hash}))
            row.description, row.spec_yaml, row.spec_hash, row.updated_at = description, spec_yaml, spec_hash, utcnow()
            s.flush()
            return _campaign(row)

    def find_campaign(self, name: str) -> CampaignInfo | None:
        with self._read() as s:
            row = s.scalar(select(CampaignRow).where(CampaignRow.name == name))
            return _campaign(row) if row else None

    def get_campaign(self, name: str) -> CampaignInfo:
        found = self.find_campaign(name)
        if found is None:
            known = ", ".join(c.name for c in self.campaigns()) or "none yet"
            raise StoreError(f"no campaign named {name!r} in {self.display}", hint=f"campaigns there: {known}")
        return found

    def campaigns(self) -> list[CampaignInfo]:
        with self._read() as s:
            return [_campaign(r) for r in s.scalars(select(CampaignRow).order_by(CampaignRow.id))]

    def set_campaign_status(self, campaign_id: int, status: str, **detail: Any) -> None:
        with self._tx() as s:
            row = s.get(CampaignRow, campaign_id)
            row.status, row.updated_at = status, utcnow()
            s.add(EventRow(campaign_id=campaign_id, kind=f"campaign_{status}", detail=detail))

    # experiments -------------------------------------------------------------------------

    def add_proposals(
        self, campaign_id: int, iteration: int, proposals: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        seen: int | None = None, budget: int | None = None,
    ) -> list[Experiment]:
        """Record a batch of (params, proposal_info) as ``proposed`` experiments, one transaction.

        ``seen``: how many experiments the campaign had when the caller read it to choose the batch;
        when another process added some since, nothing is added and ``ProposalsChanged`` says so
        (choose again, with theirs as pending points). ``budget``: the most experiments the campaign
        may hold, those that use no budget not counted (``ask_tell.uses_budget``); a batch that would pass it
        is refused.
        """
        held = getattr(self._proposing, "session", None)
        with nullcontext(held) if held is not None else self._tx() as s:
            # PostgreSQL: the campaign's row lock queues concurrent batches (SQLite's BEGIN IMMEDIATE already does)
            name = s.execute(select(CampaignRow.name).where(CampaignRow.id == campaign_id).with_for_update()).scalar()
            held = s.execute(select(ExperimentRow.status, ExperimentRow.proposal_info)
                             .where(ExperimentRow.campaign_id == campaign_id)).all()
            if seen is not None and len(held) != seen:
                raise ProposalsChanged(name, len(held) - seen)
            used = sum(uses_budget(status, proposal_info) for status, proposal_info in held)
            if budget is not None and used + len(proposals) > budget:
                raise CampaignStateError(
                    f"campaign {name!r} has budget for {budget - used} more experiment(s), asked for {len(proposals)}",
                    hint="ask for fewer or raise budget.experiments in a new campaign")
            start = len(held)
            rows = [
                ExperimentRow(campaign_id=campaign_id, sequence=start + i, iteration=iteration, status="proposed",
                              proposed_params=dict(p), params=dict(p), proposal_info=dict(info))
                for i, (p, info) in enumerate(proposals)
            ]
            s.add_all(rows)
            s.flush()
            s.add_all(EventRow(campaign_id=campaign_id, experiment_id=r.id, kind="proposed", detail={"params": r.params})
                      for r in rows)
            return [_experiment(r) for r in rows]

    @contextmanager
    def proposing(self, campaign_id: int) -> Iterator[None]:
        """Hold the campaign's batch lock for the block: no other process adds a batch until it ends, and this
        thread's ``add_proposals`` writes in the same transaction (for an ``ask`` that lost too many races)."""
        with self._tx() as s:
            s.execute(select(CampaignRow.id).where(CampaignRow.id == campaign_id).with_for_update())
            self._proposing.session = s
            try:
                yield
            finally:
                self._proposing.session = None

    def experiments(self, campaign_id: int, status: str | None = None) -> list[Experiment]:
        with self._read() as s:
            query = select(ExperimentRow).where(ExperimentRow.campaign_id == campaign_id)
            if status is not None:
                query = query.where(ExperimentRow.status == status)
            return [_experiment(r) for r in s.scalars(query.order_by(ExperimentRow.sequence))]

    def experiment(self, experiment_id: int) -> Experiment:
        with self._read() as s:
            return _experiment(self._row(s, experiment_id))

    def _row(self, s: Session, experiment_id: int) -> ExperimentRow:
        row = s.get(ExperimentRow, experiment_id)
        if row is None:
            raise CampaignStateError(f"no experiment with id {experiment_id}", hint="use an id returned by ask()")
        return row

    def _move(self, s: Session, row: ExperimentRow, status: str, **detail: Any) -> None:
        """``row`` becomes ``status``, only if no other writer changed it since this transaction read it.

        Raises ``CampaignStateError`` naming what the experiment became (and its values) otherwise.
        """
        if status not in _TRANSITIONS.get(row.status, set()):
            raise no_transition(row, status)
        stamp = {"dispatched_at": utcnow()} if status == "dispatched" else {} if status == "voided" else \
            {"finished_at": utcnow()}
        moved = s.execute(update(ExperimentRow)
                          .where(ExperimentRow.id == row.id, ExperimentRow.status == row.status)
                          .values(status=status, **stamp)
                          .execution_options(synchronize_session=False)).rowcount
        if moved != 1:  # PostgreSQL: another transaction moved the row after this one read it
            s.refresh(row)
            raise no_transition(row, status, by_another=True)
        s.add(EventRow(campaign_id=row.campaign_id, experiment_id=row.id, kind=status,
                       detail={"from": row.status, **detail}))
        for key, value in {"status": status, **stamp}.items():
            set_committed_value(row, key, value)

    def mark_dispatched(self, assignments: Mapping[int, tuple[str, Mapping[str, Any]]],
                        batch: Mapping[str, Any] | None = None, lease_token: str | None = None) -> None:
        """Experiments id -> (well, params actually made) become ``dispatched``, one transaction.

        ``batch`` (the plate plan, as JSON) is kept in the same transaction as a
        ``batch_dispatched`` event, so a restart knows what was sent even if nothing else
        about the batch reached the store. ``lease_token``: the runner's lease
        (``orchestrator.store.lease``), renewed in the same transaction; a runner that lost it
        dispatches nothing (``LeaseLostError``).
        """
        with self._tx() as s:
            campaign_id = None
            for experiment_id, (well, params) in assignments.items():
                row = self._row(s, experiment_id)
                self._move(s, row, "dispatched", well=well, params=dict(params))
                row.well, row.params, campaign_id = well, dict(params), row.campaign_id
            if lease_token is not None and campaign_id is not None and not lease.renew(s, campaign_id, lease_token):
                raise lease.LeaseLostError(
                    "this runner's hold on the campaign lapsed and another runner took it; nothing was dispatched",
                    hint="let the other runner go on, or stop it and: sdl resume CAMPAIGN")
            if batch is not None and campaign_id is not None:
                s.add(EventRow(campaign_id=campaign_id, kind="batch_dispatched", detail=dict(batch)))

    def edit_proposal(self, experiment_id: int, params: Mapping[str, Any], note: str) -> Experiment:
        """A person changed a proposed experiment's values before it was made; one transaction.

        ``proposed_params`` keeps what the planner asked for; ``params`` becomes the edit.
        """
        with self._tx() as s:
            row = self._row(s, experiment_id)
            if row.status != "proposed":
                raise CampaignStateError(f"experiment {row.id} is {row.status}; only a proposed experiment can be edited")
            s.add(EventRow(campaign_id=row.campaign_id, experiment_id=row.id, kind="edited",
                           detail={"before": dict(row.params), "after": dict(params), "note": note}))
            row.params = dict(params)
            return _experiment(row)

    def abandon(self, experiment_id: int, reason: str) -> Experiment:
        """An experiment that was never made (refused, rejected, never reached the robot)."""
        with self._tx() as s:
            row = self._row(s, experiment_id)
            self._move(s, row, "abandoned", reason=reason)
            row.failure_reason = reason
            return _experiment(row)

    def record_result(
        self, experiment_id: int, values: Mapping[str, float], measurement: Mapping[str, Any] | None = None
    ) -> Experiment:
        """Objective values (and the raw reading) of one experiment, one transaction."""
        with self._tx() as s:
            row = self._row(s, experiment_id)
            self._move(s, row, "measured", values=dict(values))
            row.objective_values = {k: float(v) for k, v in values.items()}
            if measurement is not None:
                s.add(MeasurementRow(experiment_id=experiment_id, **measurement))
            return _experiment(row)

    def record_failure(self, experiment_id: int, reason: str, measurement: Mapping[str, Any] | None = None,
                       kind: str = "chemistry") -> Experiment:
        """An experiment failed for ``reason``; ``kind`` is one of ``FAILURE_KINDS``. One transaction."""
        if kind not in FAILURE_KINDS:
            raise CampaignStateError(f"failure kind {kind!r} is not one of {', '.join(FAILURE_KINDS)}")
        with self._tx() as s:
            row = self._row(s, experiment_id)
            self._move(s, row, "failed", reason=reason, failure_kind=kind)
            row.failure_reason, row.failure_kind = reason, kind
            if measurement is not None:
                s.add(MeasurementRow(experiment_id=experiment_id, **measurement))
            return _experiment(row)

    def void(self, experiment_id: int, reason: str) -> Experiment:
        """A measured or failed experiment's record is wrong: it stays, as ``voided`` with ``reason``, and the
        planner no longer learns from it; it still counts against the budget (it was made). One transaction."""
        with self._tx() as s:
            row = self._row(s, experiment_id)
            self._move(s, row, "voided", reason=reason, values=row.objective_values, failure=row.failure_reason)
            return _experiment(row)

    def correct(self, experiment_id: int, values: Mapping[str, float], reason: str) -> Experiment:
        """A measured experiment's values were wrong: ``values`` replace them; the ``corrected`` event keeps
        both and ``reason``. One transaction, the row locked, so two corrections queue."""
        with self._tx() as s:
            row = s.get(ExperimentRow, experiment_id, with_for_update=True) or self._row(s, experiment_id)
            if row.status != "measured":
                raise CampaignStateError(f"experiment {row.id} is {row.status}; only a measured experiment's values "
                                         "can be corrected", hint="tell it first, or fail it")
            s.add(EventRow(campaign_id=row.campaign_id, experiment_id=row.id, kind="corrected",
                           detail={"before": row.objective_values, "after": dict(values), "reason": reason}))
            row.objective_values = {k: float(v) for k, v in values.items()}
            return _experiment(row)

    def measurements(self, experiment_id: int) -> list[dict[str, Any]]:
        with self._read() as s:
            rows = s.scalars(select(MeasurementRow).where(MeasurementRow.experiment_id == experiment_id))
            return [
                {"kind": r.kind, "instrument": r.instrument, "wavelengths_nm": r.wavelengths_nm, "values": r.values,
                 "saturated": r.saturated, "meta": r.meta, "created_at": _utc(r.created_at)}
                for r in rows
            ]

    # iterations --------------------------------------------------------------------------

    def record_iteration(self, campaign_id: int, iteration: int, instrument: str, plan: Mapping[str, Any],
                         protocol_text: str, run_log: str, duration_s: float) -> None:
        with self._tx() as s:
            s.add(IterationRow(campaign_id=campaign_id, iteration=iteration, instrument=instrument, plan=dict(plan),
                               protocol_text=protocol_text, run_log=run_log, duration_s=duration_s))
            s.add(EventRow(campaign_id=campaign_id, kind="protocol_run", detail={"iteration": iteration}))

    def iterations(self, campaign_id: int) -> list[dict[str, Any]]:
        with self._read() as s:
            rows = s.scalars(select(IterationRow).where(IterationRow.campaign_id == campaign_id).order_by(IterationRow.iteration))
            return [
                {"iteration": r.iteration, "instrument": r.instrument, "plan": r.plan, "protocol_text": r.protocol_text,
                 "run_log": r.run_log, "duration_s": r.duration_s, "created_at": _utc(r.created_at)}
                for r in rows
            ]

    def record_event(self, campaign_id: int, kind: str, detail: Mapping[str, Any]) -> None:
        """An event that changes no state (e.g. step timings), appended to the log."""
        with self._tx() as s:
            s.add(EventRow(campaign_id=campaign_id, kind=kind, detail=dict(detail)))

    def events(self, campaign_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        """The campaign's events, oldest first; only those of ``kind`` when given."""
        with self._read() as s:
            query = select(EventRow).where(EventRow.campaign_id == campaign_id)
            if kind is not None:
                query = query.where(EventRow.kind == kind)
            rows = s.scalars(query.order_by(EventRow.id))
            return [{"id": r.id, "kind": r.kind, "experiment_id": r.experiment_id, "detail": r.detail, "at": _utc(r.at)}
                    for r in rows]
