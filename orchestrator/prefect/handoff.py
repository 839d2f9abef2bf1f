"""The flow's side of a plate hand-off: a pause that a person answers in the dashboard.

A reader that a person loads (``orchestrator.run.plate_handoff``) asks, before each read, "put plate P1
in the reader ..., then confirm". In the flow that request pauses the run, as an approval does
(``approval.wait_for_person``), with a ``PlateMoved`` form whose description is the request: a person
moves the plate and submits the form (the dashboard's Resume, or ``sdl confirm NAME``). The
wait is the campaign's ``approval`` settings (``timeout_hours``, ``poll_seconds``); when nobody confirms
by then the loop stops with nothing lost and ``sdl resume`` asks again.
"""

from __future__ import annotations

from typing import Callable

from prefect import get_run_logger
from prefect.input import RunInput

from orchestrator.prefect.approval import wait_for_person
from orchestrator.run.campaign import Campaign
from orchestrator.run.plate_handoff import HANDOFF_KEY_PREFIX, ConfirmHandoff, handoff_step

__all__ = ["HANDOFF_KEY_PREFIX", "PlateMoved", "asking_in_the_dashboard"]


class PlateMoved(RunInput):
    """The hand-off form: submit it once the plate is where the request above it says. ``note`` is logged."""

    note: str = ""


def asking_in_the_dashboard(campaign: Campaign, announce: Callable[[str], None]) -> ConfirmHandoff:
    """The flow's ``CampaignRunner.confirm_handoff``: pause until a person confirms; ``announce(line)`` tells
    the terminal what the run waits for."""

    def confirm(key: str, request: str) -> bool:
        # --move: a confirmation typed twice is refused by the next request, which asks for another move
        command = f"sdl confirm {campaign.spec.name} --move {handoff_step(key)}"
        announce(f"waiting for a person: {request} (in the dashboard, or: {command})")
        logger = get_run_logger()
        logger.warning("plate hand-off: %s (submit the form in the dashboard, or: %s)", request, command)
        answer = wait_for_person(PlateMoved.with_initial_data(description=request), key, campaign.spec.approval)
        if answer is not None:
            logger.info("plate hand-off confirmed%s", f": {answer.note}" if answer.note else "")
        return answer is not None

    return confirm
