"""The checks across fields of a campaign file, run once every field is valid on its own.

Each takes the parsed ``CampaignFields`` and returns one line per problem (field path, what is wrong,
how to fix it); ``cross_field_problems`` runs them all, in the order ``sdl validate`` reports them.
The checks of the instruments section against the deck's labware are in
``orchestrator.spec.instrument_checks``.
"""

from __future__ import annotations

import numpy as np

from instruments.opentrons.deck import WELLS_PER_PLATE
from orchestrator.errors import SpecError
from orchestrator.planning.constraints import ConstraintSyntaxError, parse_constraint, parse_linear_constraint
from orchestrator.planning.prior_mean import call_problems, prior_mean_for
from orchestrator.planning.space import SearchSpace
from orchestrator.spec.campaign_fields import CampaignFields
from orchestrator.spec.measurement import measured_wavelengths, measurement_problems
from orchestrator.spec.feasibility import feasibility_problems
from orchestrator.spec.instrument_checks import instrument_problems
from orchestrator.spec.limits import MAX_SNAPPED


def cross_field_problems(spec: CampaignFields) -> list[str]:
    """Every problem across fields of ``spec``, in the order they are reported."""
    problems = constraint_problems(spec) + instrument_problems(spec) + measurement_problems(spec)
    problems += analysis_problems(spec)
    if spec.budget.batch_size > WELLS_PER_PLATE:  # also without instruments: the planner's batch limit
        problems.append(f"budget.batch_size: {spec.budget.batch_size} wells do not fit one {WELLS_PER_PLATE}-well "
                        f"plate; use at most {WELLS_PER_PLATE}")
    return problems + objective_problems(spec) + simulation_problems(spec)


def constraint_problems(spec: CampaignFields) -> list[str]:
    """Each constraint parses, names numeric parameters, and (for ``==``) only continuous linear-scale ones;
    then some point of the search space must meet them all (``orchestrator.spec.feasibility``).

    An equality cannot survive rounding, so integer, discrete and log-scale parameters
    are refused in equalities rather than silently repaired.
    """
    by_name = {p.name: p for p in spec.parameters if p.is_numeric}
    problems, snapped, parsed_constraints = [], set(), []
    if all(p.is_fixed for p in spec.parameters):  # the search space itself, checked with its constraints
        problems.append("parameters: every parameter is fixed, so there is nothing to search; "
                        "leave at least one parameter free")
    for i, text in enumerate(spec.constraints):
        try:
            parsed = parse_constraint(text)
        except ConstraintSyntaxError as err:
            problems.append(f"constraints[{i}] {text!r}: {err}; write e.g. 'a + 2*b <= 10' or 'a * b <= 30'")
            continue
        unknown = sorted(set(parsed.names) - set(by_name))
        if unknown:
            problems.append(
                f"constraints[{i}] {text!r} names {', '.join(unknown)}, not a numeric parameter; "
                f"use one of: {', '.join(sorted(by_name))}"
            )
            continue
        parsed_constraints.append(parsed)
        snapped.update(n for n in parsed.names if by_name[n].type in ("integer", "discrete")
                       and not by_name[n].is_fixed)
        if all(by_name[n].is_fixed for n in parsed.names):
            problems.append(f"constraints[{i}] {text!r} names only fixed parameters; it constrains nothing, remove it")
        elif getattr(parsed, "op", None) == "==":
            rounded = sorted(n for n in parsed.names if not by_name[n].is_fixed
                             and (by_name[n].type != "continuous" or by_name[n].is_log))
            if rounded:
                kinds = ", ".join(f"{n} ({'log-scale' if by_name[n].is_log else by_name[n].type})" for n in rounded)
                problems.append(
                    f"constraints[{i}] {text!r}: an equality needs continuous linear-scale parameters, not {kinds}; "
                    "make them continuous, or write two inequalities with some slack"
                )
    if len(snapped) > MAX_SNAPPED:  # orchestrator.planning.space.feasible_from_unit tries every rounding of them
        problems.append(f"constraints name {len(snapped)} integer or discrete parameters; at most {MAX_SNAPPED} "
                        "can be rounded together to meet them; make some continuous or leave them out of the "
                        "constraints")
    if not problems:  # every constraint is readable on its own: can they be met?
        problems = feasibility_problems(spec.parameters, spec.constraints, parsed_constraints)
    return problems


