"""The built-in sampler of a fibre spectrometer with a cuvette station: the robot brings each well into the beam.

A spectrometer driver whose section has ``cuvette`` (``orchestrator.spec.measurement.Cuvette``) gets a
``CuvetteSampler`` (``station_sampler``) instead of a lab's ``present_well`` hook. The loop gives it the robot
and the deck (``attach_robot``, the ``SupportsRobotMeasuring`` capability) and, before each batch is read, the
batch's plate plan (``use_plan``, ``SupportsBatchPlan``), whose ``cuvette`` set aside the tips and the rinse
solvent of the reading. ``read_batch`` then runs the batch's robot steps (``instruments.cuvette.station``), one
protocol each through the liquid handler's ``run_protocol``, between the readings: solvent in for the reference,
then each well's aliquot in turn, emptied and rinsed after its reading.

What ran is remembered per batch, in this process: a reading tried again after a failed read (the loop tries three
times) goes on from where the robot is, without new tips or aliquots; a robot step that failed leaves the batch
unmeasurable (its tips and aliquots may be spent), and every later read of it is refused in one line. When the
loop gives up on a batch (``abandon_plan``), the cuvette is emptied and rinsed with its last step's tips. The
reference is read anew on the solvent at the start of every batch (``reference_every_s`` does not apply within
one: another reference would take solvent and tips the plan did not set aside).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

from instruments.cuvette.protocol import render_step, step_allowance_s, step_file_name
from instruments.cuvette.station import REFERENCE, RobotStep, robot_steps
from instruments.errors import InstrumentError
from instruments.opentrons.robot_api import choose_api_level, local_max_api
from instruments.plate_plan import PlatePlan
from instruments.roles import Spectrum

log = logging.getLogger(__name__)

_SETUP_HINT = "run it in a campaign (sdl run): the loop attaches the robot and gives each batch's plan"


class CuvetteSampler:
    """Brings the rinse solvent and each well of a batch into the cuvette at ``cuvette.slot``; ``name`` is the
    spectrometer's, for its messages."""

    def __init__(self, name: str, cuvette: Any) -> None:
        self.name, self.cuvette = name, cuvette
        self.robot: Any = None
        self.plan: PlatePlan | None = None
        self.steps: list[RobotStep] = []
        self.done = 0  # robot steps of ``plan`` that ran
        self.failed: str | None = None  # why ``plan`` cannot be read any more
        self._read: dict[str, Spectrum] = {}  # well label -> its reading in this batch

    # what the loop calls ---------------------------------------------------------------------

    def attach_robot(self, liquid_handler: Any, deck: Any) -> None:
        """Keep the campaign's robot; it must run protocol texts (``run_protocol``). The deck comes with each
        batch's plan (the deck that plan was made for)."""
        if not callable(getattr(liquid_handler, "run_protocol", None)):
            raise InstrumentError(f"{self.name}: the cuvette station needs a robot that runs its protocols, and the "
                                  f"liquid handler {getattr(liquid_handler, 'name', liquid_handler)} cannot",
                                  hint="use an Opentrons liquid handler (opentrons_ot2, opentrons_flex), or remove "
                                       "instruments.spectrometer.cuvette")
        self.robot = liquid_handler

    def check_ready(self) -> None:
        """Raise now what the first read would: no robot attached to bring the wells."""
        if self.robot is None:
            raise InstrumentError(f"{self.name}: nothing brings the wells to the cuvette: no robot is attached",
                                  hint=_SETUP_HINT)

    def use_plan(self, plan: PlatePlan) -> None:
        """Read ``plan``'s wells next, with the tips and solvent it set aside. The same batch again (a read tried
        again) goes on from where its robot steps are."""
        if plan.cuvette is None:
            raise InstrumentError(f"{self.name}: the plan of iteration {plan.iteration} sets nothing aside for the "
                                  "cuvette station, so its tips and rinse solvent were never counted",
                                  hint="the plan must be compiled with the spectrometer's cuvette section "
                                       "(compile_plan(..., cuvette=...)), as the campaign loop does")
        wells = [w.well for w in plan.wells]
        if self.plan is not None and self.plan.iteration == plan.iteration and [w.well for w in self.plan.wells] == wells:
            return
        self.plan, self.done, self.failed, self._read = plan, 0, None, {}
        self.steps = robot_steps(plan.cuvette, wells, plan.plate, plan.deck)

    def read_batch(self, labels: Sequence[str], reference: Callable[[], Any],
                   sample: Callable[[str], Spectrum]) -> list[Spectrum]:
        """One spectrum per label, in order: the reference on solvent first (``reference()``), then each well brought
        in and read (``sample(label)``), then the cuvette emptied and rinsed. A label read earlier in this batch
        (before a failed read) gives its reading again, without the robot."""
        plan = self._plan_for(labels)
        if self.done <= 1:  # the cuvette holds the solvent (or will): a fresh reference for this batch
            self.present("reference")
            reference()
        spectra = []
        for label in labels:
            if label not in self._read:
                self.present("sample", label)
                self._read[label] = sample(label)
            spectra.append(self._read[label])
        try:
            self._run_until(len(self.steps))
        except InstrumentError as err:  # the readings stand; the next batch empties the cuvette first
            log.warning("%s: iteration %s read, but cleaning the cuvette after it failed: %s", self.name,
                        plan.iteration, err.one_line())
        return spectra

    def abandon_plan(self, plan: PlatePlan) -> bool:
        """The loop gave up reading ``plan`` (every try failed): empty and rinse the cuvette now, with the tips and
        solvent the plan set aside for its last step, so no sample is left to dry in it or to spoil the next
        batch's reference. Nothing when ``plan`` is not the batch in hand, no well went into the cuvette, the last
        step ran, or a robot step failed (the robot is then left alone). True when the robot ran the step; raises
        ``InstrumentError`` when it failed."""
        if self.plan is None or self.plan.iteration != plan.iteration or self.failed is not None \
                or not 2 <= self.done < len(self.steps):
            return False
        self._run_step(len(self.steps) - 1)
        return True

    # the light path's hook ---------------------------------------------------------------------

    def present(self, kind: str, label: str | None = None) -> None:
        """Have the rinse solvent (``kind`` ``"reference"``) or well ``label`` (``"sample"``) in the cuvette, running
        the batch's robot steps up to it; refused when the batch has gone past it or cannot go on."""
        if kind == "dark":
            return
        if kind == "sample" and not label:
            raise InstrumentError(f"{self.name}: a sample needs its well label (P1-A1)", hint=_SETUP_HINT)
        self._plan_for([label] if kind == "sample" else [])
        wanted = REFERENCE if kind == "reference" else str(label)
        index = next(i for i, step in enumerate(self.steps) if step.before == wanted)
        if self.done > index + 1:
            what = "the rinse solvent for the reference" if wanted == REFERENCE else f"well {wanted}"
            raise InstrumentError(f"{self.name}: {what} is no longer in the cuvette: the robot has moved on to "
                                  f"step {self.done + 1} of {len(self.steps)} of this batch",
                                  hint="read the reference and the wells in the plan's order (read_wells does)")
        self._run_until(index + 1)

    # helpers -----------------------------------------------------------------------------------

    def _plan_for(self, labels: Sequence[str]) -> PlatePlan:
        """The batch's plan, which must hold ``labels``; refused without a robot, a plan, or after a failed step."""
        self.check_ready()
        if self.plan is None:
            raise InstrumentError(f"{self.name}: no batch plan: the cuvette station takes only the tips and rinse "
                                  "solvent a plan set aside", hint=_SETUP_HINT)
        if self.failed is not None:
            raise InstrumentError(f"{self.name}: iteration {self.plan.iteration} cannot be read any more: {self.failed}",
                                  hint="check the cuvette station and the tip racks; the next batch starts with an "
                                       "emptied cuvette")
        planned = [step.before for step in self.steps]
        missing = [label for label in labels if label not in planned]
        if missing:
            raise InstrumentError(f"{self.name}: well {missing[0]} is not in the plan of iteration "
                                  f"{self.plan.iteration} ({', '.join(self.plan.label(w.well) for w in self.plan.wells)})",
                                  hint="read the wells of the batch whose plan the loop gave (use_plan)")
        return self.plan

    def _run_until(self, count: int) -> None:
        """Run the batch's robot steps until ``count`` of them have run."""
        while self.done < count:
            self._run_step(self.done)

    def _run_step(self, index: int) -> None:
        plan, step, robot = self.plan, self.steps[index], self.robot
        assert plan is not None
        text = render_step(plan, self.steps, index, self._api_level())
        # The loop's hook stores the id of the batch's dispensing run, which reconcile asks after a restart;
        # a measuring step's run must not take its place.
        hook = getattr(robot, "on_run_created", None)
        if hook is not None:
            robot.on_run_created = None
        try:
            robot.run_protocol(text, step_file_name(plan, index), plan.deck, step_allowance_s(step))
        except InstrumentError as err:
            self.failed = f"robot step {index + 1} of {len(self.steps)} ({step.purpose}) failed: {err.message}"
            raise InstrumentError(f"{self.name}: cuvette station, {self.failed}", hint=err.hint) from err
        finally:
            if hook is not None:
                robot.on_run_created = hook
        self.done = index + 1

    def _api_level(self) -> str:
        """The steps' ``apiLevel``: the dispensing protocols' choice on a real robot (``choose_api_level``, from its
        ``GET /health``), the deck's on a twin, which reports no such levels."""
        assert self.plan is not None
        health = self.robot.health()
        if not health.get("connected"):
            self.robot.connect()
            health = self.robot.health()
        if "maximum_protocol_api_version" not in health:
            return self.plan.deck.api_level
        where = f"{health.get('host')}:{health.get('port')}"
        return choose_api_level(self.robot.name, where, health, local_max_api(), has_offsets=bool(self.plan.deck.offsets))


def station_sampler(name: str, config: Any, driver: Any) -> CuvetteSampler | None:
    """The built-in sampler of spectrometer ``driver`` when its section ``config`` has a ``cuvette``, else None.

    With one the driver becomes a ``SupportsRobotMeasuring`` and a ``SupportsBatchPlan`` (the loop then holds the
    robot's lock while it reads and gives it each batch's plan); a driver without a cuvette is neither.
    """
    cuvette = getattr(config, "cuvette", None)
    if cuvette is None:
        return None
    sampler = CuvetteSampler(name, cuvette)
    driver.attach_robot = sampler.attach_robot
    driver.use_plan = sampler.use_plan
    driver.abandon_plan = sampler.abandon_plan
    return sampler
