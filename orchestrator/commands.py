"""What each ``sdl`` sub-command does; ``orchestrator.cli`` parses and maps errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from orchestrator.export import experiment_rows, to_csv, to_json, write_protocols
from orchestrator.spec_loader import load_spec, parse_spec, spec_hash
from orchestrator.store import CampaignInfo, CampaignStore


def cmd_validate(args: argparse.Namespace) -> int:
    spec, _ = load_spec(args.file)
    print(f"{args.file}: ok: campaign {spec.name!r}, {len(spec.parameters)} parameter(s), "
          f"{spec.budget.experiments} experiments in batches of {spec.budget.batch_size}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from instruments.registry import load_driver_class, resolve_driver
    from instruments.errors import InstrumentError
    from orchestrator.errors import OrchestratorError

    spec, text = load_spec(args.file)
    store = CampaignStore(args.store or spec.store.url)
    print(f"campaign store: {store.display}")
    existing = store.find_campaign(spec.name)
    if existing is not None and existing.status == "completed" and existing.spec_hash == spec_hash(text):
        done = len(store.experiments(existing.id))
        print(f"campaign {spec.name!r} already finished ({done} experiments); nothing to do. "
              f"See: sdl status {spec.name} --store {store.display}")
        return 0
    if spec.instruments is not None:  # fail before starting Prefect when a driver cannot be used
        for role in ("liquid_handler", "spectrometer"):
            try:
                load_driver_class(resolve_driver(getattr(spec.instruments, role).driver, role, args.dry_run))
            except InstrumentError as err:
                raise OrchestratorError(f"instruments.{role}: {err.message}", hint=err.hint) from None
    from orchestrator.flows import campaign_flow

    summary = campaign_flow(name=spec.name, yaml_text=text, source=str(Path(args.file).resolve()),
                            store_url=store.url, dry_run=args.dry_run)
    best = summary["best"]
    print(f"campaign {spec.name!r} finished: {summary['experiments']} experiments")
    if best:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in best["params"].items())
        print(f"best: experiment {best['id']}: {shown} -> " + ", ".join(f"{k}={_fmt(v)}" for k, v in best["values"].items()))
    print(f"next: sdl status {spec.name} --store {store.display}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    store = CampaignStore(args.store)
    console = Console(width=max(100, Console().width))
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
        table.add_row(c.name, c.status, *_counts(store, c))
    console.print(table)
    return 0


def _counts(store: CampaignStore, campaign: CampaignInfo) -> tuple[str, str, str, str]:
    spec = parse_spec(campaign.spec_yaml, source=f"stored spec of {campaign.name}")
    experiments = store.experiments(campaign.id)
    measured = [e for e in experiments if e.status == "measured"]
    objective = spec.objectives[0]
    best = "-"
    if measured:
        pick = max if objective.direction == "maximize" else min
        best = f"{objective.name}={_fmt(pick(e.values[objective.name] for e in measured))}"
    failed = sum(e.status == "failed" for e in experiments)
    return str(len(measured)), str(failed), str(spec.budget.experiments), best


def _show_campaign(console: Console, store: CampaignStore, campaign: CampaignInfo) -> None:
    measured, failed, budget, best = _counts(store, campaign)
    console.print(f"[bold]{campaign.name}[/bold] ({campaign.status}) in {store.display}")
    console.print(f"measured {measured}, failed {failed}, budget {budget}, best {best}; spec sha256 {campaign.spec_hash[:12]}")
    columns, rows = experiment_rows(store, campaign)
    table = Table()
    shown = [c for c in columns if c not in ("sequence", "created_at", "dispatched_at")]
    for column in shown:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_fmt(row[c]) for c in shown))
    console.print(table)


def cmd_export(args: argparse.Namespace) -> int:
    store = CampaignStore(args.store)
    campaign = store.get_campaign(args.name)
    columns, rows = experiment_rows(store, campaign)
    if args.protocols:
        written = write_protocols(store, campaign, Path(args.protocols))
        print(f"wrote {len(written)} protocols to {args.protocols}", file=sys.stderr)
    text = to_csv(columns, rows) if args.format == "csv" else to_json(columns, rows) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(rows)} experiments to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
