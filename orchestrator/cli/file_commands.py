"""The ``sdl`` commands that read a campaign file and nothing else: ``validate`` and ``deck``.

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
