"""Generated bad campaign files: loading gives a valid spec or one ``SpecError``, nothing else.

Four families of inputs, each a property-based test:

(a) arbitrary text and bytes; (b) well-formed YAML of random shape; (c) mutations of valid
campaigns (keys dropped, duplicated or retyped, numbers out of range, NaN/inf, huge numbers,
unicode names, empty lists, wrong nesting, bad constraints, bad drivers); (d) alias bombs,
deep nesting and huge files.

The property: ``parse_spec``/``load_spec`` either return a ``CampaignSpec`` whose search space
can be built, or raise ``SpecError`` whose message and every problem are one non-empty line.
Any other exception fails the test. Each module counts the examples it ran; the last test
here adds the counts of every fuzz module and checks that they reach 10,000.

``SDL_FUZZ_SCALE=10 pytest tests/test_fuzz_*.py`` runs ten times as many examples.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.planning.constraints import ConstraintSyntaxError, parse_linear_constraint
from orchestrator.errors import SpecError
from orchestrator.planning.space import SearchSpace
from orchestrator.spec.schema import CampaignSpec
from orchestrator.spec.loader import MAX_DEPTH, MAX_FILE_BYTES, load_spec, parse_spec
from tests.fuzz_settings import FUZZ_SCALE, QUICK_SHARE, examples
from tests.conftest import demo_document

FUZZ_COUNTS: Counter[str] = Counter()
TOTAL_GOAL = 10_000






def fuzz(check: Callable[..., None], full: int, **strategies: st.SearchStrategy) -> tuple[Callable, Callable]:
    """The property ``check`` as two tests: ``full // QUICK_SHARE`` examples in the default run and
    ``full`` in the slow one. Each counts its examples in ``FUZZ_COUNTS["quick:..."]`` or ``["full:..."]``."""

    def counted(mode: str) -> Callable[..., None]:
        @functools.wraps(check)
        def run(*args: Any, **kwargs: Any) -> None:
            FUZZ_COUNTS[f"{mode}:{check.__name__}"] += 1
            check(*args, **kwargs)

        return run

    quick = examples(max(1, full // QUICK_SHARE))(given(**strategies)(counted("quick")))
    slow = pytest.mark.slow(examples(full)(given(**strategies)(counted("full"))))
    return quick, slow


# the property --------------------------------------------------------------------------------


def assert_one_line(text: str) -> None:
    assert isinstance(text, str) and text.strip(), repr(text)
    assert len(text.splitlines()) == 1 and "\n" not in text and "\r" not in text, repr(text)
    assert "Traceback" not in text


def assert_spec_error(err: SpecError, source: str) -> None:
    assert err.source == source
    assert err.problems, "a SpecError lists at least one problem"
    for problem in err.problems:
        assert_one_line(problem)
    assert_one_line(err.message)
    assert_one_line(str(err))


def assert_usable(spec: CampaignSpec) -> None:
    """A spec that loads can be planned over: its constraints parse and its space has finite points."""
    assert isinstance(spec, CampaignSpec)
    space = SearchSpace(spec.parameters, spec.parsed_constraints())
    for corner in (0.0, 0.5, 1.0):
        point = space.from_unit(np.full(space.dim, corner))
        for p in space.numeric:
            assert math.isfinite(point[p.name]), (p.name, point[p.name], p.bounds)


def check_text(text: str, source: str = "fuzz.yaml") -> CampaignSpec | None:
    """The property for YAML text: a usable spec, or a SpecError of one-line problems."""
    try:
        spec = parse_spec(text, source=source)
    except SpecError as err:
        assert_spec_error(err, source)
        return None
    assert_usable(spec)
    return spec


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # the writer is not under test: the fast one


def dump(document: Any, flow: bool | None, unicode: bool) -> str:
    return yaml.dump(document, Dumper=_DUMPER, sort_keys=False, default_flow_style=flow, allow_unicode=unicode,
                     width=10_000)


# (a) arbitrary text and bytes ------------------------------------------------------------------

YAML_ALPHABET = st.sampled_from(list(":-[]{},&*!|>'\"#%@`?.~ \t\n\r") + ["\ufeff", "\x85", "\u2028", "\x00", "é"]) | \
    st.sampled_from(["name", "budget", "parameters", "bounds", "type", "red", "1", "0", "-1", ".nan", ".inf",
                     "!!int ", "!!float ", "!!bool ", "!!timestamp ", "!!binary ", "!!set ", "!!python/name:os ",
                     "2020-13-45", "true", "null", "<<", "&a ", "*a", "---", "...", "  ", "- ", ": "])


def check_arbitrary_text(text):
    check_text(text)


test_arbitrary_text, test_arbitrary_text_full = fuzz(
    check_arbitrary_text, 2500,
    text=st.text(max_size=300),
)


def check_text_of_yaml_tokens(pieces):
    check_text("".join(pieces))


test_text_of_yaml_tokens, test_text_of_yaml_tokens_full = fuzz(
    check_text_of_yaml_tokens, 2500,
    pieces=st.lists(YAML_ALPHABET, max_size=60),
)


@pytest.fixture(scope="module")
def file_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-files")


def check_arbitrary_bytes_in_a_file(file_dir, content):
    path = file_dir / "bytes.yaml"
    path.write_bytes(content)
    try:
        spec, text = load_spec(path)
    except SpecError as err:
        assert_spec_error(err, str(path))
    else:
        assert_usable(spec)
        assert text == content.decode("utf-8")


test_arbitrary_bytes_in_a_file, test_arbitrary_bytes_in_a_file_full = fuzz(
    check_arbitrary_bytes_in_a_file, 500,
    content=st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-16")),
)


# (b) well-formed YAML of random shape -------------------------------------------------------------

CAMPAIGN_WORDS = ["name", "description", "seed", "budget", "experiments", "batch_size", "parameters", "type",
                  "bounds", "values", "unit", "constraints", "objectives", "direction", "instruments",
                  "liquid_handler", "spectrometer", "driver", "reagents", "well", "stock_ul", "simulation", "model",
                  "analysis", "objective", "target", "mixture", "planner", "store", "url", "red", "distance"]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-3, max_value=400)
    | st.integers(min_value=10**18, max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0])
    | st.text(max_size=12)
    | st.sampled_from(["red", "distance", "continuous", "integer", "categorical", "minimize", "maximize", "A1",
                       "red <= 1", "opentrons_ot2", "ocean_optics", "colour_mixing", "simulated_ot2"])
)
KEYS = st.sampled_from(CAMPAIGN_WORDS) | st.text(max_size=8) | st.integers(-2, 2) | st.booleans() | st.none()
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=20,
)


def check_yaml_of_random_shape(document, flow, unicode):
    check_text(dump(document, flow, unicode))


test_yaml_of_random_shape, test_yaml_of_random_shape_full = fuzz(
    check_yaml_of_random_shape, 1000,
    document=VALUES | st.dictionaries(KEYS, VALUES, max_size=8),
    flow=st.sampled_from([None, True, False]),
    unicode=st.booleans(),
)


# (c) mutations of valid campaigns ----------------------------------------------------------------

PLAIN_DOCUMENT = {
    "name": "plain-fuzz",
    "seed": 3,
    "budget": {"experiments": 8, "batch_size": 2},
    "parameters": [
        {"name": "temperature", "type": "continuous", "bounds": [20, 80], "unit": "C"},
        {"name": "cycles", "type": "integer", "bounds": [1, 9]},
        {"name": "solvent", "type": "categorical", "values": ["water", "ethanol", 3]},
    ],
    "constraints": ["temperature + 2*cycles <= 90"],
    "objectives": [{"name": "yield_pct", "direction": "maximize"}],
    "planner": {"initial_experiments": 4, "num_restarts": 2, "raw_samples": 16},
}
DEMO_DOCUMENT = demo_document()
VALID_DOCUMENTS = [DEMO_DOCUMENT, PLAIN_DOCUMENT]

NAME_TOKENS = ["red", "yellow", "blue", "temperature", "cycles", "solvent", "green", "_x", "é", "red2"]
CONSTRAINT_TOKENS = st.sampled_from(
    NAME_TOKENS + ["+", "-", "*", "**", "/", "<=", ">=", "==", "=", "<", ">", "!=", "(", ")", "1", "2.5", "0",
                   "sqrt(", "exp(", "log(", "abs(", "__import__(", "red.real", "lambda", "[", "]", ",", "9**9**9", "1e-400",
                   "-3", "1e999", "1e308", ".5", "5.", "1e", "nan", "inf", " ", "+*", "<=<=", "\t", "\n", "#", "1_000"]
)
BAD_CONSTRAINTS = (
    st.lists(CONSTRAINT_TOKENS, max_size=12).map(" ".join)
    | st.lists(CONSTRAINT_TOKENS, max_size=12).map("".join)
    | st.sampled_from(["a +* b <= 1", "red + green <= 1", "red <= ", "<= 3", "red * blue <= 1", "2 <= 3",
                       "red - red <= 1", "1e308*red + 1e308*red <= 1", "red <= 1 <= 2", "", "   "])
    | st.text(max_size=20)
)
BAD_DRIVERS = st.sampled_from(["", "opentrons", "Opentrons_OT2", "opentrons_ot2 ", "simulated", "ocean optics",
                               "../../etc/passwd", "os.system", "__import__", "simulated_uvvis"]) | st.text(max_size=15)
BAD_NUMBERS = st.sampled_from([0, -1, -1e-9, 10**6, 10**30, -(10**30), 10**400 // 10**370, 1e308, -1e308,
                               math.nan, math.inf, -math.inf, 0.5, 2.5, True, "1", "1e3", "", None])


def _locations(node: Any, path: tuple = ()) -> list[tuple]:
    """Every key path inside ``node`` (not the root)."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        found.append(path + (key,))
        found.extend(_locations(child, path + (key,)))
    return found


