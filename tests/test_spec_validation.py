"""`sdl validate`: the demo campaign is valid; every malformed file gives exit 2 and one
line per problem that names the field and says how to fix it, never a traceback."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cli import main
from orchestrator.errors import SpecError
from orchestrator.spec.schema import CampaignSpec
from orchestrator.spec.loader import MAX_FILE_BYTES, parse_spec
from tests.conftest import DEMO, demo_document, write_campaign

DEMO_TEXT = DEMO.read_text()


def validate(path: Path | str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``sdl validate path`` in-process: (exit code, stdout, stderr)."""
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_problems(path: Path | str, out: str, err: str) -> list[str]:
    """The failure contract: nothing on stdout, no traceback, each stderr line prefixed by the file."""
    assert out == ""
    assert "Traceback" not in err and "Traceback" not in out
    assert err.endswith("\n")
    lines = err.splitlines()
    assert lines, "a failing validate prints at least one problem"
    prefix = f"{path}: "
    for line in lines:
        assert line.startswith(prefix), line
        assert line[len(prefix):].strip(), f"empty problem: {line!r}"
    return [line[len(prefix):] for line in lines]


# ---------------------------------------------------------------------------------------
# the valid demo


def test_demo_campaign_validates_in_process(capsys):
    code, out, err = validate(DEMO, capsys)
    assert code == 0, err
    assert err == ""
    assert out.startswith(f"{DEMO}: ok: campaign 'colour-match-demo', 3 parameter(s), 24 experiments in batches of 4")


