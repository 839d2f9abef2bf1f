"""The ``sdl`` commands that read a campaign file and nothing else: ``validate``, ``deck`` and ``deploy``.

Kept apart from ``orchestrator.cli.commands`` so that they load no campaign store (SQLAlchemy), no
instrument driver and no planner: each answers in well under a second (``bench/cli_latency.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.errors import SpecError, UsageError
from orchestrator.run.spectra_analysis import build_target
from orchestrator.spec.instrument_checks import read_deck
from orchestrator.spec.loader import load_spec
from orchestrator.spec.measurement import measuring_slots


def cmd_validate(args: argparse.Namespace) -> int:
    spec, _ = load_spec(args.file)
    for entry in spec.analysis:  # a target spectrum file is read now, as a run reads it before its first step
        if entry.target is not None and entry.target.csv is not None:
            try:
                build_target(entry, spec, Path(args.file).resolve().parent, None)
            except SpecError as err:
                raise SpecError(err.problems, source=str(args.file)) from None
    read_deck(spec, Path(args.file).resolve().parent, str(args.file))
    print(f"{args.file}: ok: campaign {spec.name!r}, {len(spec.parameters)} parameter(s), "
          f"{spec.budget.experiments} experiments in batches of {spec.budget.batch_size}")
    return 0


def cmd_deck(args: argparse.Namespace) -> int:
    """Print the deck map of a campaign file (its custom labware and offsets files read and checked)."""
    # the deck map's module comes with the report package and the store, which sdl validate does without
    from orchestrator.report.deck_map import deck_map

    spec, _ = load_spec(args.file)
    deck = read_deck(spec, Path(args.file).resolve().parent, str(args.file))
    if deck is None:
        raise UsageError(f"{args.file}: campaign {spec.name!r} has no instruments section, so no deck",
                         hint="a deck comes with instruments.liquid_handler")
    print(deck_map(deck, measuring_slots(spec.instruments.spectrometer)))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """Add the campaign to ``prefect.yaml`` as a deployment for a work pool; print how to deploy and run it."""
    # SQLAlchemy (a store URL checked) and the store module load for sdl deploy, not for sdl validate
    from sqlalchemy.exc import ArgumentError
    from orchestrator.store.campaign_store import default_store_url
    from orchestrator.prefect.project_file import (  # plain YAML writing: no Prefect import
        FLOW_NAME, checked_pool_name, deployable_store_url, deployment_entry, write_deployment,
    )

    spec, text = load_spec(args.file)
    pool = checked_pool_name(args.pool)
    read_deck(spec, Path(args.file).resolve().parent, str(args.file))  # a run reads them too: refused now, not there
    try:
        store_url, password_left_out = deployable_store_url(args.store or spec.store.url or default_store_url())
    except ArgumentError:
        raise UsageError(f"--store {args.store!r} is not a database URL",
                         hint="give an SQLAlchemy URL, e.g. sqlite:///runs/sdl.db or postgresql://lab@db-pc/sdl") from None
    project_file = Path(args.prefect_file)
    workdir = Path(args.workdir or project_file.resolve().parent).resolve()
    entry = deployment_entry(spec.name, text, str(Path(args.file).resolve()), store_url, args.dry_run, pool, workdir)
    done = write_deployment(project_file, entry)
    print(f"{project_file}: {done} deployment {FLOW_NAME}/{spec.name} for work pool {pool!r} "
          f"({'dry run' if args.dry_run else 'real instruments'}; store {store_url}; its runs work in {workdir}, "
          "which must exist on the worker's PC)")
    if password_left_out:
        print("the store's password is not written there: give it on each worker's PC through PGPASSWORD or ~/.pgpass")
    folder = project_file.resolve().parent
    print(f"next, with PREFECT_API_URL set (sdl dashboard prints it), in {folder}:\n"
          f"  prefect work-pool create {pool} --type process     # once per pool\n"
          f"  prefect worker start --pool {pool}                  # on the PC that drives the instruments\n"
          f"  prefect deploy --name {spec.name} --no-prompt\n"
          f"  prefect deployment run '{FLOW_NAME}/{spec.name}'")
    return 0
