"""The single-objective acquisition functions a campaign can pick (``planner.acquisition``), in one place.

Each name comes with the line that describes it and the name of the function in
``orchestrator.planning.acquisition`` that builds it. The campaign schema takes its choices and
their description from here, and ``acquisition.make_acquisition`` dispatches through it; this
module imports no torch, so validating a campaign file does not either.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AcquisitionChoice:
    """One value of ``planner.acquisition``.

    Attributes:
        name: what the campaign file writes, e.g. ``qLogEI``.
        description: how it picks the incumbent, in a few words (for the schema's description).
        builder: the function in ``orchestrator.planning.acquisition`` that builds it, called as
            ``builder(problem, model, X_pending, sampler, objective, constraints)``.
    """

    name: str
    description: str
    builder: str


ACQUISITION_CHOICES: dict[str, AcquisitionChoice] = {choice.name: choice for choice in (
    AcquisitionChoice("qLogEI", "the best predicted value so far as the incumbent", "_log_ei"),
    AcquisitionChoice("qLogNEI", "a sampled incumbent", "_log_nei"),
)}
#: The names, in the order the schema lists them.
ACQUISITIONS = tuple(ACQUISITION_CHOICES)
#: The one a campaign gets when it names none.
DEFAULT_ACQUISITION = "qLogEI"


def describe_choices() -> str:
    """``"qLogEI (...) or qLogNEI (...)"``: every choice with its description, for the schema."""
    described = [f"{c.name} ({c.description})" for c in ACQUISITION_CHOICES.values()]
    return ", ".join(described[:-1]) + " or " + described[-1] if len(described) > 1 else described[0]