def test_demo_campaign_validates_through_console_script():
    """The installed `sdl` entry point: its process exit code, and no traceback."""
    sdl = Path(sys.executable).parent / "sdl"
    assert sdl.exists(), f"console script not installed at {sdl}"
    done = subprocess.run(
        [str(sdl), "validate", str(DEMO)], capture_output=True, text=True, timeout=120, cwd=DEMO.parents[1]
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr == ""
    assert "ok: campaign 'colour-match-demo'" in done.stdout


def test_campaign_without_instruments_or_analysis_is_valid(tmp_path, capsys):
    doc = demo_document()
    del doc["instruments"], doc["analysis"]
    path = write_campaign(tmp_path, doc)
    code, out, err = validate(path, capsys)
    assert code == 0, err
    assert "ok: campaign 'colour-match-demo'" in out
    spec = parse_spec(path.read_text())
    assert spec.instruments is None and spec.analysis == []


def test_a_fixed_parameter_that_is_not_a_reagent_is_recorded_not_refused(tmp_path, capsys):
    doc = demo_document()
    doc["parameters"] += [{"name": "temperature", "type": "fixed", "value": 25},
                          {"name": "buffer", "type": "categorical", "values": ["PBS", "TRIS"], "fixed": True,
                           "value": "PBS"}]
    code, out, err = validate(write_campaign(tmp_path, doc), capsys)
    assert code == 0, err


@pytest.mark.parametrize("rack", ["opentrons_96_filtertiprack_200ul", "opentrons_96_tiprack_300ul"])
def test_a_tip_rack_the_pipette_takes_is_valid(rack, tmp_path, capsys):
    doc = demo_document()
    doc["instruments"]["liquid_handler"]["labware"] = {"tiprack_large": rack, "tiprack_small": "opentrons_96_tiprack_10ul"}
    code, out, err = validate(write_campaign(tmp_path, doc), capsys)
    assert code == 0, err


def test_a_reagent_the_dry_run_model_is_told_about_is_valid(tmp_path, capsys):
    """The cure the unknown-reagent message names: describe the dye in simulation.settings."""
    doc = demo_document()
    doc["parameters"][0]["name"] = "methyl_orange"
    handler = doc["instruments"]["liquid_handler"]
    handler["reagents"]["methyl_orange"] = handler["reagents"].pop("red")
    doc["constraints"] = [c.replace("red", "methyl_orange") for c in doc.get("constraints", [])]
    for analysis in doc["analysis"]:
        mixture = analysis.get("target", {}).get("mixture")
        if mixture and "red" in mixture:
            mixture["methyl_orange"] = mixture.pop("red")
    code, out, err = validate(write_campaign(tmp_path, doc), capsys)
    assert code == 2 and "knows no reagent methyl_orange" in err, err
    doc["simulation"]["settings"] = {"dyes": [
        {"name": "methyl_orange", "peak_nm": 465, "width_nm": 35, "absorptivity_per_cm": 3.0},
        {"name": "yellow", "peak_nm": 430, "width_nm": 28, "absorptivity_per_cm": 3.0},
        {"name": "blue", "peak_nm": 630, "width_nm": 38, "absorptivity_per_cm": 3.0}]}
    code, out, err = validate(write_campaign(tmp_path, doc), capsys)
    assert code == 0, err


def test_minimal_campaign_is_valid_and_takes_defaults():
    spec = parse_spec(
        "name: tiny\n"
        "budget: {experiments: 2, batch_size: 1}\n"
        "parameters: [{name: x, type: continuous, bounds: [0, 1]}]\n"
        "objectives: [{name: y, direction: maximize}]\n"
    )
    assert isinstance(spec, CampaignSpec)
    assert spec.instruments is None and spec.simulation is None
    assert spec.constraints == [] and spec.seed == 0
    assert spec.planner.num_restarts == 8


def test_instruments_without_analysis_is_a_problem(tmp_path, capsys):
    doc = demo_document()
    del doc["analysis"]
    path = write_campaign(tmp_path, doc)
    code, out, err = validate(path, capsys)
    assert code == 2
    problems = assert_one_line_problems(path, out, err)
    assert problems == ["analysis: objective 'distance' has no analysis; add an entry with 'objective: distance'"]


# ---------------------------------------------------------------------------------------
# malformed files: one parametrized case each


def _set(*keys: Any, value: Any) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        node = doc
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return mutate


def _drop(*keys: Any) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        node = doc
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return mutate


def _rename_top(old: str, new: str) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        doc[new] = doc.pop(old)

    return mutate


def _append(*keys: Any, value: Any) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        node = doc
        for key in keys:
            node = node[key]
        node.append(value)

    return mutate


def _all(*mutations: Callable[[dict], None]) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        for m in mutations:
            m(doc)

    return mutate


LH = ("instruments", "liquid_handler")

# id -> (mutation of the demo document, [(expected start of the problem, how-to-fix text), ...])
# Each expected pair matches exactly one stderr line; the number of lines must match too.
DOCUMENT_CASES: dict[str, tuple[Callable[[dict], None], list[tuple[str, str]]]] = {
    "missing-name": (_drop("name"), [("name: required field is missing", "add it")]),
    "missing-budget": (_drop("budget"), [("budget: required field is missing", "add it")]),
    "budget-experiments-not-a-number": (
        _set("budget", "experiments", value="many"),
        [("budget.experiments: input should be a valid integer", "got 'many'; correct the value")],
    ),
    "budget-batch-size-zero": (
        _set("budget", "batch_size", value=0),
        [("budget.batch_size: input should be greater than 0", "correct the value")],
    ),
    "bounds-lower-above-upper": (
        _set("parameters", 0, "bounds", value=[150, 0]),
        [("parameters[0](red): lower bound 150 is not below upper bound 0", "write [lower, upper]")],
    ),
    "bounds-lower-equals-upper": (
        _set("parameters", 1, "bounds", value=[5, 5]),
        [("parameters[1](yellow): lower bound 5 is not below upper bound 5", "write [lower, upper]")],
    ),
    "bounds-infinite": (
        _set("parameters", 2, "bounds", value=[0, float("inf")]),
        [("parameters[2](blue): bounds must be finite numbers", "write [lower, upper] with two numbers")],
    ),
    "bounds-not-a-pair": (
        _set("parameters", 0, "bounds", value=[0, 1, 2]),
        [("parameters[0](red).bounds: tuple should have at most 2 items", "correct the value")],
    ),
    "duplicate-parameter-names": (
        _set("parameters", 1, "name", value="red"),
        [("parameters: duplicate parameter name(s) red", "give each a unique name")],
    ),
    # Only one objective is supported: a second one (same name) is refused at the list's length.
    # several objectives are allowed; a second one with the same name is refused by name
    "duplicate-objective-names": (
        _append("objectives", value={"name": "distance", "direction": "minimize"}),
        [("objectives: duplicate objective name(s) distance", "give each a unique name")],
    ),
    "parameter-name-not-identifier": (
        _set("parameters", 0, "name", value="red dye"),
        [("parameters[0](red dye).name: string should match pattern", "correct the value")],
    ),
    "unknown-parameter-type": (
        _set("parameters", 0, "type", value="real"),
        [("parameters[0](red).type: input should be 'continuous', 'integer', 'discrete', 'categorical' or 'fixed'",
          "got 'real'; correct the value")],
    ),
    "categorical-without-values": (
        _append("parameters", value={"name": "dye", "type": "categorical"}),
        [("parameters[3](dye): a categorical parameter needs 'values'", "a list of at least two choices")],
    ),
    "categorical-with-one-value": (
        _append("parameters", value={"name": "dye", "type": "categorical", "values": ["tartrazine"]}),
        [("parameters[3](dye): a categorical parameter needs 'values'", "use type: fixed for a single value")],
    ),
    "categorical-with-bounds": (
        _append("parameters", value={"name": "dye", "type": "categorical", "values": ["a", "b"], "bounds": [0, 1]}),
        [("parameters[3](dye): a categorical parameter takes 'values', not 'bounds'", "remove 'bounds'")],
    ),
    "continuous-with-values": (
        _set("parameters", 0, "values", value=[1, 2]),
        [("parameters[0](red): a continuous parameter takes 'bounds', not 'values'", "remove 'values'")],
    ),
    "integer-bounds-without-integer": (
        _append("parameters", value={"name": "n", "type": "integer", "bounds": [0.2, 0.8]}),
        [("parameters[3](n): bounds [0.2, 0.8] contain no integer", "widen them")],
    ),
    "unknown-liquid-handler-driver": (
        _set(*LH, "driver", value="hamilton_star"),
        [("instruments.liquid_handler.driver: unknown driver 'hamilton_star'", "use one of: opentrons_flex, opentrons_ot2")],
    ),
    "spectrometer-driver-in-liquid-handler-role": (
        _set(*LH, "driver", value="ocean_optics"),
        [("instruments.liquid_handler.driver: unknown driver 'ocean_optics'", "use one of:")],
    ),
    "unknown-spectrometer-driver": (
        _set("instruments", "spectrometer", "driver", value="avantes"),
        [("instruments.spectrometer.driver: unknown driver 'avantes'", "use one of: ocean_optics, opentrons_absorbance_reader, pylabrobot_plate_reader")],
    ),
    "unknown-simulator-model": (
        _set("simulation", "model", value="beer_lambert"),
        [("simulation.model: unknown simulator 'beer_lambert'", "use one of: colour_mixing")],
    ),
    "constraint-unknown-parameter": (
        _set("constraints", 0, value="red + green <= 300"),
        [("constraints[0] 'red + green <= 300' names green, not a numeric parameter", "use one of: blue, red, yellow")],
    ),
    "constraint-nonlinear-equality": (
        _set("constraints", 0, value="red * blue == 3"),
        [("constraints[0] 'red * blue == 3': a nonlinear constraint can only be an inequality", "write e.g. 'a + 2*b <= 10'")],
    ),
    "constraint-python-code": (
        _set("constraints", 0, value="import os"),
        [("constraints[0] 'import os': needs exactly one of <=, >=, ==", "write e.g. 'a + 2*b <= 10'")],
    ),
    "constraint-call": (
        _set("constraints", 0, value="__import__('os').system('ls') <= 1"),
        [("constraints[0] \"__import__('os').system('ls') <= 1\": \"__import__('os').system\" is not an allowed function",
          "write e.g.")],
    ),
    "negative-volume-bound-on-reagent": (
        _set("parameters", 0, "bounds", value=[-5, 150]),
        [("parameters[0](red).bounds: a volume cannot be negative (-5 uL)", "set the lower bound to 0 or more")],
    ),
    "budget-experiments-below-batch-size": (
        _set("budget", "batch_size", value=50),
        [("budget: batch_size 50 exceeds experiments 24", "raise experiments or lower batch_size")],
    ),
    "batch-larger-than-a-plate": (
        _set("budget", value={"experiments": 200, "batch_size": 100}),
        [("budget.batch_size: 100 wells do not fit one 96-well plate", "use at most 96")],
    ),
    "unknown-extra-field-typo": (
        _rename_top("parameters", "paramters"),
        [
            ("paramters: unknown field", "remove it or check its spelling"),
            ("parameters: required field is missing", "add it"),
        ],
    ),
    "unknown-nested-field": (
        _set(*LH, "fill_volume", value=300),
        [("instruments.liquid_handler.fill_volume: unknown field", "remove it or check its spelling")],
    ),
    "objective-direction-unknown": (
        _set("objectives", 0, "direction", value="max"),
        [("objectives[0](distance).direction: input should be 'minimize' or 'maximize'", "got 'max'; correct the value")],
    ),
    "analysis-unknown-objective": (
        _set("analysis", 0, "objective", value="colour"),
        [
            ("analysis[0].objective 'colour' is neither an objective nor an outcome", "use one of: distance"),
            ("analysis: objective 'distance' has no analysis", "add an entry with 'objective: distance'"),
        ],
    ),
    "reagent-volumes-above-the-fill-volume": (
        _set("constraints", 0, value="red + yellow + blue <= 800"),
        [("instruments.liquid_handler: the parameters and constraints allow 450 uL of reagents in one well",
          "add the constraint 'red + yellow + blue <= 300' or lower the volume bounds")],
    ),
    "reagent-volumes-above-the-well-without-diluent": (
        _all(_drop(*LH, "diluent"), _set("constraints", 0, value="red + yellow >= 10")),
        [("instruments.liquid_handler: the parameters and constraints allow 450 uL of reagents in one well "
          "(red + yellow + blue), more than "
          "well_capacity_ul 360 uL", "add the constraint 'red + yellow + blue <= 360'")],
    ),
    "outcome-constraint-nothing-measures": (
        _set("outcome_constraints", value=["absorbance <= 2"]),
        [("analysis: outcome 'absorbance' (outcome_constraints) has no analysis, so nothing would measure it",
          "'kind: max_reading'")],
    ),
    "target-mixture-names-no-reagent": (
        _set("analysis", 0, "target", "mixture", value={"red": 40, "yelow": 95, "green": 2}),
        [("analysis[0].target.mixture: green, yelow is not a reagent of the liquid handler",
          "use: red, yellow, blue")],
    ),
    "target-mixture-above-the-fill-volume": (
        _set("analysis", 0, "target", "mixture", value={"red": 150, "yellow": 150, "blue": 22}),
        [("analysis[0].target.mixture: 322 uL in all, more than the fill volume of 300 uL",
          "give volumes of one well")],
    ),
    "wavelength-range-reversed": (
        _set("instruments", "spectrometer", "wavelength_range_nm", value=[700, 400]),
        [("instruments.spectrometer.wavelength_range_nm: [700, 400] nm", "give [shortest, longest]")],
    ),
    "peak-target-outside-the-spectrometer": (
        _set("analysis", 0, value={"objective": "distance", "target_peak_nm": 750, "window_nm": [650, 800]}),
        [("analysis[0].target_peak_nm 750 is outside the spectrometer's wavelength_range_nm [400, 700]",
          "it could never be measured")],
    ),
    "peak-window-outside-the-spectrometer": (
        _set("analysis", 0, value={"objective": "distance", "kind": "peak_intensity", "window_nm": [720, 800]}),
        [("analysis[0].window_nm [720, 800] lies outside the spectrometer's wavelength_range_nm [400, 700]", "")],
    ),
    "analysis-target-needs-exactly-one": (
        _set("analysis", 0, "target", value={"mixture": {"red": 1}, "csv": "target.csv"}),
        [("analysis[0].target: give exactly one of 'mixture'", "or 'csv' (a file)")],
    ),
    "reagent-not-a-parameter": (
        _set(*LH, "reagents", "green", value={"well": "A5", "stock_ul": 15000}),
        [("instruments.liquid_handler.reagents.green: not a numeric parameter", "each reagent key must be a parameter")],
    ),
    "parameter-not-a-reagent": (
        _append("parameters", value={"name": "temperature", "type": "continuous", "bounds": [20, 60]}),
        [("parameters[3](temperature): not a reagent of instruments.liquid_handler, and the robot dispenses only "
          "reagent volumes, so nothing would set it", "make it type: fixed with the value you set by hand")],
    ),
    "two-stocks-in-one-reservoir-well": (
        _set(*LH, "reagents", "yellow", "well", value="A1"),
        [("instruments.liquid_handler: red and yellow share reservoir well A1", "give each its own well")],
    ),
    "reagent-well-not-in-the-reservoir": (
        _set(*LH, "reagents", "red", "well", value="A13"),
        [("instruments.liquid_handler.reagents.red.well: nest_12_reservoir_15ml has no well A13",
          "use one of A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12")],
    ),
    "misspelt-labware": (
        _set(*LH, "labware", value={"plate": "corning_96_wellplate_360ul_flt"}),
        [("instruments.liquid_handler.labware.plate: 'corning_96_wellplate_360ul_flt' is not a standard Opentrons",
          "did you mean corning_96_wellplate_360ul_flat")],
    ),
    "well-capacity-above-the-plate": (
        _set(*LH, "labware", value={"plate": "corning_384_wellplate_112ul_flat"}),
        [("instruments.liquid_handler.well_capacity_ul: 360 uL is more than the 112 uL a well of "
          "corning_384_wellplate_112ul_flat holds", "set it to at most that")],
    ),
    "stock-above-the-reservoir-well": (
        _set(*LH, "reagents", "red", "stock_ul", value=500000),
        [("instruments.liquid_handler.reagents.red.stock_ul: 500000 uL is more than the 15000 uL its well of "
          "nest_12_reservoir_15ml holds", "declare what is in the well")],
    ),
    "reagent-volume-in-millilitres": (
        _set("parameters", 0, "unit", value="mL"),
        [("parameters[0](red).unit: 'mL', but a reagent's volume is always in uL",
          "give its bounds in uL and write unit: uL")],
    ),
    "simulation-grid-short-of-the-spectrometer": (
        _set("simulation", "settings", value={"wavelengths_nm": {"start": 300, "stop": 500}}),
        [("simulation: the colour_mixing model's wavelengths [300, 500] nm do not cover the spectrometer's "
          "wavelength_range_nm [400, 700]", "widen the model's wavelength grid in simulation.settings")],
    ),
    "simulation-settings-the-model-refuses": (
        _set("simulation", "settings", value={"dyes": [{"name": "red", "peak_nm": 515}]}),
        [("simulation: the colour_mixing model refuses its settings or noise: a dye needs name, peak_nm, "
          "width_nm, absorptivity_per_cm; missing width_nm, absorptivity_per_cm", "see simulators/colour_mixing.py")],
    ),
    # found by CI: a random mutation of the step asked numpy for gigabytes and the kernel killed the test run
    "simulation-grid-of-billions-of-wavelengths": (
        _set("simulation", "settings", "wavelengths_nm", "step", value=1e-7),
        [("simulation: the colour_mixing model refuses its settings or noise: wavelengths_nm: 400 to 700 nm in "
          "steps of 1e-07 nm is more than 4,096 wavelengths", "use a larger step or a narrower range")],
    ),
    "simulation-grid-not-a-mapping": (
        _set("simulation", "settings", "wavelengths_nm", value=[400, 700]),
        [("simulation: the colour_mixing model refuses its settings or noise: wavelengths_nm must be a mapping "
          "{start, stop, step} in nm", "see simulators/colour_mixing.py")],
    ),
    "simulation-setting-misspelt": (
        _set("simulation", "settings", "path_length", value=1.0),
        [("simulation: the colour_mixing model refuses its settings or noise: unknown simulation.settings key(s) "
          "path_length; known: dyes, wavelengths_nm, path_length_cm, max_absorbance", "see simulators/")],
    ),
    "simulation-noise-misspelt": (
        _set("simulation", "noise", "absorbance_noise", value=0.01),
        [("simulation: the colour_mixing model refuses its settings or noise: unknown simulation.noise key(s) "
          "absorbance_noise", "known: absorbance_sd, drift_per_hour, pipetting_cv")],
    ),
    "simulation-path-length-zero": (
        _set("simulation", "settings", "path_length_cm", value=0),
        [("simulation: the colour_mixing model refuses its settings or noise: path_length_cm must be > 0", "got 0")],
    ),
    # sizes past which time or memory ran away when probed (a helper's audit); each is a one-line refusal now
    "raw-samples-beyond-the-planner": (
        _set("planner", "raw_samples", value=10**8),
        [("planner.raw_samples: input should be less than or equal to 8192", "correct the value")],
    ),
    "restarts-beyond-the-planner": (
        _set("planner", "num_restarts", value=10**9),
        [("planner.num_restarts: input should be less than or equal to 64", "correct the value")],
    ),
    "seed-beyond-32-bits": (
        _set("seed", value=2**40),
        [("seed: input should be less than 4294967296", "correct the value")],
    ),
    "five-objectives": (
        _all(*(_append("objectives", value={"name": f"o{i}", "direction": "minimize"}) for i in range(4))),
        [("objectives: list should have at most 4 items after validation, not 5", "correct the value")],
    ),
    "simulated-time-slower-than-real": (
        _set("simulation", "time_scale", value=1e6),
        [("simulation.time_scale: input should be less than or equal to 1", "correct the value")],
    ),
    "readings-of-hours": (
        _all(_set("instruments", "spectrometer", "averages", value=1000),
             _set("instruments", "spectrometer", "integration_time_ms", value=60_000)),
        [("instruments.spectrometer: integration_time_ms x averages is 1000 min per well; at most 10 min",
          "lower averages or the integration time")],
    ),
    "averages-beyond-a-thousand": (
        _set("instruments", "spectrometer", "averages", value=10**9),
        [("instruments.spectrometer.averages: input should be less than or equal to 1000", "correct the value")],
    ),
    "categories-beyond-a-hundred": (
        _append("parameters", value={"name": "solvent", "type": "categorical", "values": [f"s{i}" for i in range(101)]}),
        [("parameters[3](solvent): 101 categorical values are more than the planner takes (100, one model "
          "dimension each)", "group or pre-screen them")],
    ),
    "levels-beyond-a-thousand": (
        _append("parameters", value={"name": "level", "type": "discrete", "values": list(range(1001))}),
        [("parameters[3](level): 1001 discrete levels are more than 1000",
          "use type: continuous or integer for a fine grid")],
    ),
    "a-plate-and-more-without-instruments": (
        _all(_drop("instruments"), _drop("analysis"), _drop("simulation"),
             _set("budget", value={"experiments": 400, "batch_size": 200})),
        [("budget.batch_size: 200 wells do not fit one 96-well plate", "use at most 96")],
    ),
    "thirteen-integers-to-round-in-constraints": (
        _all(_drop("instruments"), _drop("analysis"), _drop("simulation"),
             *(_append("parameters", value={"name": f"n{i}", "type": "integer", "bounds": [0, 10]}) for i in range(13)),
             _set("constraints", value=[" + ".join(f"n{i}" for i in range(13)) + " <= 100.5"])),
        [("constraints name 13 integer or discrete parameters; at most 12 can be rounded together to meet them",
          "make some continuous or leave them out of the constraints")],
    ),
    "fifty-one-constraints": (
        _set("constraints", value=["red + yellow <= 300"] * 51),
        [("constraints: list should have at most 50 items after validation, not 51", "correct the value")],
    ),
    "seventeen-outcome-constraints": (
        _set("outcome_constraints", value=[f"out{i} <= 2" for i in range(17)]),
        [("outcome_constraints: list should have at most 16 items after validation, not 17", "correct the value")],
    ),
    "eleven-calibrated-settings": (
        _set("prior_mean", value={"simulator": "linear", "calibrate": {f"s{i}": [0, 1] for i in range(11)}}),
        [("prior_mean.calibrate: dictionary should have at most 10 items after validation, not more",
          "correct the value")],
    ),
    "calibrated-range-beyond-computing": (
        _set("prior_mean", value={"simulator": "linear", "calibrate": {"distance.coefficients.red": [0, 1e200]}}),
        [("prior_mean.calibrate.distance.coefficients.red: [0.0, 1e+200] must be finite numbers within +-1e15", "")],
    ),
    "run-timeout-not-positive": (
        _set(*LH, "run_timeout_s", value=0),
        [("instruments.liquid_handler.run_timeout_s: input should be greater than 0", "correct the value")],
    ),
    "tips-the-pipette-does-not-take": (
        _set(*LH, "labware", value={"tiprack_large": "opentrons_96_tiprack_10ul"}),
        [("instruments.liquid_handler.labware.tiprack_large: the p300_single_gen2 pipette does not take tips from "
          "opentrons_96_tiprack_10ul", "use one of opentrons_96_tiprack_300ul, opentrons_96_filtertiprack_200ul")],
    ),
    "plate-named-as-a-tip-rack": (
        _set(*LH, "labware", value={"tiprack_small": "corning_96_wellplate_360ul_flat"}),
        [("instruments.liquid_handler.labware.tiprack_small: the p20_single_gen2 pipette does not take tips from "
          "corning_96_wellplate_360ul_flat", "use one of opentrons_96_tiprack_20ul")],
    ),
    "tip-rack-named-as-the-plate": (
        _set(*LH, "labware", value={"plate": "opentrons_96_tiprack_300ul"}),
        [("instruments.liquid_handler.labware.plate: opentrons_96_tiprack_300ul is a tip rack, not a container for "
          "liquid", "name a plate or reservoir")],
    ),
    "adapter-named-as-the-reservoir": (
        _set(*LH, "labware", value={"reservoir": "opentrons_96_well_aluminum_block"}),
        [("instruments.liquid_handler.labware.reservoir: opentrons_96_well_aluminum_block is an adapter, not a "
          "container for liquid", "name a plate or reservoir")],
    ),
    "plate-without-96-wells": (
        _set(*LH, "labware", value={"plate": "corning_24_wellplate_3.4ml_flat"}),
        [("instruments.liquid_handler.labware.plate: corning_24_wellplate_3.4ml_flat has no well E1, and plans fill "
          "wells A1 to H12 of a 96-well plate", "name a plate with those wells")],
    ),
    "reagent-range-below-the-pipette": (
        _set("parameters", 0, "bounds", value=[0.1, 0.9]),
        [("parameters[0](red).bounds: every volume is below the 1 uL the small pipette can dispense",
          "raise the upper bound to 1 uL or more")],
    ),
    "host-with-scheme-and-port": (
        _set(*LH, "host", value="http://169.254.10.20:31950"),
        [("instruments.liquid_handler.host: host 'http://169.254.10.20:31950' must be the robot's address alone",
          "write host: 169.254.10.20 and port: 31950")],
    ),
    "reagent-bad-well": (
        _set(*LH, "reagents", "red", "well", value="Z99"),
        [("instruments.liquid_handler.reagents.red.well: string should match pattern", "got 'Z99'; correct the value")],
    ),
    "fill-volume-above-well-capacity": (
        _set(*LH, "fill_volume_ul", value=400),
        [("instruments.liquid_handler: fill_volume_ul 400 exceeds well_capacity_ul 360", "lower it")],
    ),
    "parameters-empty": (
        _set("parameters", value=[]),
        [("parameters: list should have at least 1 item", "correct the value")],
    ),
    "parameter-entry-not-a-mapping": (
        _set("parameters", 0, value="red"),
        [("parameters[0]: input should be a valid dictionary", "got 'red'; correct the value")],
    ),
    "planner-kernel-unknown": (
        _set("planner", "kernel", value="laplace"),
        [("planner.kernel: input should be 'auto', 'rbf' or 'matern'", "got 'laplace'; correct the value")],
    ),
    "planner-acquisition-unknown": (
        _set("planner", "acquisition", value="UCB"),
        [("planner.acquisition: input should be 'qLogEI' or 'qLogNEI'", "got 'UCB'; correct the value")],
    ),
    "campaign-name-with-spaces": (
        _set("name", value="colour match"),
        [("name: string should match pattern", "got 'colour match'; correct the value")],
    ),
    # caps and collisions: each a line naming the field, the reason and the fix
    "parameter-names-differ-only-in-case": (
        _append("parameters", value={"name": "Red", "type": "continuous", "bounds": [0, 10], "unit": "uL"}),
        [("parameters: parameter names red and Red differ only in case, so they would be one column in CSV and "
          "Parquet exports and in dashboards", "; rename one")],
    ),
    "objective-names-differ-only-in-case": (
        _append("objectives", value={"name": "DISTANCE", "direction": "minimize"}),
        [("objectives: objective names distance and DISTANCE differ only in case", "; rename one")],
    ),
    "five-thousand-parameters": (
        _set("parameters", value=[{"name": f"p{i}", "type": "continuous", "bounds": [0, 1]} for i in range(5000)]),
        [("parameters: 5000 parameters are more than the 64 a campaign takes: each searched one is an input of "
          "the planner's model", "search the ones that matter most and screen the others in an earlier campaign")],
    ),
    "budget-of-a-trillion-experiments": (
        _set("budget", "experiments", value=10**12),
        [("budget.experiments: 1000000000000 experiments are more than the 20,000 a campaign takes: the planner's "
          "Gaussian process is exact over every measured experiment", "80 GB at 100,000")],
    ),
}


@pytest.mark.parametrize("case", list(DOCUMENT_CASES))
def test_malformed_document_gives_one_line_per_problem(case, tmp_path, capsys):
    mutate, expected = DOCUMENT_CASES[case]
    doc = demo_document()
    mutate(doc)
    path = write_campaign(tmp_path, doc)

    code, out, err = validate(path, capsys)

    assert code == 2, (out, err)
    problems = assert_one_line_problems(path, out, err)
    assert len(problems) == len(expected), problems
    for start, fix in expected:
        matching = [p for p in problems if p.startswith(start)]
        assert len(matching) == 1, (start, problems)
        assert fix in matching[0][len(start):], (fix, matching[0])


def _big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.yaml"
    path.write_text(DEMO_TEXT + ("# padding\n" * (MAX_FILE_BYTES // 10 + 10)))
    assert path.stat().st_size > MAX_FILE_BYTES
    return path


def _write(name: str, content: str | bytes) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    return make


_NAME_LINE = DEMO_TEXT.splitlines().index("name: colour-match-demo") + 1

# id -> (file maker, [(expected start of the problem, how-to-fix text)]); file-level problems.
FILE_CASES: dict[str, tuple[Callable[[Path], Path], list[tuple[str, str]]]] = {
    "yaml-unclosed-bracket": (
        _write("c.yaml", "name: x\nbudget: {experiments: 4, batch_size: 2\nparameters: []\n"),
        [("line 3 column 11: YAML syntax error: expected ',' or '}'", "check indentation, colons and quotes")],
    ),
    "yaml-bad-indentation": (
        _write("c.yaml", "name: x\n  budget: 3\n"),
        [("line 2 column 9: YAML syntax error: mapping values are not allowed here", "check indentation")],
    ),
    "yaml-tab-indentation": (
        _write("c.yaml", "name: x\nbudget:\n\texperiments: 3\n"),
        [("line 3 column 1: YAML syntax error:", "check indentation, colons and quotes")],
    ),
    "top-level-list": (
        _write("c.yaml", "- name: x\n- budget: 3\n"),
        [("the file must be a YAML mapping", "with fields such as name:, budget:, parameters:")],
    ),
    "top-level-scalar": (
        _write("c.yaml", "just some text\n"),
        [("the file must be a YAML mapping", "with fields such as name:")],
    ),
    "empty-file": (_write("c.yaml", ""), [("the file must be a YAML mapping", "with fields such as name:")]),
    "only-comments": (_write("c.yaml", "# nothing yet\n"), [("the file must be a YAML mapping", "name:")]),
    "file-not-found": (lambda tmp_path: tmp_path / "missing.yaml", [("file not found", "check the path")]),
    "file-over-size-cap": (_big_file, [("file is larger than 1000 kB", "a campaign file is a few kB")]),
    "not-utf8": (
        _write("c.yaml", b"name: caf\xe9\n"),
        [("cannot read the file (UnicodeDecodeError)", "give a readable UTF-8 YAML file")],
    ),
    "directory": (
        lambda tmp_path: tmp_path,
        [("cannot read the file (IsADirectoryError)", "give a readable UTF-8 YAML file")],
    ),
    # yaml.safe_load reads !!binary as bytes, which pydantic decoded into the campaign's name
    "yaml-binary-value": (
        _write("c.yaml", DEMO_TEXT.replace("name: colour-match-demo", "name: !!binary Y29sb3VyLW1hdGNoLWRlbW8=")),
        [(f"line {_NAME_LINE}: the YAML tag !!binary (bytes) is not allowed in a campaign file",
          "write the value as plain text, a number, a list or a mapping, without a tag")],
    ),
    "yaml-pairs-value": (
        _write("c.yaml", DEMO_TEXT.replace("seed: 7", "seed: 7\nstore: !!omap [{url: a}]")),
        [(f"line {_NAME_LINE + 5}: the YAML tag !!omap (pairs) is not allowed", "without a tag")],
    ),
    "yaml-unknown-tag": (
        _write("c.yaml", "name: !!python/object:os.system x\n"),
        [("line 1: the YAML tag !!python/object:os.system is not allowed", "without a tag")],
    ),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_malformed_file_gives_one_line(case, tmp_path, capsys):
    make, expected = FILE_CASES[case]
    path = make(tmp_path)

    code, out, err = validate(path, capsys)

    assert code == 2, (out, err)
    problems = assert_one_line_problems(path, out, err)
    assert len(problems) == len(expected), problems
    for (start, fix), problem in zip(expected, problems):
        assert problem.startswith(start), problem
        assert fix in problem, problem


def test_several_field_problems_give_several_lines(tmp_path, capsys):
    doc = demo_document()
    del doc["name"]
    doc["budget"]["experiments"] = "many"
    doc["parameters"][0]["bounds"] = [9, 1]
    doc["objectives"][0]["direction"] = "up"
    doc["instruments"]["spectrometer"]["driver"] = "avantes"
    path = write_campaign(tmp_path, doc)

    code, out, err = validate(path, capsys)

    assert code == 2
    problems = assert_one_line_problems(path, out, err)
    assert len(problems) == 5, problems
    for start in (
        "name: required field is missing",
        "budget.experiments: input should be a valid integer",
        "parameters[0](red): lower bound 9 is not below upper bound 1",
        "objectives[0](distance).direction: input should be 'minimize' or 'maximize'",
        "instruments.spectrometer.driver: unknown driver 'avantes'",
    ):
        assert sum(p.startswith(start) for p in problems) == 1, (start, problems)


def test_several_cross_field_problems_give_several_lines(tmp_path, capsys):
    doc = demo_document()
    doc["constraints"] = ["red + green <= 300", "red ** <= 4", "red + blue >= 10"]
    doc["instruments"]["liquid_handler"]["reagents"]["green"] = {"well": "A5", "stock_ul": 100}
    doc["analysis"][0]["objective"] = "colour"
    path = write_campaign(tmp_path, doc)

    code, out, err = validate(path, capsys)

    assert code == 2
    problems = assert_one_line_problems(path, out, err)
    assert [p.split(" ", 1)[0].split(":", 1)[0] for p in problems] == [
        "constraints[0]",
        "constraints[1]",
        "instruments.liquid_handler.reagents.green",
        "analysis[0].objective",
        "analysis",
    ], problems


def test_field_values_with_newlines_stay_on_one_line(tmp_path, capsys):
    """User text inside a problem (a key, a parameter's name) must not break the line."""
    doc = demo_document()
    doc["para\nmeters"] = 1
    doc["parameters"][0]["name"] = "r\ned"
    doc["instruments"]["liquid_handler"]["reagents"]["gr\u2028een"] = {"well": "A5", "stock_ul": 100}
    path = write_campaign(tmp_path, doc)

    code, out, err = validate(path, capsys)

    assert code == 2
    problems = assert_one_line_problems(path, out, err)
    assert len(problems) == 2, problems
    assert any(p.startswith("para\\nmeters: unknown field") for p in problems), problems
    assert any(p.startswith("parameters[0](r\\ned).name: string should match pattern") for p in problems), problems

    # The cross-field check (reached once the fields are right) escapes its keys too.
    doc["parameters"][0]["name"] = "red"
    del doc["para\nmeters"]
    path = write_campaign(tmp_path, doc)
    code, out, err = validate(path, capsys)
    assert code == 2
    problems = assert_one_line_problems(path, out, err)
    assert problems == [
        "instruments.liquid_handler.reagents.gr\\u2028een: not a numeric parameter; "
        "each reagent key must be a parameter holding its volume in uL"
    ]


def test_spec_error_names_its_source():
    with pytest.raises(SpecError) as info:
        parse_spec("name: [", source="mine.yaml")
    assert info.value.source == "mine.yaml"
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("line 1 column 8: YAML syntax error")


# ---------------------------------------------------------------------------------------
# random mutations of the demo: a CampaignSpec or a SpecError of one-line problems, nothing else

DEMO_DOCUMENT = demo_document()

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-3, max_value=400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["red", "distance", "continuous", "categorical", "minimize", "A1", "red <= 1", "opentrons_ot2"])
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10) | st.sampled_from(["name", "type", "bounds", "values"]), children, max_size=4),
    max_leaves=12,
)


def _locations(node: Any, path: tuple = ()) -> list[tuple]:
    """Every key path inside ``node`` (not the root itself)."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        found.append(path + (key,))
        found.extend(_locations(child, path + (key,)))
    return found


@st.composite
def mutated_documents(draw) -> dict:
    doc = copy.deepcopy(DEMO_DOCUMENT)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        locations = _locations(doc)
        if not locations:
            break
        where = draw(st.sampled_from(locations))
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[where[-1]]
        else:
            parent[where[-1]] = draw(values)
    return doc


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated_documents())
def test_random_mutations_give_a_spec_or_one_line_problems(doc):
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    try:
        spec = parse_spec(text, source="fuzz.yaml")
    except SpecError as err:
        assert err.source == "fuzz.yaml"
        assert err.problems, "a SpecError lists at least one problem"
        for problem in err.problems:
            assert isinstance(problem, str) and problem.strip(), problem
            assert len(problem.splitlines()) == 1 and "\n" not in problem and "\r" not in problem, repr(problem)
            assert "Traceback" not in problem
    else:
        assert isinstance(spec, CampaignSpec)


# ---------------------------------------------------------------------------------------
# found by tests/test_fuzz_cli.py: odd paths and arguments, one line each, never a traceback


@pytest.mark.parametrize("name", ["x" * 300 + ".yaml", "a\x00b.yaml"])
def test_a_path_the_system_refuses_is_one_problem(name, capsys):
    code, out, err = validate(name, capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    (line,) = err.splitlines()
    assert "cannot read the file" in line


def test_a_file_name_with_a_line_break_stays_one_line_per_problem(tmp_path, capsys):
    path = tmp_path / "new\nline.yaml"
    path.write_text("name: [\n")
    code, out, err = validate(path, capsys)
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith(str(tmp_path / "new\\nline.yaml") + ": ") and "YAML syntax error" in line


def test_an_argument_with_a_line_break_gives_a_one_line_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["status", "a\nb", "extra"])
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "unrecognized arguments: extra" in line or "a\\nb" in line


def test_export_into_a_missing_folder_is_one_line_exit_1(tmp_path, capsys):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    from orchestrator.run.campaign import Campaign

    Campaign.from_text(DEMO_TEXT, store=store).ask(2)
    code = main(["export", "colour-match-demo", "--store", store, "-o", str(tmp_path / "no" / "such" / "x.csv")])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    (line,) = captured.err.splitlines()
    assert line.startswith("error: No such file or directory") and "x.csv" in line


def test_bounds_too_far_apart_to_compute_with_are_refused():
    """Found by tests/test_fuzz_spec.py (assert_usable): [-1e308, 1e308] has an infinite span."""
    document = demo_document()
    document.pop("instruments"), document.pop("analysis"), document.pop("simulation")
    document["parameters"][0]["bounds"] = [-1e308, 1e308]
    document["constraints"] = []
    with pytest.raises(SpecError) as caught:
        parse_spec(yaml.safe_dump(document))
    assert any("too far apart" in p for p in caught.value.problems)
