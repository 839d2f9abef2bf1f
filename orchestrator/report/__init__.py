"""Campaign reports: ``build_report(store, name, out_dir)`` writes one self-contained HTML page.

Modules: ``data`` (what is read from the store), ``baseline`` (random search and the known
optimum), ``model`` (the GP and its LOO), ``pareto``, the section modules, ``html`` and
``plotting`` (Agg figures to PNG), and ``build`` (the page).
"""

from orchestrator.report.build import SECTION_IDS, build_report

__all__ = ["SECTION_IDS", "build_report"]
