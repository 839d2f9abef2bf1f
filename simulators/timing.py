"""How long the simulated instruments take, in seconds of simulated time.

Durations are plausible for an OT-2/Flex and a fibre spectrometer: they advance the
simulated clock (which drives baseline drift) in every timing mode, and are what the
realistic mode sleeps (times its ``time_scale``).
"""

from __future__ import annotations

TIMING_MODES = ("instant", "realistic")

#: One transfer: pick up a tip, aspirate, move, dispense, drop the tip [s].
TRANSFER_S = 12.0
#: Mixing after the last reagent of a well (three aspirate/dispense cycles) [s].
MIX_S = 6.0
#: Moving the probe or plate to the next well and settling [s].
READ_OVERHEAD_S = 0.5


def transfer_seconds(mix: bool) -> float:
    """Simulated duration [s] of one transfer, with mixing after it when ``mix``."""
    return TRANSFER_S + (MIX_S if mix else 0.0)


def read_seconds(integration_ms: float, averages: int) -> float:
    """Simulated duration [s] of reading one well: every averaged scan plus the move."""
    return integration_ms * averages / 1000.0 + READ_OVERHEAD_S