def objective_problems(spec: CampaignFields) -> list[str]:
    """Outcome constraints, stopping rules and warm start checked against the objectives and parameters."""
    objectives = {o.name for o in spec.objectives}
    parameters = {p.name for p in spec.parameters}
    problems = []
    for i, text in enumerate(spec.outcome_constraints):
        try:
            parsed = parse_linear_constraint(text)
        except ConstraintSyntaxError as err:
            problems.append(f"outcome_constraints[{i}] {text!r}: {err}; write e.g. 'absorbance <= 2'")
            continue
        if parsed.op == "==":
            problems.append(f"outcome_constraints[{i}] {text!r}: a measured outcome cannot be held equal; "
                            "use <= or >=")
        clash = sorted(set(parsed.coefficients) & (objectives | parameters))
        if clash:
            problems.append(f"outcome_constraints[{i}] {text!r} names {', '.join(clash)}, an objective or "
                            "parameter; outcome constraints are on other measured outputs (e.g. absorbance)")
    target = spec.stopping.target
    if target is not None and target.objective not in objectives:
        problems.append(f"stopping.target.objective {target.objective!r} is not an objective; "
                        f"use one of: {', '.join(sorted(objectives))}")
    if spec.warm_start is not None and spec.warm_start.campaign == spec.name:
        problems.append("warm_start.campaign names this campaign; name an earlier campaign")
    if spec.prior_mean is not None:
        problems += prior_mean_problems(spec)
    return problems


def prior_mean_problems(spec: CampaignFields) -> list[str]:
    """The prior mean's name, the plugin's import and the factory's check of its settings, then one call
    of the model at the middle of the parameter box (``prior_mean.call_problems``)."""
    prior = spec.prior_mean
    try:
        model = prior_mean_for(prior.model, prior.settings, prior.calibrate)
    except SpecError as error:
        return error.problems
    space = SearchSpace(spec.parameters)
    return call_problems(prior.model, model, space.from_unit(np.full(space.dim, 0.5)),
                         [o.name for o in spec.objectives] + spec.outcome_names())


def analysis_problems(spec: CampaignFields) -> list[str]:
    """Each analysis entry computes an objective or an outcome of an outcome constraint; with instruments,
    every one of those has an entry (nothing else measures it), its target mixture names the robot's
    reagents within the fill volume, and its peak target lies in the spectrometer's range."""
    objectives = {o.name for o in spec.objectives}
    try:
        outcomes = set(spec.outcome_names())
    except ConstraintSyntaxError:  # reported by objective_problems
        outcomes = set()
    problems = [
        f"analysis[{i}].objective {a.objective!r} is neither an objective nor an outcome in outcome_constraints; "
        f"use one of: {', '.join(sorted(objectives | outcomes))}"
        for i, a in enumerate(spec.analysis)
        if a.objective not in objectives | outcomes
    ]
    if spec.instruments is None:
        return problems
    analysed = {a.objective for a in spec.analysis}
    problems += [
        f"analysis: objective {o!r} has no analysis; add an entry with 'objective: {o}'"
        for o in sorted(objectives - analysed)
    ]
    problems += [
        f"analysis: outcome {o!r} (outcome_constraints) has no analysis, so nothing would measure it; add an "
        f"entry with 'objective: {o}' and a kind, e.g. 'kind: max_reading' for the highest absorbance"
        for o in sorted(outcomes - analysed)
    ]
    handler = spec.instruments.liquid_handler
    shortest, longest, discrete = measured_wavelengths(spec.instruments.spectrometer)
    reads = (f"the {spec.instruments.spectrometer.driver} driver reads only "
             f"{', '.join(f'{w:g}' for w in discrete or ())} nm")
    span = f"wavelength_range_nm [{shortest:g}, {longest:g}]" if discrete is None else f"wavelengths_nm ({reads})"
    for i, a in enumerate(spec.analysis):
        mixture = a.target.mixture if a.target is not None else None
        unknown = sorted(set(mixture or {}) - set(handler.reagents))
        if unknown:
            problems.append(f"analysis[{i}].target.mixture: {', '.join(unknown)} is not a reagent of the liquid "
                            f"handler; use: {', '.join(handler.reagents)}")
        elif mixture and handler.diluent is not None and sum(mixture.values()) > handler.fill_volume_ul:
            problems.append(f"analysis[{i}].target.mixture: {sum(mixture.values()):g} uL in all, more than the "
                            f"fill volume of {handler.fill_volume_ul:g} uL; give volumes of one well")
        if discrete is not None and a.kind in ("peak_wavelength", "peak_width", "peak_intensity"):
            problems.append(f"analysis[{i}] kind {a.kind} needs a full spectrum, and {reads}; use reading_at, "
                            "reading_ratio, spectral_rmse or max_reading, or measure with a spectrometer")
            continue
        if a.target_peak_nm is not None and not shortest <= a.target_peak_nm <= longest:
            problems.append(f"analysis[{i}].target_peak_nm {a.target_peak_nm:g} is outside the spectrometer's "
                            f"wavelength_range_nm [{shortest:g}, {longest:g}]; it could never be measured")
        if a.window_nm is not None and not _window_measured(a.window_nm, shortest, longest, discrete):
            where = (f"lies outside the spectrometer's {span}" if discrete is None
                     else f"holds none of the measured wavelengths: {span}")
            problems.append(f"analysis[{i}].window_nm [{a.window_nm[0]:g}, {a.window_nm[1]:g}] {where}")
        needed = [a.wavelength_nm] if a.wavelength_nm is not None else list(a.wavelengths_nm or ())
        missing = [w for w in needed if not _measures(w, shortest, longest, discrete)]
        if missing:
            field = "wavelength_nm" if a.wavelength_nm is not None else "wavelengths_nm"
            problems.append(f"analysis[{i}].{field}: {', '.join(f'{w:g}' for w in missing)} nm is not measured: "
                            f"{span}; pick a measured wavelength or change the measurement section")
    return problems


