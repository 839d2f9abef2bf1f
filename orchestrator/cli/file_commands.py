"""The ``sdl`` commands that read a campaign file and nothing else: ``validate``, ``deck`` and ``deploy``.

Kept apart from ``orchestrator.cli.commands`` so that they load no instrument driver and no planner (and
validate and deck no campaign store: deploy parses a store's URL): each answers in well under a second
(``bench/cli_latency.py``).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from orchestrator.errors import SpecError, UsageError
from orchestrator.run.spectra_analysis import build_target
from orchestrator.spec.instrument_checks import read_deck
from orchestrator.spec.loader import load_spec
from orchestrator.spec.measurement import measuring_slots
from orchestrator.spec.schema import CampaignSpec


def cmd_validate(args: argparse.Namespace) -> int:
    spec, _ = checked_campaign_file(args.file)
    print(f"{args.file}: ok: campaign {spec.name!r}, {len(spec.parameters)} parameter(s), "
          f"{spec.budget.experiments} experiments in batches of {spec.budget.batch_size}")
    return 0


def checked_campaign_file(path: str) -> tuple[CampaignSpec, str]:
    """The campaign file at ``path`` checked as a run checks it before its first step (its spec and text): the
    schema, then the files it names beside it (a target spectrum, custom labware, offsets), read now."""
    spec, text = load_spec(path)
    folder = Path(path).resolve().parent
    for entry in spec.analysis:
        if entry.target is not None and entry.target.csv is not None:
            try:
                build_target(entry, spec, folder, None)
            except SpecError as err:
                raise SpecError(err.problems, source=str(path)) from None
    read_deck(spec, folder, str(path))
    return spec, text


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
    # the store's URL parsing and the project file's YAML load for sdl deploy, not for sdl validate
    from orchestrator.store.campaign_store import default_store_url
    from orchestrator.prefect.project_file import (  # plain YAML writing: no Prefect import
        FLOW_NAME, checked_pool_name, checked_project_file, deployable_store_url, deployment_entry, refuse_templates,
        write_deployment,
    )

    spec, text = checked_campaign_file(args.file)
    pool = checked_pool_name(args.pool)
    project_file = checked_project_file(args.prefect_file)
    store_url, password_left_out = deployable_store_url(args.store or spec.store.url or default_store_url())
    source = Path(args.file).resolve()
    workdir = Path(args.workdir or project_file.parent).resolve()
    refuse_templates(campaign_file=text, work_pool_name=pool, campaign_file_path=str(source),
                     working_folder=str(workdir), store_url=store_url)
    entry = deployment_entry(spec.name, text, str(source), store_url, args.dry_run, pool, workdir)
    done = write_deployment(project_file, entry)
    print(f"{args.prefect_file}: {done} deployment {FLOW_NAME}/{spec.name} for work pool {pool!r} "
          f"({'dry run' if args.dry_run else 'real instruments'}; store {store_url}); its runs work in {workdir}, "
          "which must exist on the worker's PC")
    if spec.instruments is not None or spec.analysis:
        print(f"files the campaign names beside it (custom labware, offsets, a target spectrum) are read from "
              f"{source.parent} there too")
    if password_left_out:
        print("the store's password is not written there: give it on each worker's PC through PGPASSWORD or ~/.pgpass")
    quoted_pool, deployment = shlex.quote(pool), shlex.quote(f"{FLOW_NAME}/{spec.name}")
    print(f"next, with PREFECT_API_URL set (sdl dashboard prints it), in {shlex.quote(str(project_file.parent))}:\n"
          f"  prefect work-pool create {quoted_pool} --type process     # once per pool\n"
          f"  prefect worker start --pool {quoted_pool}                  # on the PC that drives the instruments\n"
          f"  prefect deploy --name {spec.name} --no-prompt" + ("" if project_file.name == "prefect.yaml" else
                                                               f" --prefect-file {shlex.quote(str(project_file))}") +
          f"\n  prefect deployment run {deployment}")
    return 0
