"""The ``sdl`` commands that only read a campaign store: ``status`` and ``export``.

Kept apart from ``orchestrator.cli.commands`` so that they load the store (SQLAlchemy) and a stored
file's few fields (``orchestrator.spec.stored``), and neither the whole campaign schema, nor the
planner, nor Prefect: each answers in well under a second (``bench/cli_latency.py``). The view of one
campaign (``sdl status NAME``) reads its whole stored file for the deck line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from orchestrator.cli.output import fmt_value, write_or_print
from orchestrator.errors import SpecError
from orchestrator.run.best import best_measured, pareto_front
from orchestrator.spec.stored import read_stored_fields
from orchestrator.store.campaign_store import DEFAULT_STORE_PATH, CampaignInfo, CampaignStore
from orchestrator.store.lease import Lease
from orchestrator.store.tables import utcnow
from orchestrator.store.export import experiment_rows, to_csv, to_json, write_parquet, write_protocols


def cmd_status(args: argparse.Namespace) -> int:
    """Table of the store's campaigns, or one campaign; reads a store and never creates one.

    A ``--store`` SQLite file that is not there is a ``StoreError`` (exit 2), as for ``export``; without
    ``--store``, a missing default store means nothing has run in this folder yet: a note, exit 0.
    """
    if not args.store and not args.name and not DEFAULT_STORE_PATH.exists():
        print(f"no campaign has been run here yet: there is no store at {DEFAULT_STORE_PATH.resolve()}; "
              "start one with: sdl run FILE --dry-run, or read another store with: sdl status --store URL")
        return 0
    store = CampaignStore(args.store, must_exist=True)
    # a pipe or file gets the tables whole (one line per row, for grep), a terminal at least 100 columns
    console = Console(width=max(100, Console().width)) if sys.stdout.isatty() else Console(width=10_000)
    if args.name:
        _show_campaign(console, store, store.get_campaign(args.name))
        return 0
    campaigns = store.campaigns()
    if not campaigns:
        print(f"no campaigns in {store.display} yet; start one with: sdl run FILE --dry-run")
        return 0
    table = Table(title=f"campaigns in {store.display}")
    for column in ("campaign", "status", "measured", "failed", "budget", "best"):
        table.add_column(column)
    for c in campaigns:
        status = _shown_status(c, _runner_gone(store, c))
        try:
            table.add_row(c.name, status, *_counts(store, c))
        except SpecError:  # stored by a version that checked less; its own line says why, the others still show
            table.add_row(c.name, status, "?", "?", "?", f"sdl status {c.name}: its stored file is refused")
    console.print(table)
    return 0


def _runner_gone(store: CampaignStore, campaign: CampaignInfo) -> Lease | None:
    """The lapsed lease of a campaign stored as running: its runner died (kill -9, a power cut, a worker's PC
    gone) without saying so; None when its runner is alive, or the campaign is not running."""
    if campaign.status != "running":
        return None
    lease = store.lease(campaign.id)
    return lease if lease is not None and lease.lapsed(utcnow()) else None


def _shown_status(campaign: CampaignInfo, gone: Lease | None) -> str:
    """The stored status, or ``crashed`` for a running campaign whose runner is ``gone`` (``_runner_gone``)."""
    return "crashed (runner gone)" if gone is not None else campaign.status


def _counts(store: CampaignStore, campaign: CampaignInfo) -> tuple[str, str, str, str]:
    """(measured, failed, budget, best) of ``campaign``, as table cells."""
    fields = read_stored_fields(campaign.spec_yaml, source=f"stored spec of {campaign.name}")
    experiments = store.experiments(campaign.id)
    objective, outcome_constraints = fields.objectives[0], fields.parsed_outcome_constraints
    top = best_measured(experiments, objective, outcome_constraints)
    best = f"{objective.name}={fmt_value(top.values[objective.name])}" if top else "-"
    if top and len(fields.objectives) > 1:
        best += f" (Pareto front: {len(pareto_front(experiments, fields.objectives, outcome_constraints))})"
    measured = sum(e.status == "measured" for e in experiments)
    failed = sum(e.status == "failed" for e in experiments)
    return str(measured), str(failed), str(fields.budget_experiments), best


def _show_campaign(console: Console, store: CampaignStore, campaign: CampaignInfo) -> None:
    measured, failed, budget, best = _counts(store, campaign)
    gone = _runner_gone(store, campaign)
    console.print(f"[bold]{campaign.name}[/bold] ({_shown_status(campaign, gone)}) in {store.display}")
    console.print(f"measured {measured}, failed {failed}, budget {budget}, best {best}; spec sha256 {campaign.spec_hash[:12]}")
    if gone is not None:
        console.print(f"its runner ({gone.describe()}) stopped without a word: go on with: sdl resume "
                      f"{campaign.name} --store {store.display} (or run its deployment again)", markup=False)
    if campaign.status in ("interrupted", "failed"):
        console.print(f"its last run was {campaign.status} before the end; go on with: sdl resume {campaign.name}"
                      f" --store {store.display}", markup=False)
    if read_stored_fields(campaign.spec_yaml, source=f"stored spec of {campaign.name}").instruments:
        _show_deck(console, store, campaign)
    in_doubt = store.experiments(campaign.id, "dispatched")
    if in_doubt:
        console.print(f"{len(in_doubt)} experiment(s) dispatched and not measured yet (numbers "
                      f"{', '.join(str(e.number) for e in in_doubt)}); if the campaign is not running any more they are "
                      f"in doubt: settle them with: sdl resume {campaign.name}")
    columns, rows = experiment_rows(store, campaign)
    table = Table()
    shown = [c for c in columns if c not in ("sequence", "created_at", "dispatched_at")]
    for column in shown:
        table.add_column(column)
    for row in rows:
        table.add_row(*(fmt_value(row[c]) for c in shown))
    console.print(table)


def _show_deck(console: Console, store: CampaignStore, campaign: CampaignInfo) -> None:
    """The deck line (tips and stock left) and a plate left in a reader loaded by hand, of a campaign with instruments."""
    # the whole schema and the deck ledger load for a campaign with instruments, not for an ask/tell one
    from orchestrator.run.consumables import deck_line
    from orchestrator.run.plate_handoff import plate_left_in_reader
    from orchestrator.spec.loader import parse_spec

    instruments = parse_spec(campaign.spec_yaml, source=f"stored spec of {campaign.name}").instruments
    if instruments.liquid_handler is not None:
        console.print(deck_line(store, campaign, instruments.liquid_handler, instruments.spectrometer.cuvette),
                      markup=False)
    left = plate_left_in_reader(store, campaign.id)
    if left:
        console.print(left, markup=False)


def cmd_export(args: argparse.Namespace) -> int:
    if args.format == "parquet" and not args.output:
        print("sdl export: error: --format parquet writes a binary file; give -o FILE", file=sys.stderr)
        return 2
    store = CampaignStore(args.store, must_exist=True)
    campaign = store.get_campaign(args.name)
    columns, rows = experiment_rows(store, campaign)
    if args.protocols:
        written = write_protocols(store, campaign, Path(args.protocols))
        print(f"wrote {len(written)} protocols to {args.protocols}", file=sys.stderr)
    if args.bundle:
        # the bundle's writer reads the whole stored file (and a warm start's store): loaded for --bundle only
        from orchestrator.store.bundle import WARM_START, write_bundle

        files = write_bundle(store, campaign, Path(args.bundle))
        carried = f", with the warm start's earlier data in {WARM_START}" if WARM_START in files else ""
        print(f"wrote bundle of {len(rows)} experiments ({len(files)} files{carried}) to {args.bundle}; "
              f"check it with: sdl replay {args.bundle}", file=sys.stderr)
    if (args.protocols or args.bundle) and not args.output:  # files were asked for; standard output stays empty
        return 0
    if args.format == "parquet":
        write_parquet(columns, rows, Path(args.output))
        print(f"wrote {len(rows)} experiments to {args.output}")
        return 0
    text = to_csv(columns, rows) if args.format == "csv" else to_json(columns, rows) + "\n"
    write_or_print(text, args.output, f"wrote {len(rows)} experiments to {args.output}")
    return 0