def _parent(doc: Any, where: tuple) -> Any:
    for key in where[:-1]:
        doc = doc[key]
    return doc


@st.composite
def replacement(draw, old: Any) -> Any:
    """A value to put where ``old`` was: retyped, out of range, non-finite, renamed, renested or empty."""
    kind = draw(st.sampled_from(["number", "text", "value", "nest", "empty", "constraint", "driver", "scale"]))
    if kind == "number":
        return draw(BAD_NUMBERS | st.floats() | st.integers())
    if kind == "text":
        return draw(st.text(max_size=20) | st.sampled_from(["𝔯𝔢𝔡", "ré d", "red\u2028x", "a" * 200, "Red", "1abc"]))
    if kind == "value":
        return draw(VALUES)
    if kind == "nest":
        return draw(st.sampled_from([[old], {"value": old}, [[old]], {"name": old}]))
    if kind == "empty":
        return draw(st.sampled_from([[], {}, "", None]))
    if kind == "constraint":
        return draw(BAD_CONSTRAINTS)
    if kind == "driver":
        return draw(BAD_DRIVERS)
    if isinstance(old, (int, float)) and not isinstance(old, bool):  # scale a number far out of range
        return old * draw(st.sampled_from([-1, 10**20, 1e300, 1e-300, 0]))
    return old


