"""``sdl``, the command line: ``parser`` reads arguments and maps errors to one line and an exit code, ``commands`` does each sub-command's work."""

from orchestrator.cli.parser import main

__all__ = ["main"]