def simulation_problems(spec: CampaignFields) -> list[str]:
    """The dry run's model must simulate every reagent the robot pipettes and cover the spectrometer's range.

    A reagent the model does not know would be pipetted and have no effect on any spectrum, so
    every dry-run experiment would fail as "nothing formed"; a model grid short of the
    spectrometer's range puts every peak beyond it at the grid's edge.
    """
    if spec.simulation is None or spec.instruments is None:
        return []
    try:
        model = spec.simulation_model
    except (TypeError, ValueError, KeyError) as err:
        return [f"simulation: the {spec.simulation.model} model refuses its settings or noise: {err}; "
                f"see simulators/{spec.simulation.model}.py for what they mean"]
    problems = []
    parameters = {p.name for p in spec.parameters}  # a reagent that is no parameter has its own problem
    unknown = [r for r in spec.instruments.liquid_handler.reagents if r in parameters and r not in model.reagents]
    if unknown:
        problems.append(f"simulation: the {spec.simulation.model} model knows no reagent {', '.join(unknown)} "
                        f"(it simulates {', '.join(model.reagents)}), so a dry run would see no effect of it; "
                        f"describe it in simulation.settings (see simulators/{spec.simulation.model}.py) or "
                        "remove the simulation section if this file never runs dry")
    grid = getattr(model, "wavelengths_nm", None)
    shortest, longest, discrete = measured_wavelengths(spec.instruments.spectrometer)
    measured = (f"the spectrometer's wavelength_range_nm [{shortest:g}, {longest:g}]" if discrete is None
                else f"the reader's wavelengths_nm {', '.join(f'{w:g}' for w in discrete)}")
    if grid is not None and (grid.min() > shortest or grid.max() < longest):
        problems.append(f"simulation: the {spec.simulation.model} model's wavelengths [{grid.min():g}, "
                        f"{grid.max():g}] nm do not cover {measured}; widen the model's wavelength grid in "
                        "simulation.settings")
    return problems


#: how far [nm] an analysis' wavelength may be from a plate reader's filter and still be the one it reads
WAVELENGTH_MATCH_NM = 0.5


def _measures(wavelength: float, shortest: float, longest: float, discrete: tuple[float, ...] | None) -> bool:
    """Whether a reading gives ``wavelength`` [nm]: inside a spectrum's range, or one of a reader's wavelengths."""
    if discrete is None:
        return shortest <= wavelength <= longest
    return any(abs(wavelength - w) <= WAVELENGTH_MATCH_NM for w in discrete)


def _window_measured(window: tuple[float, float], shortest: float, longest: float,
                     discrete: tuple[float, ...] | None) -> bool:
    if discrete is None:
        return window[1] > shortest and window[0] < longest
    return any(window[0] <= w <= window[1] for w in discrete)
