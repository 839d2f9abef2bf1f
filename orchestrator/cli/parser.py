"""``sdl``: validate, run, inspect and export campaigns.

Exit codes: 0 success, 1 the campaign or an instrument failed, 2 bad input (campaign
file, arguments, store URL), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM, as systemd or
``docker stop`` send). Errors are one line each, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
from typing import Callable, Sequence

from instruments.errors import InstrumentError
from instruments.plate_moves import HANDOFF_STEPS
from orchestrator.errors import OrchestratorError, SpecError, StoreDiskError, StoreError, UsageError
from orchestrator.run.stop_request import recording_stops, signal_behind, stop_requested

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2
#: the commands that run a campaign's loop: Ctrl-C and SIGTERM are recorded as a stop (see orchestrator.run.stop_request)
_RUNS_A_CAMPAIGN = ("run", "resume")
#: the module of each command that has one of its own; the others' is ``orchestrator.cli.commands``. A command's
#: module is imported when it runs: sdl validate loads no store, sdl status no planner (bench/cli_latency.py)
_MODULES = {"validate": "file_commands", "deck": "file_commands", "deploy": "file_commands", "schema": "schema", "check": "check",
            "status": "store_commands", "export": "store_commands"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every other bad input
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {_printable(message)} (see {self.prog} --help)\n")


def _printable(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped: an argument may hold them."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sdl", description="Closed-loop experiment campaigns for self-driving labs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    store_help = "SQLAlchemy URL of the campaign store (default: sqlite:///runs/sdl.db)"

    p = sub.add_parser("validate", help="check a campaign file; one line per problem")
    p.add_argument("file")

    p = sub.add_parser("schema", help="write the campaign file's JSON Schema, for editors that check YAML")
    p.add_argument("--output", "-o", metavar="FILE", help="file to write (default: standard output)")

    p = sub.add_parser("deck", help="print the robot's deck a campaign file sets up: slots, pipettes, offsets")
    p.add_argument("file")

    p = sub.add_parser("check", help="connect to each real instrument of a campaign file and print what is "
                                     "attached against what it needs; moves nothing (exit 0: all match, 2: not)")
    p.add_argument("file")

    p = sub.add_parser("run", help="run a campaign's closed loop")
    p.add_argument("file")
    p.add_argument("--dry-run", action="store_true", help="use the simulated twin of every instrument")
    p.add_argument("--store", help=store_help)

    p = sub.add_parser("resume", help="go on with a stopped or crashed campaign; settles in-doubt experiments first")
    p.add_argument("name")
    p.add_argument("--store", help=store_help)
    p.add_argument("--in-doubt", choices=("ask", "measure", "failed"), default="ask",
                   help="experiments dispatched but not measured: ask the robot (default), or say the plate "
                        "was made (measure) or was not (failed)")

    p = sub.add_parser("approve", help="answer a campaign that waits for approval of its batch")
    p.add_argument("name")
    decision = p.add_mutually_exclusive_group(required=True)
    decision.add_argument("--approve", action="store_true", help="make the batch as proposed")
    decision.add_argument("--reject", action="store_true", help="do not make it; the planner proposes again")
    decision.add_argument("--edit", action="append", metavar="ID:PARAM=VALUE",
                          help="change one value of one experiment, then make the batch (repeatable)")
    p.add_argument("--note", default="", help="why; stored with the decision")

    p = sub.add_parser("confirm", help="say the plate was moved, for a campaign that waits for a person to carry it")
    p.add_argument("name")
    p.add_argument("--note", default="", help="stored with the confirmation")
    p.add_argument("--move", choices=HANDOFF_STEPS, required=True,
                   help="the move you made (the run's request names it); refused when the run waits for another, "
                        "so a confirmation sent twice never answers the next request")

    p = sub.add_parser("refill", help="record fresh tip racks or topped-up reservoir wells, before sdl resume")
    p.add_argument("name")
    p.add_argument("--tips", action="append", choices=("small", "large", "all"), default=[],
                   help="every rack of this pipette was replaced with a full one (repeatable)")
    p.add_argument("--rack", action="append", metavar="SLOT", default=[],
                   help="the tip rack in deck slot SLOT was replaced with a full one (repeatable)")
    p.add_argument("--stock", action="append", metavar="REAGENT=UL", default=[],
                   help="the reservoir well of REAGENT now holds UL microlitres (repeatable)")
    p.add_argument("--store", help=store_help)

    p = sub.add_parser("void", help="mark a measured or failed experiment's record as wrong; kept, no longer learned from")
    p.add_argument("name", help="campaign name")
    p.add_argument("experiment", type=int, help="the experiment's store id: the id column of sdl status NAME (not its number)")
    p.add_argument("--reason", required=True, help="why the record is wrong, e.g. 'plate dropped before reading'")
    p.add_argument("--store", help=store_help)

    p = sub.add_parser("serve", help="serve a campaign's flow as a Prefect deployment on this PC")
    p.add_argument("file")
    p.add_argument("--dry-run", action="store_true", help="use the simulated twin of every instrument")
    p.add_argument("--store", help=store_help)

    p = sub.add_parser("deploy", help="add a campaign to prefect.yaml as a deployment run by a work pool's workers")
    p.add_argument("file")
    p.add_argument("--pool", required=True, help="work pool whose workers drive the campaign's instruments, e.g. robot-pc")
    p.add_argument("--dry-run", action="store_true", help="the deployment's runs use the simulated twin of every instrument")
    p.add_argument("--store", help=store_help)
    p.add_argument("--prefect-file", default="prefect.yaml", help="Prefect project file to write (default: prefect.yaml)")
    p.add_argument("--workdir", help="folder the runs work in, on the worker's PC: reports go to runs/reports there "
                   "(default: the project file's folder)")

    p = sub.add_parser("dashboard", help="start the Prefect dashboard on this machine and print its URL")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=4200, help="port (default: 4200)")
    p.add_argument("--store", help="campaign store whose reports are served beside the dashboard (default: "
                   "runs/sdl.db when it exists)")
    p.add_argument("--reports-port", type=int, help="port of the campaign reports (default: the dashboard's port + 1)")

    p = sub.add_parser("status", help="table of campaigns, or one campaign")
    p.add_argument("name", nargs="?")
    p.add_argument("--store", help=store_help)

    p = sub.add_parser("export", help="one row per experiment")
    p.add_argument("name")
    p.add_argument("--format", choices=("csv", "json", "parquet"), default="csv", help="parquet needs -o")
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p.add_argument("--protocols", metavar="DIR", help="also write each iteration's Opentrons protocol and run log here")
    p.add_argument("--bundle", metavar="PATH",
                   help="write a folder (or PATH.zip) with everything to share and replay the run (see sdl replay)")
    p.add_argument("--store", help=store_help)

    p = sub.add_parser("replay", help="re-run the planner over a bundle and check it gives the same proposals")
    p.add_argument("bundle", help="folder or .zip written by sdl export NAME --bundle PATH")

    p = sub.add_parser("report", help="write a self-contained HTML report of one campaign; prints its path")
    p.add_argument("name")
    p.add_argument("--output", "-o", metavar="DIR", help="folder to write index.html and its figures to "
                   "(default: runs/reports/NAME-UID, UID the start of the campaign's identity in its store)")
    p.add_argument("--store", help=store_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # No network in most labs' instrument PCs: Prefect's usage telemetry stays off unless asked for.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # The first start of Prefect's local server migrates its database: slow on a fresh machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    handler = getattr(importlib.import_module(f"orchestrator.cli.{_MODULES.get(args.command, 'commands')}"),
                      f"cmd_{args.command}")
    # Without a handler, SIGTERM ends the process at once: the robot is not told to stop and Prefect's temporary
    # server (a child process) is left running. Every command takes it as Ctrl-C; those that run a campaign record
    # both, and end as stopped whatever became of the stop's exception (sdl dashboard ends well on Ctrl-C).
    runs_a_campaign = args.command in _RUNS_A_CAMPAIGN
    try:
        with recording_stops(*((signal.SIGINT, signal.SIGTERM) if runs_a_campaign else (signal.SIGTERM,))):
            return _unless_stopped(handler, args) if runs_a_campaign else handler(args)
    except StoreDiskError as err:
        print(f"error: {_printable(err.message + _after_full_disk(args))}", file=sys.stderr)
        return EXIT_FAILED
    except SpecError as err:
        for problem in err.problems:
            print(_printable(f"{err.source}: {problem}"), file=sys.stderr)
        return EXIT_BAD_INPUT
    except (StoreError, UsageError) as err:
        print(f"error: {_printable(err.one_line())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (OrchestratorError, InstrumentError) as err:
        cause = err.__cause__
        full = isinstance(cause, OSError) and cause.errno in _DISK_FULL  # e.g. the twins' state beside the store
        print(f"error: {_printable(err.message + _after_full_disk(args) if full else err.one_line())}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:  # e.g. sdl export -o into a folder that does not exist
        where = f": {err.filename}" if err.filename else ""
        if err.errno in _DISK_FULL:
            print(f"error: {_printable(f'the disk is full{where} ({err.strerror})' + _after_full_disk(args))}",
                  file=sys.stderr)
            return EXIT_FAILED
        print(f"error: {_printable(f'{err.strerror or err}{where}')} (check the paths given)", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as stop:  # a command that runs no campaign, or a stop as the handlers were put back
        return _stopped(signal_behind(stop) or signal.SIGINT)


def _unless_stopped(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``handler(args)``'s exit status, or, when a stop was requested meanwhile, the stop's line and status.

    Whatever the handler returned or raised: the stop's own exception may have been swallowed on the
    way (raised inside a finalizer) or replaced by another (a library's clean-up that failed in turn).
    """
    try:
        status = handler(args)
    except BaseException as err:
        signum = stop_requested() or signal_behind(err)
        if signum is None:
            raise
        return _stopped(signum)
    signum = stop_requested()
    return status if signum is None else _stopped(signum)


