"""The measure step: read every well of a plate, with retries, and remember when reading moved the robot.

Reading a plate never changes it, so a failed read is tried again and, after a crash, a dispatched batch
is read again (``orchestrator.run.reconcile``). That holds for a spectrometer that reads the plate where
it stands. It does not hold for an instrument that moves the robot while it measures
(``SupportsRobotMeasuring``):

- a cuvette station (``SupportsBatchPlan``) takes an aliquot of each well with tips the plan set aside:
  reading the batch again after a crash would pick tips already used and take more of each well, so an
  interrupted batch is never read again (``REREAD_NEVER``), and one that no try could read has its cuvette
  emptied and rinsed before the loop goes on (``abandon_plan``, with the tips the plan set aside for that);
- a plate reader the gripper loads (the Flex Absorbance Plate Reader) may have been stopped with the plate
  inside: a person says where the plate is before it is read again (``REREAD_ASK``);
- a reader a person loads (``SupportsPlateHandoff``) asks the person before every read anyway.

So before such an instrument first moves the robot for a batch the store gets a ``measuring`` event
(``stage: started``), and another once the reading ended with the plate back in place (``stage: ended``).
"""

from __future__ import annotations

from typing import Any

from instruments.errors import InstrumentError, PlateOutOfPlace
from instruments.plate_plan import PlatePlan
from instruments.roles import Spectrum, SupportsBatchPlan, SupportsPlateHandoff, SupportsRobotMeasuring
from orchestrator.run import plate_handoff
from orchestrator.store.campaign_store import CampaignStore

MEASURING = "measuring"
REREAD_NEVER, REREAD_ASK = "never", "ask"
#: a failed read is tried again this many times (reading a plate never changes it)
READ_RETRIES = 2


def rereading(spectrometer: Any) -> str | None:
    """How a batch this instrument began to read may be read again after an interruption: ``REREAD_NEVER``,
    ``REREAD_ASK``, or None (freely: it reads the plate where it stands, or a person is asked anyway)."""
    if not isinstance(spectrometer, SupportsRobotMeasuring) or isinstance(spectrometer, SupportsPlateHandoff):
        return None
    return REREAD_NEVER if isinstance(spectrometer, SupportsBatchPlan) else REREAD_ASK


def read_plan(runner: Any, plan: PlatePlan) -> list[Spectrum] | InstrumentError:
    """Read every well of ``plan`` on the ``CampaignRunner``'s spectrometer, trying again after a failed read; the spectra,
    or the last error when every try failed (each failure is stored as a ``read_failed`` event).

    Raises the runner's ``LoopError`` when a fault may have left the plate out of its slot (``PlateOutOfPlace``).
    """
    spectrometer = runner.instruments.spectrometer
    labels = [plan.label(w.well) for w in plan.wells]
    how = rereading(spectrometer)
    if how is not None:
        _mark(runner.store, runner.campaign.info.id, plan.iteration, spectrometer.name, "started", how)
    last: InstrumentError | None = None
    for attempt in range(1 + READ_RETRIES):
        try:
            with runner.instrument_guards_for_measuring():
                if attempt == 0:  # a reader loaded by hand: a person puts the plate in
                    plate_handoff.before_read(runner, plan)
                if isinstance(spectrometer, SupportsBatchPlan):  # a cuvette station takes what the plan set aside
                    spectrometer.use_plan(plan)
                spectra = spectrometer.read_wells(labels)
            if how is not None:
                _mark(runner.store, runner.campaign.info.id, plan.iteration, spectrometer.name, "ended", how)
            return spectra
        except InstrumentError as err:
            runner.log(f"{spectrometer.name}: read {attempt + 1} of {1 + READ_RETRIES} failed: {err.message}")
            runner.store.record_event(runner.campaign.info.id, "read_failed", {
                "iteration": plan.iteration, "attempt": attempt + 1, "instrument": spectrometer.name,
                "cause": err.cause, "message": err.message})
            if isinstance(err, PlateOutOfPlace):  # another read or the next dispense would miss the plate
                runner.stop_for_plate_out_of_place(err)
            last = err
    if isinstance(spectrometer, SupportsBatchPlan):
        _leave_station_clean(runner, spectrometer, plan)
    if how is not None:  # every try failed, and each put the plate back (else PlateOutOfPlace stopped the loop)
        _mark(runner.store, runner.campaign.info.id, plan.iteration, spectrometer.name, "ended", how)
    assert last is not None
    return last


def _leave_station_clean(runner: Any, spectrometer: Any, plan: PlatePlan) -> None:
    """A batch no try could read: a cuvette station empties and rinses its cuvette (``abandon_plan``), with the
    tips the plan set aside for that; a failure is logged, the batch is recorded as failed either way."""
    abandon = getattr(spectrometer, "abandon_plan", None)
    if not callable(abandon):
        return
    try:
        with runner.instrument_guards_for_measuring():
            if abandon(plan):
                runner.log(f"{spectrometer.name}: iteration {plan.iteration} not read; the cuvette was emptied and "
                           "rinsed")
    except InstrumentError as err:
        runner.log(f"{spectrometer.name}: emptying the cuvette after iteration {plan.iteration} failed: {err.message}")


def interrupted_reading(store: CampaignStore, campaign_id: int, iteration: int) -> dict[str, Any] | None:
    """The last ``measuring`` event of ``iteration`` (its detail: ``stage``, ``rereading``, ``instrument``),
    or None when no instrument that moves the robot began reading that batch."""
    found = None
    for event in store.events(campaign_id, MEASURING):
        if (event["detail"] or {}).get("iteration") == iteration:
            found = event["detail"]
    return found


def _mark(store: CampaignStore, campaign_id: int, iteration: int, instrument: str, stage: str, how: str) -> None:
    store.record_event(campaign_id, MEASURING, {"iteration": iteration, "instrument": instrument, "stage": stage,
                                                "rereading": how})
