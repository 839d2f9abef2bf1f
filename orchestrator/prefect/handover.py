"""What ``sdl run`` and ``sdl resume`` have already read, handed to the flow they start in the same process.

A flow's parameters are what Prefect stores and what a deployment (``sdl serve``) starts a run
from, so they stay plain text and flags: the campaign's YAML, the store's URL without its
password (``without_password``: the parameters show in the dashboard and the API). A command that
has parsed that YAML, opened that store and resolved the drivers hands them over here, and the
flow it starts takes them instead of doing each again; a deployment's run finds nothing handed
over and does each itself, once.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from orchestrator.spec.schema import CampaignSpec
from orchestrator.store.campaign_store import CampaignStore

if TYPE_CHECKING:  # a type only: the drivers' modules (httpx, the twins) stay out of sdl status and export
    from instruments.factory import ResolvedDrivers


@dataclass(frozen=True)
class Opened:
    """Campaign text ``yaml_text`` parsed (``spec``), its store open (``store``), its drivers resolved
    (``drivers``; None: the runner resolves them)."""

    yaml_text: str
    spec: CampaignSpec
    store: CampaignStore
    drivers: ResolvedDrivers | None = None


_handed: ContextVar[Opened | None] = ContextVar("sdl_opened_campaign", default=None)


@contextmanager
def handed_over(opened: Opened) -> Iterator[Opened]:
    """``opened`` is there for the flows started inside the block (in this thread and context)."""
    token = _handed.set(opened)
    try:
        yield opened
    finally:
        _handed.reset(token)


#: query arguments of a database URL that hold a secret (compared in lower case)
SECRET_QUERY_KEYS = ("password", "sslpassword")


def without_password(url: str | None) -> str | None:
    """Database URL ``url`` with its passwords taken out (in the URL, or as a ``password=`` or ``sslpassword=``
    query argument, in any case); a URL without one, or text that is not a URL (the store refuses it), comes back
    as it was.

    PostgreSQL's client then reads the password from ``PGPASSWORD`` or ``~/.pgpass``.
    """
    try:
        parsed = make_url(url) if url else None
    except (ArgumentError, ValueError):
        return url
    secrets = [key for key in (parsed.query if parsed is not None else ()) if key.lower() in SECRET_QUERY_KEYS]
    if parsed is None or (parsed.password is None and not secrets):
        return url
    bare = URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database,
                      parsed.query).difference_update_query(secrets)  # URL.set(password=None) keeps it
    return bare.render_as_string(hide_password=False)


def taken_over(yaml_text: str, store_url: str | None) -> Opened | None:
    """What was handed over for exactly this campaign text and store, or None (the flow opens its own).

    ``store_url`` is compared without its password: the flow is given the URL without it.
    """
    opened = _handed.get()
    if opened is None or opened.yaml_text != yaml_text:
        return None
    if without_password(opened.store.url) != without_password(store_url or opened.spec.store.url):
        return None
    return opened
