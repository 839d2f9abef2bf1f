"""Tables of the campaign store (SQLAlchemy 2.x). Arrays are JSON, never pickles."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from uuid import uuid4

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 5


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class SchemaInfo(Base):
    __tablename__ = "schema_info"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


def new_campaign_uid() -> str:
    """A campaign's identity beyond its store: 32 hex digits, random (a campaign of the same name in another store
    has another)."""
    return uuid4().hex


class CampaignRow(Base):
    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_uid", "uid", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # nullable only in the table's definition (adding a NOT NULL column to SQLite's campaigns would copy the table
    # that every other table points to); every row has one: new_campaign_uid, and migration 0004 for older rows
    uid: Mapped[str | None] = mapped_column(String(32), default=new_campaign_uid)
    description: Mapped[str] = mapped_column(Text, default="")
    spec_yaml: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(64))
    versions: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="created")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExperimentRow(Base):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("campaign_id", "sequence"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)  # 0-based order within the campaign
    iteration: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    proposed_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # what was actually made
    objective_values: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_kind: Mapped[str | None] = mapped_column(String(20), nullable=True)  # FAILURE_KINDS
    well: Mapped[str | None] = mapped_column(String(8), nullable=True)
    proposal_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class MeasurementRow(Base):
    __tablename__ = "measurements"
    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    instrument: Mapped[str] = mapped_column(String(80))
    wavelengths_nm: Mapped[list[Any]] = mapped_column(JSON)
    values: Mapped[list[Any]] = mapped_column(JSON)
    saturated: Mapped[bool] = mapped_column(Boolean, default=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IterationRow(Base):
    """What the robot was told to do in one iteration: plan, protocol text, run log."""

    __tablename__ = "iterations"
    __table_args__ = (UniqueConstraint("campaign_id", "iteration"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    iteration: Mapped[int] = mapped_column(Integer)
    instrument: Mapped[str] = mapped_column(String(80))
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    protocol_text: Mapped[str] = mapped_column(Text)
    run_log: Mapped[str] = mapped_column(Text, default="")
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EventRow(Base):
    """Append-only log of every state change."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RunnerLeaseRow(Base):
    """The one runner of a campaign (``orchestrator.store.lease``): who, since when, until when without renewal."""

    __tablename__ = "runner_leases"
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    process: Mapped[str] = mapped_column(String(40), default="")
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CampaignReportRow(Base):
    """A campaign's latest HTML report (``orchestrator.store.reports``), served by ``sdl dashboard`` to any PC."""

    __tablename__ = "campaign_reports"
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True, autoincrement=False)
    html: Mapped[str] = mapped_column(Text)  # self-contained: its figures are data URIs
    written_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
