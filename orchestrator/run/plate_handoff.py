"""A person carries the plate between the robot's deck and a reader that no gripper reaches.

A reader that declares ``instruments.roles.SupportsPlateHandoff`` is loaded by hand. The runner asks a
person before the reader reads a plate (``before_read``: "put plate P1 in the reader ...") and, while that
plate is still in the reader, before the robot dispenses the next batch (``before_dispense``: the plate
back on the deck, or an empty one in its place when the next batch starts a new plate). Each request goes
to ``CampaignRunner.confirm_handoff(key, request)``, which returns True once a person confirmed and False
when nobody did in time:

- the Prefect flow pauses until someone confirms in the dashboard (``orchestrator.prefect.handoff``);
- the plain loop has nobody to ask (``nobody_to_ask``): such a run is refused before anything moves
  (``check_someone_confirms``), unless a notebook gives its own hook;
- a twin confirms by itself (dry runs run unattended); the request is logged all the same.

Every confirmed move is stored as a ``plate_handoff`` event, so after a restart the loop knows whether the
plate is still in the reader. A request nobody confirms stops the loop with nothing lost: before a read
the batch stays dispatched and ``sdl resume`` reads it (asking again first); before a dispense nothing of
the new batch was dispatched.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from instruments.plate_plan import PlatePlan
from instruments.plate_moves import HANDOFF_STEPS
from instruments.roles import SupportsPlateHandoff
from orchestrator.errors import OrchestratorError

#: event kind of each confirmed move: {"iteration", "step", "plate", "next_plate", "request", "confirmed_by"}
PLATE_HANDOFF = "plate_handoff"
#: the start of every hand-off's key (the flow's pause key; approvals' start with ``approval-``)
HANDOFF_KEY_PREFIX = "handoff-"
#: ``confirm(key, request)`` -> True once a person confirmed ``request``, False when nobody did in time;
#: ``key`` is new for each request (the flow's pause key)
ConfirmHandoff = Callable[[str, str], bool]


def handoff_step(key: str) -> str | None:
    """The move (``HANDOFF_STEPS``) that hand-off key ``key`` (``"handoff-2-return-3"``) asks for; None for
    another key."""
    parts = key.split("-")
    return parts[2] if key.startswith(HANDOFF_KEY_PREFIX) and len(parts) == 4 and parts[2] in HANDOFF_STEPS else None


def plate_left_in_reader(store: Any, campaign_id: int) -> str | None:
    """A line saying that a plate is still in a reader loaded by hand (the last confirmed move put it there), for
    the end of a run and ``sdl status``; None when no plate is there, or only a dry run's simulated one."""
    moves = store.events(campaign_id, PLATE_HANDOFF)
    last = moves[-1]["detail"] if moves else None
    if last is None or last["step"] != "load" or last.get("confirmed_by") == "dry run":
        return None
    return (f"plate {last['plate']} is still in the reader (put there for iteration {last['iteration']}: "
            f"{last['request']}); take it out when the campaign is done")


class HandoffNotConfirmed(OrchestratorError, RuntimeError):
    """Nobody confirmed a move of the plate (or nobody can be asked); the loop stopped with nothing lost."""


def nobody_to_ask(key: str, request: str) -> bool:
    """The plain loop's ``confirm_handoff``: there is no person to ask."""
    raise HandoffNotConfirmed(f"the plate is moved by hand ({request}), and the plain loop has nobody to ask",
                              hint=_HOW_TO_ASK)


_HOW_TO_ASK = ("run the campaign with sdl run, whose flow pauses until someone confirms in the dashboard, "
               "or set CampaignRunner.confirm_handoff")


def check_someone_confirms(runner: Any) -> None:
    """Refuse now, before anything moves, a reader that a person loads when nobody can be asked."""
    reader = runner.instruments.spectrometer
    if isinstance(reader, SupportsPlateHandoff) and not reader.handoff_confirms_itself \
            and runner.confirm_handoff is nobody_to_ask:
        raise HandoffNotConfirmed(f"{reader.name} is loaded by hand, and the plain loop has nobody to confirm "
                                  "that a plate was moved; checked before the first batch, nothing moved",
                                  hint=_HOW_TO_ASK)


def before_read(runner: Any, plan: PlatePlan) -> None:
    """Have the plate of ``plan`` put in the reader (called inside the measure step, before reading)."""
    ask(runner, "load", plan.iteration, f"P{plan.plate}", during="measure",
        left=f"the batch of iteration {plan.iteration} stays dispatched and is read on resume")


def before_dispense(runner: Any, plan: PlatePlan) -> None:
    """While a plate is still in the reader, have it (or an empty one) put on the deck before ``plan`` is dispatched."""
    moves = runner.store.events(runner.campaign.info.id, PLATE_HANDOFF)
    last = moves[-1]["detail"] if moves else None
    if last is None or last["step"] != "load":
        return
    plate, left = f"P{plan.plate}", f"iteration {plan.iteration} was not dispatched"
    if last["plate"] == plate:
        ask(runner, "return", plan.iteration, plate, during="prepare", left=left)
    else:
        ask(runner, "replace", plan.iteration, last["plate"], next_plate=plate, during="prepare", left=left)


def ask(runner: Any, step: str, iteration: int, plate: str, *, during: str, left: str,
        next_plate: str | None = None) -> None:
    """Ask for hand-off ``step`` of ``plate`` and store the confirmation; ``HandoffNotConfirmed`` saying
    what was ``left`` when nobody confirmed. The time a person took counts as ``handoff``, not as the
    runner step ``during`` which waited for them."""
    reader = runner.instruments.spectrometer
    if not isinstance(reader, SupportsPlateHandoff):
        return
    request = reader.handoff_request(step, plate, next_plate)
    store, campaign_id = runner.store, runner.campaign.info.id
    if reader.handoff_confirms_itself:
        runner.log(f"{request}: confirmed by the dry run (nobody moves a simulated plate)")
        confirmed_by = "dry run"
    else:
        key = f"{HANDOFF_KEY_PREFIX}{iteration}-{step}-{len(store.events(campaign_id, PLATE_HANDOFF)) + 1}"
        waited = time.perf_counter()
        confirmed = runner.confirm_handoff(key, request)
        waited = time.perf_counter() - waited
        runner.step_seconds["handoff"] = runner.step_seconds.get("handoff", 0.0) + waited  # a person's time
        runner.step_seconds[during] = runner.step_seconds.get(during, 0.0) - waited
        if not confirmed:
            name = runner.campaign.spec.name
            raise HandoffNotConfirmed(f"nobody confirmed in time: {request}; {left}, nothing is lost",
                                      hint=f"move the plate, then: sdl resume {name} (it asks again)")
        confirmed_by = "person"
    store.record_event(campaign_id, PLATE_HANDOFF, {"iteration": iteration, "step": step, "plate": plate,
                                                    "next_plate": next_plate, "request": request,
                                                    "confirmed_by": confirmed_by})
