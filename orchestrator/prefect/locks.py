"""One physical instrument, one campaign at a time: Prefect global concurrency limits.

Each instrument gets a strict limit of 1 slot, named after what identifies the device (the
robot's address, the spectrometer's serial, or the ``lock`` a campaign file gives). A
campaign holds a spectrometer's slot only while it reads a plate, so campaigns share one batch
by batch. It holds its robot's slot from the check before its first batch to the end of its
run: the deck's tip racks, plate and reservoir are counted per campaign, so two campaigns taking
turns on one deck would reuse tips and fill wells twice. Dry runs lock only twins given a
``lock`` name, under a ``dry-run`` prefix: they never block a real campaign.
"""

from __future__ import annotations

import re
import time
from contextlib import ExitStack, contextmanager, nullcontext
from typing import Any, Callable, Iterator

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from orchestrator.errors import OrchestratorError
from orchestrator.run.campaign import Campaign
from orchestrator.run.steps import CampaignRunner, LoopError

#: how long a campaign waits for a busy instrument before it gives up [s]
LOCK_WAIT_S = 6 * 3600.0
#: a held slot is a lease the holder renews every 45 s; a holder that died (kill -9, power
#: cut) stops renewing, and the server frees its slot within this plus its 15 s sweep [s].
#: 60 s is the shortest lease the server accepts.
LEASE_S = 60.0
#: how long a campaign waits for a robot that another run holds before it refuses [s]: long enough
#: for the lease of this campaign's own crashed run to lapse (so ``sdl resume`` right after a crash
#: goes on), short enough that a second campaign on a busy robot is told so at once
ROBOT_WAIT_S = LEASE_S + 45.0
ROLES = ("liquid_handler", "spectrometer")


def lock_names(spec: Any, dry_run: bool) -> dict[str, str]:
    """Role -> concurrency-limit name for each instrument of ``spec`` that needs a lock.

    In a dry run only twins given a ``lock:`` name are locked (campaigns sharing one
    simulated bench); any other twin belongs to its run alone.
    """
    names = {}
    for role in ROLES:
        config = getattr(spec.instruments, role)
        given = getattr(config, "lock", None)
        if dry_run and not given:
            continue
        if dry_run:
            ident = f"dry-run-{given}"
        elif given:
            ident = given
        elif role == "liquid_handler":
            ident = f"{config.driver}-{config.host}-{config.port}"
        else:
            ident = f"{config.driver}-{getattr(config, 'serial', None) or 'first-found'}"
        names[role] = "sdl-instrument-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", ident).strip("-").lower()
    return names


def ensure_limits(names: list[str]) -> None:
    """Create each strict limit of one slot that the Prefect server does not have yet."""
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                client.read_global_concurrency_limit_by_name(name)
                continue
            except ObjectNotFound:
                pass
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:  # another campaign created it a moment ago
                pass


class InstrumentBusy(OrchestratorError, TimeoutError):
    """The instrument's slot stayed taken for as long as the caller would wait."""


@contextmanager
def instrument_lock(name: str, on_held: Callable[[dict[str, Any]], None] | None = None,
                    wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the one slot of limit ``name`` while the block runs; ``on_held`` gets the times held (epoch s).

    Raises ``InstrumentBusy`` when the slot is not free within ``wait_s`` [s].
    """
    with ExitStack() as held:
        try:
            held.enter_context(concurrency(name, occupy=1, strict=True, timeout_seconds=wait_s,
                                           lease_duration=LEASE_S))
        except TimeoutError as err:
            raise InstrumentBusy(f"instrument {name} stayed busy for {wait_s:g} s",
                                 hint="another campaign is using it; see Concurrency in the dashboard") from err
        acquired = time.time()
        try:
            yield
        finally:
            if on_held is not None:
                on_held({"lock": name, "acquired_at": acquired, "released_at": time.time()})


def lock_instruments(runner: CampaignRunner, dry_run: bool) -> dict[str, str]:
    """Make ``runner`` hold each physical instrument's slot while that instrument works; role -> limit name.

    The robot's slot is then held for the whole run instead (``robot_for_the_run``).
    """
    campaign = runner.campaign
    names = lock_names(campaign.spec, dry_run)
    ensure_limits(list(names.values()))

    def held(role: str):
        return instrument_lock(names[role], on_held=_hold_recorder(campaign, role)) if role in names else nullcontext()

    runner.instrument_guard = held
    return names


@contextmanager
def robot_for_the_run(runner: CampaignRunner, locks: dict[str, str]) -> Iterator[None]:
    """Hold the robot's slot (``locks["liquid_handler"]``) for the block; its batches then take no lock of their own.

    Campaigns on one robot share its deck (tip racks, plate, reservoir), which each campaign
    counts as its own, so they run one after the other, never batch by batch: a robot that
    another run holds for ``ROBOT_WAIT_S`` is refused (``LoopError``), with nothing moved.
    """
    name, campaign = locks.get("liquid_handler"), runner.campaign
    if name is None:
        yield
        return
    with ExitStack() as held:
        try:
            held.enter_context(instrument_lock(name, on_held=_hold_recorder(campaign, "liquid_handler"),
                                               wait_s=ROBOT_WAIT_S))
        except InstrumentBusy as err:
            raise LoopError(f"the robot ({name}) is in use by another campaign; nothing moved",
                            hint="campaigns on one robot share its tip racks, plate and reservoir, so they run one "
                                 "after the other: when the other has ended, load fresh tips and a fresh plate, "
                                 f"then: sdl resume {campaign.spec.name}") from err
        per_batch = runner.instrument_guard
        runner.instrument_guard = lambda role: nullcontext() if role == "liquid_handler" else per_batch(role)
        try:
            yield
        finally:
            runner.instrument_guard = per_batch


def _hold_recorder(campaign: Campaign, role: str) -> Callable[[dict[str, Any]], None]:
    """The ``on_held`` callback that stores each hold of ``role``'s instrument as an ``instrument_held`` event."""

    def remember(times: dict[str, Any]) -> None:
        campaign.store.record_event(campaign.info.id, "instrument_held", {"role": role, **times})

    return remember
