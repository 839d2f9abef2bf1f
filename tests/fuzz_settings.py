"""The hypothesis profile every fuzz module uses, and how many examples each test makes.

Reproducible (derandomized, no example database), no per-example deadline (the first
example pays for imports). ``SDL_FUZZ_SCALE`` multiplies every count;
``SDL_FUZZ_NO_SHRINK=1`` reports failures without shrinking them.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings

settings.register_profile(
    "sdl-fuzz", deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FUZZ_SCALE = float(os.environ.get("SDL_FUZZ_SCALE", "1"))
QUICK_SHARE = 5  # the default run makes a fifth of the examples; the slow run (-m slow) all of them


def examples(n: int, **more: Any) -> settings:
    """The fuzz profile with ``n`` examples (times ``SDL_FUZZ_SCALE``)."""
    if os.environ.get("SDL_FUZZ_NO_SHRINK"):
        more["phases"] = (Phase.explicit, Phase.reuse, Phase.generate)
    return settings(settings.get_profile("sdl-fuzz"), max_examples=max(1, int(n * FUZZ_SCALE)), **more)
