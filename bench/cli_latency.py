"""Wall time of the quick ``sdl`` commands against ``python -c pass``, measured in the same run.

``sdl validate``, ``sdl status`` (the table, and one campaign with instruments) and ``sdl export`` should answer at once: each under 1 s above the
baseline of starting Python itself. The store they read is made here with the Python API (no robot).
Each command runs once unmeasured first, with a bytecode cache of its own (``PYTHONPYCACHEPREFIX``):
a warm machine, as a user's is after the first command, even where ``PYTHONDONTWRITEBYTECODE`` is set.

    python3 -m uv run --frozen python bench/cli_latency.py [--runs 7] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LIMIT_ABOVE_BASELINE_S = 1.0  # issue 31: each quick command under 1 s above python -c pass


def make_store(url: str) -> str:
    """A small campaign store: the colour-match demo's campaign (with its instruments section) and 4 measurements
    added through the Python API (no robot). Returns the campaign's name."""
    from orchestrator import Campaign

    campaign = Campaign.from_yaml(REPO / "campaigns" / "colour_match.yaml", store=url)
    for red in (10.0, 20.0, 30.0, 40.0):
        campaign.add({"red": red, "yellow": 20.0, "blue": 30.0}, {"distance": red / 100})
    return campaign.spec.name


def median_walls_s(commands: dict[str, list[str]], runs: int, env: dict[str, str]) -> dict[str, float]:
    """Median wall time [s] of ``runs`` runs of each command, run in turn (one of each per round: a drift in the
    machine's speed touches all alike), after one unmeasured round (it fills the bytecode cache)."""
    times: dict[str, list[float]] = {label: [] for label in commands}
    for round_ in range(runs + 1):
        for label, argv in commands.items():
            started = time.perf_counter()
            subprocess.run(argv, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if round_:
                times[label].append(time.perf_counter() - started)
    return {label: statistics.median(seconds) for label, seconds in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="measured runs per command (the median is printed)")
    parser.add_argument("--quick", action="store_true", help="3 runs each, for a test that the script works")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        name = make_store(url)
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"),
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        sdl = [sys.executable, "-m", "orchestrator.cli"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "sdl validate": [*sdl, "validate", "campaigns/colour_match.yaml"],
            "sdl status": [*sdl, "status", "--store", url],
            "sdl status NAME": [*sdl, "status", name, "--store", url],
            "sdl export": [*sdl, "export", name, "--store", url],
        }
        medians = median_walls_s(commands, runs, env)
    baseline = medians["python -c pass"]
    print(f"median wall time of {runs} runs each (a warm bytecode cache), against python -c pass")
    print(f"{'command':<18} {'wall [s]':>9} {'above baseline [s]':>19}  under {LIMIT_ABOVE_BASELINE_S:g} s above")
    for label, seconds in medians.items():
        above = seconds - baseline
        verdict = "" if label == "python -c pass" else ("yes" if above < LIMIT_ABOVE_BASELINE_S else "NO")
        print(f"{label:<18} {seconds:>9.3f} {above:>19.3f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