def _stopped(signum: int) -> int:
    """Say that a stop signal ended the command; its exit status: 128 + the signal's number (130, 143)."""
    said = "terminated" if signum == signal.SIGTERM else "interrupted"
    print(f"{said}: every finished step is in the store", file=sys.stderr)
    return 128 + signum


#: a write refused for want of room: no space, over a quota, past the file size limit
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _after_full_disk(args: argparse.Namespace) -> str:
    """What a command that stopped on a full disk says next: for ``run`` and ``resume``, the campaign's status (marked
    failed here when the run could not write it and there is room for it now) and how to go on."""
    if args.command not in ("run", "resume"):
        return " (free space on that disk, then run the command again)"
    # the store (SQLAlchemy) loads for the commands that open one, not for sdl validate
    from orchestrator.store.campaign_store import CampaignStore
    from orchestrator.store.lease import runs_elsewhere

    try:
        name, url = (args.name, args.store) if args.command == "resume" else _name_and_store(args)
        store = CampaignStore(url, must_exist=True)
        campaign = store.find_campaign(name)
    except (OrchestratorError, OSError):  # the store cannot be read either: the line says what it can
        return " (free space on that disk, then: sdl resume CAMPAIGN)"
    resume = f"sdl resume {name} --store {store.display}"
    if campaign is None:
        return f" (free space on that disk, then: sdl run {args.file} --store {store.display})"
    status = f"; campaign {name!r} is {'marked failed' if campaign.status == 'failed' else campaign.status}"
    if campaign.status == "running" and not runs_elsewhere(store.lease(campaign.id)):  # stopped before it could say so
        try:
            store.set_campaign_status(campaign.id, "failed", reason="the store's disk is full")
            status = f"; campaign {name!r} is marked failed"
        except StoreDiskError:
            status = (f"; campaign {name!r} still reads running (the disk has no room to say otherwise), "
                      "but nothing runs it")
    return f"{status} (free space on that disk, then: {resume})"


def _name_and_store(args: argparse.Namespace) -> tuple[str, str | None]:
    """``sdl run FILE``'s campaign name and store URL (the file was read a moment ago; read again here)."""
    # late: only a full disk during sdl run reads the file again; the quick commands load no spec models here
    from orchestrator.spec.loader import load_spec

    spec, _ = load_spec(args.file)
    return spec.name, args.store or spec.store.url