@st.composite
def mutated_documents(draw) -> dict:
    doc = copy.deepcopy(draw(st.sampled_from(VALID_DOCUMENTS)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        locations = _locations(doc)
        if not locations:
            break
        where = draw(st.sampled_from(locations))
        parent, key = _parent(doc, where), where[-1]
        action = draw(st.sampled_from(["drop", "replace", "replace", "duplicate_item", "add_key"]))
        if action == "drop":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(replacement(parent[key]))
        elif action == "duplicate_item" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(CAMPAIGN_WORDS) | st.text(max_size=6))] = draw(VALUES)
    return doc


def check_mutated_campaigns(doc, flow, unicode):
    check_text(dump(doc, flow, unicode))


test_mutated_campaigns, test_mutated_campaigns_full = fuzz(
    check_mutated_campaigns, 1500,
    doc=mutated_documents(),
    flow=st.sampled_from([None, False]),
    unicode=st.booleans(),
)


def check_mutated_campaigns_with_a_duplicated_line(doc, data):
    """Block-style YAML with one ``key: value`` line repeated: a duplicate key, or a broken file."""
    lines = dump(doc, False, True).splitlines()
    at = data.draw(st.integers(0, len(lines) - 1))
    lines.insert(at, lines[at])
    check_text("\n".join(lines) + "\n")


