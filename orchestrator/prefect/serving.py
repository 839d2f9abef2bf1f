"""Operating campaigns on a Prefect server: serve a campaign's flow, answer an approval.

Both need a Prefect server that more than one process can reach (``PREFECT_API_URL``, e.g.
the one ``sdl dashboard`` starts): a temporary in-process server dies with its process.
"""

from __future__ import annotations

import os
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.flow_runs import resume_flow_run
from prefect.settings import PREFECT_API_URL

from orchestrator.errors import OrchestratorError
from orchestrator.prefect.approval import BatchDecision
from orchestrator.prefect.flows import campaign_flow


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


def paused_flow_run(name: str) -> UUID:
    """Id of the paused flow run of campaign ``name`` (flow runs are named after their campaign)."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]),
                                          state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))),
            sort=FlowRunSort.START_TIME_DESC, limit=5, offset=0,
        )
    if not runs:
        raise OrchestratorError(f"campaign {name!r} has no flow run waiting for approval",
                                hint=f"see its state in the dashboard, or: sdl status {name}")
    return runs[0].id


def answer_approval(name: str, decision: dict[str, Any]) -> UUID:
    """Resume campaign ``name``'s paused run with ``decision`` (the ``BatchDecision`` fields)."""
    require_api_url("sdl approve")
    checked = BatchDecision.model_validate(decision)
    run_id = paused_flow_run(name)
    resume_flow_run(run_id, run_input=checked.model_dump(mode="json"))
    return run_id


def serve_campaign(name: str, yaml_text: str, source: str, store_url: str, dry_run: bool) -> int:
    """Serve the campaign flow as deployment ``sdl-campaign/<name>`` until interrupted."""
    url = require_api_url("sdl serve")
    print(f"serving deployment sdl-campaign/{name} on {url}; start a run from the dashboard or with: "
          f"prefect deployment run 'sdl-campaign/{name}'", flush=True)
    campaign_flow.serve(name=name, parameters={"name": name, "yaml_text": yaml_text, "source": source,
                                               "store_url": store_url, "dry_run": dry_run, "in_doubt": "ask"},
                        print_starting_message=False)
    return 0
