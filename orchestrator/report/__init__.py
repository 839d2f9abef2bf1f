"""Campaign reports: ``build_report(store, name, out_dir)`` writes one self-contained HTML page.

Modules: ``data`` (what is read from the store), ``baseline`` (random search and the known
optimum), ``model`` (the GP and its LOO), ``pareto``, the section modules, ``html`` and
``plotting`` (Agg figures to PNG), and ``build`` (the page). ``build_report`` and ``SECTION_IDS`` are
loaded on first use, so ``sdl deck`` and the other quick commands that import ``deck_map`` stay quick.
"""

from typing import Any

__all__ = ["SECTION_IDS", "build_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        # late: the page's model sections import torch and botorch, which a quick command must not load
        from orchestrator.report import build
        return getattr(build, name)
    raise AttributeError(f"module 'orchestrator.report' has no attribute {name!r}")
