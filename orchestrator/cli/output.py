"""How the commands write what they give: into a file or to standard output, and a value as a table cell."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_print(text: str, output: str | None, said: str) -> None:
    """``text`` into the file ``output`` (then print ``said``), or to standard output when ``output`` is None."""
    if output:
        Path(output).write_text(text, encoding="utf-8")
        print(said)
    else:
        sys.stdout.write(text)


def fmt_value(value: object) -> str:
    """A table cell: '-' for nothing, 4 significant digits for a float, else the value as text."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
