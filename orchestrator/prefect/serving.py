"""Operating campaigns on a Prefect server: serve a campaign's flow, answer an approval, confirm a plate hand-off.

Both need a Prefect server that more than one process can reach (``PREFECT_API_URL``, e.g.
the one ``sdl dashboard`` starts): a temporary in-process server dies with its process.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import FlowPauseTimeout, NotPausedError
from prefect.flow_runs import resume_flow_run
from prefect.input.actions import read_flow_run_input
from prefect.settings import PREFECT_API_URL
from sqlalchemy.engine import make_url

from orchestrator.errors import OrchestratorError, SpecError, UsageError
from orchestrator.prefect.approval import BatchDecision, outcome_key
from orchestrator.prefect.flows import campaign_flow
from orchestrator.prefect.handoff import HANDOFF_KEY_PREFIX, PlateMoved
from orchestrator.prefect.handover import without_password
from orchestrator.run.plate_handoff import handoff_step
from orchestrator.run.plate_handoff import handoff_step
from orchestrator.spec.loader import parse_spec
from orchestrator.spec.sections import Approval

#: how long ``answer_approval`` waits for the flow to take a decision, beyond the flow's own
#: ``approval.poll_seconds`` (the interval at which a paused flow looks whether it was answered) [s]
ANSWER_WAIT_S = 30.0
#: how often it looks whether the flow took it [s]
OUTCOME_POLL_S = 0.5


class NoRunWaiting(OrchestratorError, RuntimeError):
    """No flow run of the campaign waits for an approval (yet)."""


class ApprovalRefused(UsageError):
    """The flow refused the answer (an edit breaks a bound or a constraint...); it waits for another."""


@dataclass(frozen=True)
class ApprovalOutcome:
    """What became of an answer: the flow run that took it, and the decision as it was applied
    (``edit`` for an ``approve`` that carried edits)."""

    run_id: UUID
    decision: str


def configured_api_url() -> str | None:
    """``PREFECT_API_URL`` from the environment or the active Prefect profile, if any."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    return PREFECT_API_URL.value() or None


def require_api_url(what: str) -> str:
    """The configured Prefect API URL, or a one-line error saying how to set one."""
    url = configured_api_url()
    if not url:
        raise OrchestratorError(f"{what} needs a Prefect server other processes can reach",
                                hint="start one with: sdl dashboard, then export PREFECT_API_URL=http://127.0.0.1:4200/api")
    return url