test_mutated_campaigns_with_a_duplicated_line, test_mutated_campaigns_with_a_duplicated_line_full = fuzz(
    check_mutated_campaigns_with_a_duplicated_line, 300,
    doc=mutated_documents(),
    data=st.data(),
)


@st.composite
def generated_campaigns(draw) -> dict:
    """Campaigns built from scratch: often valid, often wrong across fields (bounds, budget, names)."""
    n_params = draw(st.integers(1, 4))
    names = draw(st.lists(st.sampled_from(NAME_TOKENS) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True),
                          min_size=n_params, max_size=n_params))
    bound = st.integers(-5, 400) | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e308, -1e308])
    parameters = []
    for name in names:
        kind = draw(st.sampled_from(["continuous", "integer", "categorical", "ordinal"]))
        entry: dict[str, Any] = {"name": name, "type": kind}
        if kind == "categorical" or draw(st.integers(0, 9)) == 0:
            entry["values"] = draw(st.lists(st.text(max_size=4) | st.integers(-2, 2) | st.floats(), max_size=4))
        if kind != "categorical" or draw(st.integers(0, 9)) == 0:
            entry["bounds"] = draw(st.lists(bound, min_size=2, max_size=2) | st.lists(bound, max_size=3))
        parameters.append(entry)
    doc: dict[str, Any] = {
        "name": draw(st.sampled_from(["ok-name", "x", "1.2.3", "a b", "", "-x", "é"]) | st.text(max_size=10)),
        "seed": draw(st.integers() | st.sampled_from([0, -1, 2**63, 2**64 + 1])),
        "budget": {"experiments": draw(st.integers(-2, 200)), "batch_size": draw(st.integers(-2, 120))},
        "parameters": parameters,
        "constraints": draw(st.lists(BAD_CONSTRAINTS | st.sampled_from([f"{n} <= 100" for n in names]), max_size=3)),
        "objectives": [{"name": draw(st.sampled_from(["distance", "yield_pct", "1x", ""])),
                        "direction": draw(st.sampled_from(["minimize", "maximize", "min", "MAXIMIZE"]))}],
    }
    if draw(st.booleans()):
        doc["instruments"] = copy.deepcopy(DEMO_DOCUMENT["instruments"])
        doc["instruments"]["liquid_handler"]["driver"] = draw(BAD_DRIVERS | st.just("opentrons_ot2"))
        doc["instruments"]["liquid_handler"]["reagents"] = {
            n: {"well": draw(st.sampled_from(["A1", "P24", "Q1", "A25", "a1", ""])), "stock_ul": draw(BAD_NUMBERS)}
            for n in names
        }
        doc["analysis"] = [{"objective": doc["objectives"][0]["name"], "target": {"mixture": {n: 10 for n in names}}}]
    return doc


def check_generated_campaigns(doc):
    check_text(dump(doc, None, True))


test_generated_campaigns, test_generated_campaigns_full = fuzz(
    check_generated_campaigns, 700,
    doc=generated_campaigns(),
)


PLAIN_WITH_CONSTRAINT = dump({**PLAIN_DOCUMENT, "constraints": ["CONSTRAINT_HERE"]}, None, True)
assert PLAIN_WITH_CONSTRAINT.count("CONSTRAINT_HERE") == 1


def check_constraint_text_parses_or_gives_one_line_reason(text):
    """The constraint parser alone: a LinearConstraint with finite numbers, or ConstraintSyntaxError."""
    try:
        parsed = parse_linear_constraint(text)
    except ConstraintSyntaxError as err:
        assert_one_line(str(err))
    else:
        assert parsed.op in ("<=", ">=", "==") and parsed.coefficients
        assert all(math.isfinite(c) for c in parsed.coefficients.values()) and math.isfinite(parsed.rhs)
    check_text(PLAIN_WITH_CONSTRAINT.replace("CONSTRAINT_HERE", json.dumps(text)))  # a JSON string is YAML too


test_constraint_text_parses_or_gives_one_line_reason, test_constraint_text_parses_or_gives_one_line_reason_full = fuzz(
    check_constraint_text_parses_or_gives_one_line_reason, 800,
    text=BAD_CONSTRAINTS,
)


