"""Plugins found through Python entry points, by name, with the names no plugin may use.

Both plugin kinds (instrument drivers, ``sdl.instruments``; mechanistic prior means,
``sdl.prior_means``) follow one rule: a plugin cannot take a built-in's name (the built-in
keeps working), and two plugins with one name are neither used. Each such name gets one
line saying why, for the user who names it.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, Collection


def source_of(entry: Any) -> str:
    """The distribution that installed ``entry``."""
    return entry.dist.name if entry.dist is not None else "an unknown distribution"


def describe(entry: Any, kind: str) -> str:
    """``plugin KIND 'name' (module:target from distribution)``: how the messages name a plugin."""
    return f"plugin {kind} {entry.name!r} ({entry.value} from {source_of(entry)})"


def named_entry_points(group: str, built_in: Collection[str], kind: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The installed entry points of ``group`` by name, and a one-line problem per name that cannot be used.

    ``built_in``: names taken by built-ins; ``kind``: what the messages call the plugin
    (e.g. "driver").
    """
    found: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for entry in importlib.metadata.entry_points(group=group):
        where = describe(entry, kind)
        if entry.name in built_in:
            problems[entry.name] = f"{where} clashes with the built-in {kind} of that name; rename its entry point"
        elif entry.name in found or entry.name in problems:
            found.pop(entry.name, None)  # two plugins, one name: neither is used
            problems[entry.name] = f"{where} clashes with another plugin of that name; rename one entry point"
        else:
            found[entry.name] = entry
    return found, problems
