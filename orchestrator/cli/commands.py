"""What each ``sdl`` sub-command does; ``orchestrator.cli`` parses and maps errors."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from instruments.errors import InstrumentError
from orchestrator.cli.output import fmt_value
from orchestrator.errors import CampaignStateError, OrchestratorError, UsageError
from orchestrator.prefect.handover import Opened, handed_over, without_password
from orchestrator.run.campaign import checked_reason, changed_file_error
from orchestrator.run.consumables import campaign_deck, deck_line, deck_plans, parse_levels, record_refill
from orchestrator.run.plate_handoff import plate_left_in_reader
from orchestrator.run.progress import LineProgress, TerminalProgress, show_progress
from orchestrator.spec.instrument_checks import read_deck
from orchestrator.spec.loader import load_spec, parse_spec, spec_hash
from orchestrator.spec.schema import CampaignSpec
from orchestrator.store.bundle import read_bundle
from orchestrator.store.campaign_store import CampaignInfo, CampaignStore, default_report_dir
from orchestrator.store.lease import refuse_if_held


def cmd_run(args: argparse.Namespace) -> int:
    spec, text = load_spec(args.file)
    read_deck(spec, Path(args.file).resolve().parent, str(args.file))  # files beside it: refused before anything starts
    store = CampaignStore(args.store or spec.store.url)
    print(f"campaign store: {store.display}")
    existing = store.find_campaign(spec.name)
    if existing is not None and existing.status == "completed" and existing.spec_hash == spec_hash(text):
        done = len(store.experiments(existing.id))
        print(f"campaign {spec.name!r} already finished ({done} experiments); nothing to do. "
              f"See: sdl status {spec.name} --store {store.display}")
        return 0
    if existing is not None and existing.spec_hash != spec_hash(text) and store.experiments(existing.id):
        raise changed_file_error(spec.name, store.display)  # refused before starting Prefect
    if existing is not None:  # a second runner is refused before starting Prefect (the flow checks again)
        refuse_if_held(store.lease(existing.id), spec.name)
    drivers = _resolve_drivers(spec, args.dry_run)
    _require_server_for_approval(spec, drivers)
    opened = Opened(text, spec, store, drivers)
    summary = _run_flow(opened, str(Path(args.file).resolve()), args.dry_run)
    _print_summary(spec.name, summary, store)
    return 0


def _resolve_drivers(spec: CampaignSpec, dry_run: bool) -> dict[str, Any] | None:
    """Both roles' drivers, resolved and imported before Prefect starts, so that a driver that cannot be
    used fails first; None for a campaign without instruments (the flow then refuses it)."""
    if spec.instruments is None:
        return None
    # the drivers' modules (httpx and the like) load for the commands that run a campaign, not for sdl status
    from instruments.factory import resolve_role

    drivers = {}
    for role in ("liquid_handler", "spectrometer"):
        try:
            drivers[role] = resolve_role(spec.instruments, role, dry_run)
        except InstrumentError as err:
            raise OrchestratorError(f"instruments.{role}: {err.message}", hint=err.hint) from None
    return drivers


def _require_server_for_approval(spec, drivers: dict[str, Any] | None = None) -> None:
    """A paused campaign is answered from another process: it needs a Prefect server both can reach. So does
    a reader that a person loads (``drivers``' spectrometer class says so), each move confirmed in the dashboard."""
    # Prefect loads here, for the commands that talk to its server
    from orchestrator.prefect.serving import require_api_url

    if spec.approval.mode != "none":
        require_api_url(f"approval: {spec.approval.mode} (the dashboard and sdl approve answer it from outside)")
    reader = (drivers or {}).get("spectrometer", (None, None))[1]
    if getattr(reader, "handoff_confirms_itself", True) is False:
        require_api_url("a plate reader loaded by hand (a person confirms each move of the plate in the dashboard)")


def cmd_resume(args: argparse.Namespace) -> int:
    """Go on with a campaign from the store alone: its stored file, and how it last ran."""
    store = CampaignStore(args.store, must_exist=True)
    print(f"campaign store: {store.display}")
    campaign = store.get_campaign(args.name)
    started = store.events(campaign.id, "campaign_running")
    if not started:
        raise CampaignStateError(f"campaign {args.name!r} never ran a closed loop",
                                 hint="start it with: sdl run FILE [--dry-run]")
    last = started[-1]["detail"] or {}
    if campaign.status == "completed" and not store.experiments(campaign.id, "dispatched"):
        print(f"campaign {args.name!r} already finished; nothing to do. See: sdl status {args.name} --store {store.display}")
        return 0
    refuse_if_held(store.lease(campaign.id), campaign.name)
    spec = parse_spec(campaign.spec_yaml, source=f"stored spec of {campaign.name}")
    dry_run = bool(last.get("dry_run"))
    drivers = _resolve_drivers(spec, dry_run)
    _require_server_for_approval(spec, drivers)
    print(f"resuming {args.name!r} ({'dry run' if dry_run else 'real instruments'}), in-doubt experiments: {args.in_doubt}")
    opened = Opened(campaign.spec_yaml, spec, store, drivers)
    summary = _run_flow(opened, last.get("source"), dry_run, args.in_doubt)
    _print_summary(campaign.name, summary, store)
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    """Resume the paused flow run of campaign ``name`` with a decision, and wait until the flow took it.

    A decision the flow refuses (an edit that breaks a bound or a constraint) is one line naming why,
    and exit status 2; the flow then waits for another answer.
    """
    # Prefect loads here, for the commands that talk to its server
    from orchestrator.prefect.serving import answer_approval

    edits: dict[str, dict] = {}
    for item in args.edit or []:
        experiment, assignment = _parse_edit(item)
        edits.setdefault(experiment, {}).update(assignment)
    decision = "edit" if edits else ("reject" if args.reject else "approve")
    outcome = answer_approval(args.name, {"decision": decision, "note": args.note, "edits": edits})
    print(f"campaign {args.name!r}: {outcome.decision} taken by flow run {outcome.run_id}")
    return 0


def cmd_confirm(args: argparse.Namespace) -> int:
    """Confirm the plate move (into the reader, back to the deck) that campaign ``name``'s paused run waits for."""
    # Prefect loads here, for the commands that talk to its server
    from orchestrator.prefect.serving import confirm_plate_handoff

    run_id, request = confirm_plate_handoff(args.name, args.note, args.move)
    print(f"campaign {args.name!r}: confirmed to flow run {run_id}: {request}")
    return 0


def _parse_edit(item: str) -> tuple[str, dict]:
    """``"12:red=40"`` -> ``("12", {"red": 40.0})``; a value that is not a number stays text."""
    experiment, _, assignment = item.partition(":")
    name, _, value = assignment.partition("=")
    if not experiment.strip().isdigit() or not name.strip() or not value.strip():
        raise UsageError(f"--edit {item!r} is not ID:PARAM=VALUE", hint="e.g. --edit 12:red=40")
    try:
        parsed: object = int(value) if value.strip().lstrip("-").isdigit() else float(value)
    except ValueError:
        parsed = value.strip()
    return experiment.strip(), {name.strip(): parsed}


def cmd_refill(args: argparse.Namespace) -> int:
    """Record that tip racks were replaced or reservoir wells topped up; the next batch counts from there."""
    store = CampaignStore(args.store, must_exist=True)
    campaign = store.get_campaign(args.name)
    instruments = _instruments(campaign)
    handler, cuvette = instruments.liquid_handler, instruments.spectrometer.cuvette  # a cuvette's rinse solvent too
    racks = ["small", "large"] if "all" in args.tips else list(args.tips)
    deck = campaign_deck(handler, deck_plans(store, campaign.id)[0]) if args.rack else None
    detail = record_refill(store, campaign, handler, racks, parse_levels(args.stock, handler, cuvette), args.rack, deck)
    print(f"campaign {campaign.name!r}: refill recorded after iteration {detail['after_iteration']}")
    print(deck_line(store, campaign, handler, cuvette))
    return 0


def cmd_void(args: argparse.Namespace) -> int:
    """Void experiment ``args.experiment`` of campaign ``args.name``: kept with the reason, no longer learned from."""
    store = CampaignStore(args.store, must_exist=True)
    campaign = store.get_campaign(args.name)
    ours = {e.id: e for e in store.experiments(campaign.id)}
    if args.experiment not in ours:
        raise UsageError(f"campaign {campaign.name!r} has no experiment {args.experiment}",
                         hint=f"see its experiments with: sdl status {campaign.name}")
    voided = store.void(args.experiment, checked_reason(args.reason, "sdl void --reason"))
    print(f"campaign {campaign.name!r}: experiment {ours[voided.id].number} (store id {voided.id}) voided "
          f"({args.reason}); the planner no longer learns from it, and its record stays in the store")
    return 0


def _instruments(campaign: CampaignInfo) -> Any:
    """The campaign's instruments section; ``UsageError`` when it has none (an ask/tell campaign)."""
    spec = parse_spec(campaign.spec_yaml, source=f"stored spec of {campaign.name}")
    if spec.instruments is None:
        raise UsageError(f"campaign {campaign.name!r} has no liquid handler, so no tips or reagent stock to refill",
                         hint="refills are for campaigns with an instruments section")
    return spec.instruments


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the campaign's flow as a deployment; trigger it from the dashboard or the API."""
    # Prefect loads here, for the commands that talk to its server
    from orchestrator.prefect.serving import serve_campaign

    spec, text = load_spec(args.file)
    store = CampaignStore(args.store or spec.store.url)
    return serve_campaign(spec.name, text, str(Path(args.file).resolve()), store.url, args.dry_run)


def _print_summary(name: str, summary: dict, store: CampaignStore) -> None:
    best = summary["best"]
    counts = ", ".join(f"{n} {status}" for status, n in summary.get("by_status", {}).items())
    print(f"campaign {name!r} finished: {summary['experiments']} experiments" + (f" ({counts})" if counts else ""))
    if summary.get("pareto_front"):
        print(f"Pareto front: {summary['pareto_front']} experiments (the report shows them all); "
              "of them, the best on the first objective:")
    if best:
        shown = ", ".join(f"{k}={fmt_value(v)}" for k, v in best["params"].items())
        print(f"best: experiment {best['number']} (store id {best['id']}): {shown} -> " + ", ".join(f"{k}={fmt_value(v)}" for k, v in best["values"].items()))
    if summary.get("report"):
        print(f"report: {summary['report']}")
    campaign = store.find_campaign(name)
    left = plate_left_in_reader(store, campaign.id) if campaign is not None else None
    if left:  # a reader loaded by hand: the person carried the last plate in, and nothing asks for it back
        print(left)
    print(f"next: sdl status {name} --store {store.display}")


def _run_flow(opened: Opened, source: str | None, dry_run: bool, in_doubt: str = "ask") -> dict:
    """Run the campaign flow on what this command has opened (the flow takes it over instead of opening
    its own); on a terminal, with a live progress bar instead of Prefect's INFO lines. The flow's
    parameters, which Prefect keeps and shows, name the store without its password."""
    interactive = sys.stderr.isatty() and sys.stdout.isatty()
    if interactive:  # the bar and Prefect's console lines would overwrite each other
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    _say("loading Prefect and the planner ...")
    # Prefect loads here, for the commands that run a flow
    from orchestrator.prefect.flows import campaign_flow
    from orchestrator.prefect.temporary_server import temporary_server_needed, tie_temporary_server_to_this_process

    tie_temporary_server_to_this_process()
    if temporary_server_needed():
        _say("starting a Prefect server for this run (10-30 s; set PREFECT_API_URL to use one already running) ...")

    def run() -> dict:
        with handed_over(opened):
            return campaign_flow(name=opened.spec.name, yaml_text=opened.yaml_text, source=source,
                                 store_url=without_password(opened.store.url), dry_run=dry_run, in_doubt=in_doubt)

    if not interactive:
        with show_progress(LineProgress()):
            return run()
    with TerminalProgress() as bar, show_progress(bar):
        return run()


def _say(line: str) -> None:
    """What ``sdl run`` is doing before its flow's first step, on standard error with the progress lines."""
    print(line, file=sys.stderr, flush=True)


def cmd_dashboard(args: argparse.Namespace) -> int:
    # Prefect loads here, for the commands that talk to its server
    from orchestrator.prefect.dashboard import serve_dashboard
    from orchestrator.store.campaign_store import DEFAULT_STORE_PATH

    # the reports of the store named, or of this folder's default store when there is one (none is created)
    store = CampaignStore(args.store, must_exist=True) if args.store or DEFAULT_STORE_PATH.exists() else None
    return serve_dashboard(args.host, args.port, store, args.reports_port)


def cmd_replay(args: argparse.Namespace) -> int:
    """Check the bundle and every record it holds, re-propose every batch, print a table; exit 1 when a
    proposal differs. A replay opens no store: a warm start's data come from the bundle."""
    # the planner loads for a replay only (the store's commands do without)
    from orchestrator.cli.replay import HEADER, replay, replay_inputs, row, summary

    bundle = read_bundle(Path(args.bundle))
    inputs = replay_inputs(bundle)  # every record checked before the first line: bad input prints one line only
    print(f"replaying campaign {inputs.spec.name!r} from {args.bundle}: "
          f"{len(bundle.metadata['files'])} file checksums ok")
    if inputs.warm_start_note:
        print(inputs.warm_start_note)
    _say("re-proposing every batch (the model fitted again for each), one row as each is checked ...")
    print(HEADER)
    results = []
    for result in replay(inputs):
        results.append(result)
        print(row(result), flush=True)
    print(summary(results))
    return 0 if all(r.identical for r in results) else 1


def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML report of one campaign (and its figures) and print the path of the page."""
    store = CampaignStore(args.store, must_exist=True)
    campaign = store.get_campaign(args.name)  # an unknown name fails here, before the plotting imports
    _say("loading the plotting libraries and the planner's model (torch) ...")
    # matplotlib and the planner's model (torch) load for a report only
    from orchestrator.report import build_report

    out_dir = Path(args.output) if args.output else default_report_dir(campaign)
    _say(f"building the report of {args.name!r}: fitting the model, drawing every section's figures ...")
    index = build_report(store, args.name, out_dir).resolve()
    store.keep_report(campaign.id, index.read_text(encoding="utf-8"))  # what sdl dashboard serves to any PC
    _say(f"report of {args.name!r} written to {out_dir}")
    print(index)
    return 0