def paused_flow_run(name: str, waiting_for: str = "approval") -> FlowRun:
    """The paused flow run of campaign ``name`` (flow runs are named after their campaign); ``NoRunWaiting``
    saying it has none waiting for ``waiting_for``."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]),
                                          state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))),
            sort=FlowRunSort.START_TIME_DESC, limit=5, offset=0,
        )
    if not runs:
        raise NoRunWaiting(f"campaign {name!r} has no flow run waiting for {waiting_for}",
                           hint=f"see its state in the dashboard, or: sdl status {name}")
    return runs[0]


def answer_approval(name: str, decision: dict[str, Any], wait_s: float = ANSWER_WAIT_S) -> ApprovalOutcome:
    """Resume campaign ``name``'s paused run with ``decision`` (the ``BatchDecision`` fields) and wait,
    at most ``wait_s`` seconds beyond the flow's poll interval, until the flow took it or refused it.

    Raises ``ApprovalRefused`` with the flow's reasons when it refused the answer (it then waits for
    another), ``NoRunWaiting`` when no run waits, ``OrchestratorError`` when the server refused the
    answer or the flow did not say what became of it in time.
    """
    require_api_url("sdl approve")
    checked = BatchDecision.model_validate(decision)
    run = paused_flow_run(name)
    key = run.state.state_details.pause_key if run.state else None
    if not key or not key.startswith("approval-"):
        waits_for = (f"a plate hand-off: move the plate, then confirm in the dashboard or with: sdl confirm {name} "
                     f"--move {handoff_step(key or '')}") if (key or "").startswith(HANDOFF_KEY_PREFIX) \
            else "something else, in the dashboard"
        raise OrchestratorError(f"campaign {name!r}: flow run {run.id} is paused, but not for an approval",
                                hint=f"it waits for {waits_for}")
    try:
        resume_flow_run(run.id, run_input=checked.model_dump(mode="json"))
    except (NotPausedError, FlowPauseTimeout):
        raise NoRunWaiting(f"campaign {name!r}: flow run {run.id} stopped waiting before the answer arrived "
                           "(answered from elsewhere, or its approval timed out)",
                           hint=f"see the dashboard, or: sdl status {name}") from None
    except RuntimeError as err:  # the server checks the answer against the form's schema
        raise UsageError(f"campaign {name!r}: the Prefect server refused the answer: {' '.join(str(err).split())}",
                         hint="sdl approve NAME --approve | --reject | --edit ID:PARAM=VALUE") from None
    limit_s = wait_s + _poll_seconds(run)
    outcome = _wait_for_outcome(run.id, key, limit_s)
    if outcome is None:
        raise OrchestratorError(f"campaign {name!r}: the answer reached flow run {run.id}, but the flow did not say "
                                f"within {limit_s:g} s whether it took it",
                                hint=f"see the dashboard, or: sdl status {name}; answer again only if it waits again")
    if outcome.get("problems"):
        raise ApprovalRefused(f"campaign {name!r}: the flow refused the {checked.decision}: "
                              + "; ".join(outcome["problems"]),
                              hint=f"it waits for another answer: sdl approve {name} with corrected values")
    return ApprovalOutcome(run.id, str(outcome.get("decision") or checked.decision))


def confirm_plate_handoff(name: str, note: str = "", move: str | None = None) -> tuple[UUID, str]:
    """Confirm the plate hand-off that campaign ``name``'s paused run waits for, as the dashboard's form does;
    (the run's id, the request confirmed). ``move`` (``HANDOFF_STEPS``), when given, is the move the person
    made: a run that waits for another is refused (``UsageError``), so that a confirmation sent twice never
    answers the next request, which nobody has read. ``NoRunWaiting`` when no run waits; ``OrchestratorError``
    when it waits for something else or the server refuses."""
    require_api_url("confirming a plate hand-off")
    run = paused_flow_run(name, "a plate hand-off")
    key = run.state.state_details.pause_key if run.state else None
    if not key or not key.startswith(HANDOFF_KEY_PREFIX):
        raise OrchestratorError(f"campaign {name!r}: flow run {run.id} is paused, but not for a plate hand-off",
                                hint=f"answer an approval with: sdl approve {name}")
    request, waits_for = _pause_description(run) or f"hand-off {key}", handoff_step(key)
    if move is not None and move != waits_for:
        raise UsageError(f"campaign {name!r} waits for another move of the plate, so nothing was confirmed: {request}",
                         hint=f"once that is done: sdl confirm {name} --move {waits_for}")
    try:
        resume_flow_run(run.id, run_input=PlateMoved(note=note).model_dump(mode="json"))
    except (NotPausedError, FlowPauseTimeout):
        raise NoRunWaiting(f"campaign {name!r}: flow run {run.id} stopped waiting before the confirmation arrived",
                           hint=f"see the dashboard, or: sdl status {name}") from None
    except RuntimeError as err:  # e.g. its form not saved yet, in the moment after the pause began
        raise OrchestratorError(f"campaign {name!r}: the Prefect server refused the confirmation: "
                                f"{' '.join(str(err).split())}", hint="confirm again in a few seconds") from None
    return run.id, request


def _pause_description(run: FlowRun) -> str | None:
    """The text shown above the form of ``run``'s pause (a hand-off's request), or None when there is none yet."""
    keyset = run.state.state_details.run_input_keyset if run.state else None
    description = read_flow_run_input(keyset["description"], flow_run_id=run.id) if keyset else None
    return description if isinstance(description, str) else None


def _wait_for_outcome(run_id: UUID, key: str, limit_s: float) -> dict[str, Any] | None:
    """The flow's outcome for pause ``key`` (``approval.outcome_key``), or None when none came within
    ``limit_s`` seconds; ``OrchestratorError`` when the run ended without one."""
    deadline = time.monotonic() + limit_s
    while True:
        outcome = read_flow_run_input(outcome_key(key), flow_run_id=run_id)
        if outcome is not None:
            return outcome
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_id).state
        if state is not None and state.is_final():
            outcome = read_flow_run_input(outcome_key(key), flow_run_id=run_id)  # written just before it ended?
            if outcome is not None:
                return outcome
            raise OrchestratorError(f"flow run {run_id} ended ({state.name}) before it took the answer",
                                    hint="see its logs in the dashboard; sdl resume NAME asks again")
        if time.monotonic() >= deadline:
            return None
        time.sleep(OUTCOME_POLL_S)


def _poll_seconds(run: FlowRun) -> float:
    """The campaign's ``approval.poll_seconds``, from the campaign file the run was started with."""
    try:
        return float(parse_spec(str(run.parameters.get("yaml_text") or "")).approval.poll_seconds)
    except SpecError:  # a run started another way: the default interval
        return float(Approval.model_fields["poll_seconds"].default)


def serve_campaign(name: str, yaml_text: str, source: str, store_url: str, dry_run: bool) -> int:
    """Serve the campaign flow as deployment ``sdl-campaign/<name>`` until interrupted.

    The deployment's parameters, shown by the dashboard and the API, name the store without its
    password; the password reaches the runs through this process's environment (``_password_to_environment``).
    """
    url = require_api_url("sdl serve")
    public_store_url = _password_to_environment(store_url)
    print(f"serving deployment sdl-campaign/{name} on {url}; start a run from the dashboard or with: "
          f"prefect deployment run 'sdl-campaign/{name}'", flush=True)
    campaign_flow.serve(name=name, parameters={"name": name, "yaml_text": yaml_text, "source": source,
                                               "store_url": public_store_url, "dry_run": dry_run, "in_doubt": "ask"},
                        print_starting_message=False)
    return 0


def _password_to_environment(store_url: str) -> str:
    """``store_url`` without its password, which is set as ``PGPASSWORD`` of this process instead.

    Each run of a served deployment is a child process of this one, started with its environment,
    where PostgreSQL's client (libpq) reads ``PGPASSWORD`` when the URL has no password; the password
    stays in this machine's memory and never reaches the Prefect server. A store URL without a
    password (the user keeps it in ``PGPASSWORD`` or ``~/.pgpass`` already) changes nothing.
    Another database's client reads no such variable: its password is refused here.
    """
    parsed = make_url(store_url)
    password = parsed.password or parsed.query.get("password")
    if not password:
        return store_url
    if parsed.get_backend_name() != "postgresql":
        raise OrchestratorError(f"sdl serve cannot pass the password of a {parsed.get_backend_name()} store to "
                                "its runs without showing it in the deployment's parameters",
                                hint="use a store URL without a password that the database accepts from this machine")
    os.environ["PGPASSWORD"] = password if isinstance(password, str) else password[-1]
    return without_password(store_url)