# (d) alias bombs, deep nesting, huge files -------------------------------------------------------


@st.composite
def alias_documents(draw) -> str:
    """Anchors and aliases in values, keys, merge keys and nested flows: always refused."""
    width = draw(st.integers(1, 9))
    levels = draw(st.integers(1, 6))
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    use = draw(st.sampled_from([
        f"name: *l{levels - 1}", f"parameters: [*l{levels - 1}]", f"<<: *l{levels - 1}", f"? *l{levels - 1}\n: x",
        f"budget: {{experiments: *l{levels - 1}}}", f"budget:\n  <<: *l{levels - 1}",
    ]))
    lines.append(use)
    order = draw(st.permutations(lines)) if draw(st.booleans()) else lines
    return "\n".join(order) + "\n"


def check_alias_bombs_are_refused(text):
    assert check_text(text) is None


test_alias_bombs_are_refused, test_alias_bombs_are_refused_full = fuzz(
    check_alias_bombs_are_refused, 300,
    text=alias_documents(),
)


@st.composite
def nested_documents(draw) -> tuple[str, int]:
    """``name:`` followed by ``depth`` levels of flow lists/maps or block lists/maps; returns (text, depth)."""
    depth = draw(st.integers(1, 200))
    style = draw(st.sampled_from(["flow_list", "flow_map", "flow_mixed", "block_list", "block_map"]))
    if style == "flow_list":
        return "name: " + "[" * depth + "]" * depth + "\n", depth
    if style == "flow_map":
        return "name: " + "{a: " * depth + "1" + "}" * depth + "\n", depth
    if style == "flow_mixed":
        kinds = draw(st.lists(st.booleans(), min_size=depth, max_size=depth))
        opened = "".join("[" if k else "{a: " for k in kinds)
        return "name: " + opened + "1" + "".join("]" if k else "}" for k in reversed(kinds)) + "\n", depth
    if style == "block_list":
        return "name:\n" + "".join("  " * i + "-\n" for i in range(depth - 1)) + "  " * (depth - 1) + "- 1\n", depth
    return "name:\n" + "".join("  " * (i + 1) + "a:\n" for i in range(depth - 1)) + "  " * depth + "a: 1\n", depth


def check_deep_nesting_is_refused(case):
    text, depth = case
    try:
        parse_spec(text, source="deep.yaml")
    except SpecError as err:
        assert_spec_error(err, "deep.yaml")
        if depth > MAX_DEPTH:
            assert any("nested deeper than" in p for p in err.problems), err.problems
    else:
        pytest.fail("a document with only 'name:' cannot be a campaign")


test_deep_nesting_is_refused, test_deep_nesting_is_refused_full = fuzz(
    check_deep_nesting_is_refused, 300,
    case=nested_documents(),
)


def check_files_over_the_size_cap_are_refused(file_dir, extra, filler):
    """A file over 1 MB is refused before it is read, from a path or as text."""
    path = file_dir / "huge.yaml"
    reps = MAX_FILE_BYTES // len(filler.encode()) + extra
    path.write_text(filler * reps, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert_spec_error(caught.value, str(path))
    assert "larger than" in caught.value.message
    with pytest.raises(SpecError) as caught:
        parse_spec(filler * reps, source="huge.yaml")
    assert "larger than" in caught.value.message


test_files_over_the_size_cap_are_refused, test_files_over_the_size_cap_are_refused_full = fuzz(
    check_files_over_the_size_cap_are_refused, 20,
    extra=st.integers(1, 3000),
    filler=st.sampled_from(["# comment\n", "description: x\n", "a" * 99 + "\n", "é"]),
)


# (e) simulator settings and noise ----------------------------------------------------------------
# Found by CI: a mutated wavelengths_nm.step made numpy allocate gigabytes and the kernel killed the run.

SETTING_KEYS = ["dyes", "wavelengths_nm", "path_length_cm", "max_absorbance", "dye", "polar", "quencher",
                "dye_stock_um", "quencher_stock_mm", "integration_ms", "max_counts", "stocks_mm",
                "extinction_per_mm_cm", "path_length", "wavelength_nm"]
NOISE_KEYS = ["absorbance_sd", "drift_per_hour", "pipetting_cv", "shot_gain", "read_noise_counts", "sd"]
SETTING_VALUES = (
    BAD_NUMBERS | st.floats() | st.integers() | st.text(max_size=8)
    | st.fixed_dictionaries({}, optional={"start": BAD_NUMBERS | st.floats(1, 900), "stop": BAD_NUMBERS
                                         | st.floats(1, 2000), "step": BAD_NUMBERS | st.floats(1e-9, 50)})
    | st.lists(st.fixed_dictionaries({}, optional={k: BAD_NUMBERS | st.text(max_size=5) for k in
                                                   ("name", "peak_nm", "width_nm", "absorptivity_per_cm", "x")}),
               max_size=3)
    | st.dictionaries(st.sampled_from(["silver_nitrate", "citrate", "borohydride", "gold"]), BAD_NUMBERS, max_size=3)
)


def check_simulation_section(model, settings, noise):
    """Straight to the factory: a model whose grid is finite and at most MAX_WAVELENGTHS long, or a one-line
    ValueError; then through the campaign file: a usable spec or one-line problems."""
    from simulators import build_simulator
    from simulators.settings import MAX_WAVELENGTHS

    try:
        built = build_simulator(model, settings, noise)
    except ValueError as err:
        assert_one_line(str(err))
    else:
        grid = built.wavelengths_nm
        assert 1 <= grid.size <= MAX_WAVELENGTHS and np.isfinite(grid).all(), grid.size
    doc = copy.deepcopy(DEMO_DOCUMENT)
    doc["simulation"].update(model=model, settings=settings, noise=noise)
    check_text(dump(doc, None, True))


test_simulation_sections, test_simulation_sections_full = fuzz(
    check_simulation_section, 1000,
    model=st.sampled_from(["colour_mixing", "fluorescence", "silver_nanoparticles"]),
    settings=st.dictionaries(st.sampled_from(SETTING_KEYS), SETTING_VALUES, max_size=4),
    noise=st.dictionaries(st.sampled_from(NOISE_KEYS), BAD_NUMBERS | st.floats(), max_size=3),
)


# the count ------------------------------------------------------------------------------------------

FUZZ_MODULES = ("test_fuzz_spec", "test_fuzz_ask_tell", "test_fuzz_cli")


def _counts_of_this_session(mode: str) -> tuple[int, dict[str, int], list[str]]:
    """(total, per module, modules that ran nothing) of the ``mode`` ("quick" or "full") examples run so far."""
    per_module: dict[str, int] = {}
    for module in list(sys.modules.values()):
        stem = Path(getattr(module, "__file__", "") or "").stem
        counts = getattr(module, "FUZZ_COUNTS", None)
        if stem in FUZZ_MODULES and isinstance(counts, Counter):
            ran = sum(n for key, n in counts.items() if key.startswith(f"{mode}:"))
            per_module[stem] = max(per_module.get(stem, 0), ran)
    missing = [m for m in FUZZ_MODULES if not per_module.get(m)]
    return sum(per_module.values()), per_module, missing


def _report_total(mode: str, goal: int, capsys: pytest.CaptureFixture[str]) -> None:
    total, per_module, missing = _counts_of_this_session(mode)
    if missing or FUZZ_SCALE < 1:
        pytest.skip(f"the total needs every fuzz module run at full scale (pytest tests/test_fuzz_*.py); not run: {missing}")
    with capsys.disabled():
        print(f"\n{mode} fuzz examples run: {total} ({', '.join(f'{m}={n}' for m, n in per_module.items())})")
    assert total >= goal, per_module


def test_fuzz_total_of_the_default_run(capsys):
    """The default run's share: run last, after ``pytest tests/test_fuzz_*.py`` has run the quick tests."""
    _report_total("quick", TOTAL_GOAL // QUICK_SHARE, capsys)


@pytest.mark.slow
def test_fuzz_total_reaches_ten_thousand(capsys):
    """The slow run (``pytest -m slow tests/test_fuzz_*.py``): at least 10,000 generated bad inputs."""
    _report_total("full", TOTAL_GOAL, capsys)
