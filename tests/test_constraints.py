"""The linear-constraint parser: what it accepts, what it computes, what it refuses (no eval)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.planning.constraints import ConstraintSyntaxError, LinearConstraint, parse_linear_constraint


# text -> (coefficients, op, rhs), everything moved to the left: sum c_i * x_i  op  rhs
PARSE_CASES = {
    "red + yellow + blue <= 300": ({"red": 1.0, "yellow": 1.0, "blue": 1.0}, "<=", 300.0),
    "2*red - 0.5 blue >= 10": ({"red": 2.0, "blue": -0.5}, ">=", 10.0),
    "2 * red + 3*blue <= 12": ({"red": 2.0, "blue": 3.0}, "<=", 12.0),
    "red*2 + blue * 0.25 <= 1": ({"red": 2.0, "blue": 0.25}, "<=", 1.0),
    "red + 3 <= blue": ({"red": 1.0, "blue": -1.0}, "<=", -3.0),
    "2*red + 5 >= blue - 1": ({"red": 2.0, "blue": -1.0}, ">=", -6.0),
    "10 >= red + blue": ({"red": -1.0, "blue": -1.0}, ">=", -10.0),
    "red < 5": ({"red": 1.0}, "<=", 5.0),
    "red > 5": ({"red": 1.0}, ">=", 5.0),
    "red + blue == 150": ({"red": 1.0, "blue": 1.0}, "==", 150.0),
    "red = blue": ({"red": 1.0, "blue": -1.0}, "==", 0.0),
    "1e2*red + 2.5E-1*blue <= 1e3": ({"red": 100.0, "blue": 0.25}, "<=", 1000.0),
    "3e+1 red <= 6E+01": ({"red": 30.0}, "<=", 60.0),
    ".5*red <= 1.": ({"red": 0.5}, "<=", 1.0),
    "-red - 2*blue >= -10": ({"red": -1.0, "blue": -2.0}, ">=", -10.0),
    "-3*red <= -6": ({"red": -3.0}, "<=", -6.0),
    "+red <= +4": ({"red": 1.0}, "<=", 4.0),
    "red + red + 0.5*red <= 5": ({"red": 2.5}, "<=", 5.0),
    "red + blue - blue <= 1": ({"red": 1.0}, "<=", 1.0),  # a name that cancels is dropped
    "red - 2 + 1 <= 3 - 1": ({"red": 1.0}, "<=", 3.0),
    "  red_1+_x2<=7  ": ({"red_1": 1.0, "_x2": 1.0}, "<=", 7.0),
    "red\t+\tblue\n<= 3": ({"red": 1.0, "blue": 1.0}, "<=", 3.0),
}


@pytest.mark.parametrize("text", list(PARSE_CASES))
def test_parse(text):
    coefficients, op, rhs = PARSE_CASES[text]
    parsed = parse_linear_constraint(text)
    assert isinstance(parsed, LinearConstraint)
    assert parsed.text == text
    assert parsed.op == op
    assert dict(parsed.coefficients) == pytest.approx(coefficients)
    assert set(parsed.coefficients) == set(coefficients)
    assert parsed.rhs == pytest.approx(rhs)


# (text, values, slack, satisfied)
SLACK_CASES = [
    ("red + blue <= 10", {"red": 3, "blue": 4}, 3.0, True),
    ("red + blue <= 10", {"red": 6, "blue": 5}, -1.0, False),
    ("red + blue <= 10", {"red": 5, "blue": 5}, 0.0, True),
    ("red < 10", {"red": 12.5}, -2.5, False),
    ("2*red >= 4", {"red": 3}, 2.0, True),
    ("2*red >= 4", {"red": 1}, -2.0, False),
    ("red > blue", {"red": 1, "blue": 2}, -1.0, False),
    ("red - 0.5*blue >= -1", {"red": 0, "blue": 2}, 0.0, True),
    ("red + blue == 10", {"red": 5, "blue": 5}, 0.0, True),
    ("red + blue == 10", {"red": 5, "blue": 6}, -1.0, False),
    ("red + blue == 10", {"red": 5, "blue": 4}, -1.0, False),
    ("red = 2", {"red": 2.0}, 0.0, True),
    # the tolerance scales with |rhs|: 1e-6 * 1000 = 1e-3
    ("red <= 1000", {"red": 1000.0001}, -0.0001, True),
    ("red <= 1000", {"red": 1000.01}, -0.01, False),
    ("red <= 0", {"red": 5e-7}, -5e-7, True),
    ("red <= 0", {"red": 2e-6}, -2e-6, False),
]


@pytest.mark.parametrize(("text", "values", "slack", "satisfied"), SLACK_CASES)
def test_slack_and_is_satisfied(text, values, slack, satisfied):
    parsed = parse_linear_constraint(text)
    assert parsed.slack(values) == pytest.approx(slack, abs=1e-12)
    assert parsed.is_satisfied(values) is satisfied


def test_values_may_hold_other_names_and_numeric_strings():
    parsed = parse_linear_constraint("red + 2*blue <= 10")
    assert parsed.slack({"red": "1", "blue": 2, "yellow": 1000}) == pytest.approx(5.0)


def test_is_satisfied_takes_a_tolerance():
    parsed = parse_linear_constraint("red <= 1")
    assert not parsed.is_satisfied({"red": 1.01})
    assert parsed.is_satisfied({"red": 1.01}, tol=0.02)


# text -> a piece of the one-line message
REJECT_CASES = {
    "red * blue <= 3": "expected a number after 'red *' (only linear terms)",
    "red ** 2 <= 3": "expected a number after 'red *'",
    "2 * <= 3": "expected a parameter name after '2 *'",
    "2 * 3 <= red": "expected a parameter name after '2 *'",
    "import os": "needs exactly one of <=, >=, ==",
    "red + blue": "needs exactly one of <=, >=, ==",
    "": "needs exactly one of <=, >=, ==",
    "0 <= red <= 3": "needs exactly one of <=, >=, ==",
    "red >== 3": "needs exactly one of <=, >=, ==",
    "<= 3": "a side of the constraint is empty",
    "red <=": "a side of the constraint is empty",
    "red + <= 3": "expression ends with a sign",
    "red -": "needs exactly one",
    "red blue <= 3": "expected + or - before 'blue'",
    "2 3 <= red": "expected + or - before '3'",
    "* red <= 3": "unexpected '*'",
    "red + * blue <= 3": "unexpected '*'",
    "red^2 <= 3": "unexpected character '^' at position 3",
    "red / 2 <= 3": "unexpected character '/' at position 4",
    "(red + blue) <= 3": "unexpected character '(' at position 0",
    "__import__('os').system('ls') <= 1": "unexpected character '(' at position 10",
    "red ≤ 3": "unexpected character '≤' at position 4",
    "red <= 3; import os": "unexpected character ';'",
    "3 <= 4": "names no parameter",
    "red - red <= 1": "names no parameter",
    "0*red <= 1": "names no parameter",
    "1e999*red <= 1": "too large to be finite",
    "red <= 1e999": "too large to be finite",
    "red*1e400 >= 0": "too large to be finite",
}


@pytest.mark.parametrize("text", list(REJECT_CASES))
def test_rejects_with_a_clear_message(text):
    with pytest.raises(ConstraintSyntaxError) as info:
        parse_linear_constraint(text)
    message = str(info.value)
    assert REJECT_CASES[text] in message
    assert "\n" not in message and message.strip() == message
    assert isinstance(info.value, ValueError)


def test_parsing_does_not_evaluate_code(tmp_path, monkeypatch):
    """Text that would do something under eval is refused and does nothing."""
    monkeypatch.chdir(tmp_path)
    for text in ("open('pwned', 'w') <= 1", "__import__('pathlib').Path('pwned').touch() == 0"):
        with pytest.raises(ConstraintSyntaxError):
            parse_linear_constraint(text)
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------------------------
# round trip: format sum c_i * x_i (some terms moved to the right) op rhs, parse it back

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)
coefficient = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False).filter(lambda c: c != 0)
constant = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
OPS = {"<=": "<=", "<": "<=", ">=": ">=", ">": ">=", "==": "==", "=": "=="}


def _term(c: float, name: str, style: int) -> str:
    magnitude = repr(abs(c))
    if style == 0:
        return f"{magnitude}*{name}"
    if style == 1:
        return f"{magnitude} * {name}"
    if style == 2:
        return f"{magnitude} {name}"
    return f"{name}*{magnitude}"


def _side(terms: list[tuple[float, str | None, int]]) -> str:
    """``[(coefficient, name or None for a constant, style)]`` -> "2.5*a - 3*b + 4.0"."""
    text = ""
    for i, (c, name, style) in enumerate(terms):
        body = repr(abs(c)) if name is None else _term(c, name, style)
        sign = "-" if math.copysign(1.0, c) < 0 else "+"
        text += (("-" if sign == "-" else "") if i == 0 else f" {sign} ") + body
    return text


@st.composite
def constraints(draw):
    coefficients = draw(st.dictionaries(names, coefficient, min_size=1, max_size=5))
    rhs_right = draw(constant)
    left_constant = draw(st.none() | constant)
    left, right = [], []
    for name, c in coefficients.items():
        style = draw(st.integers(0, 3))
        if draw(st.booleans()):
            right.append((-c, name, style))  # moved to the right with its sign flipped
        else:
            left.append((c, name, style))
    if left_constant is not None or not left:
        left_constant = left_constant or 0.0
        left.insert(draw(st.integers(0, len(left))), (left_constant, None, 0))
    else:
        left_constant = 0.0
    right.insert(draw(st.integers(0, len(right))), (rhs_right, None, 0))
    op = draw(st.sampled_from(list(OPS)))
    text = f"{_side(left)} {op} {_side(right)}"
    return text, coefficients, OPS[op], rhs_right - left_constant


@settings(max_examples=200, deadline=None)
@given(case=constraints())
def test_round_trip_of_formatted_constraints(case):
    text, coefficients, op, rhs = case
    parsed = parse_linear_constraint(text)
    assert parsed.op == op, text
    assert set(parsed.coefficients) == set(coefficients), text
    for name, c in coefficients.items():
        assert math.isclose(parsed.coefficients[name], c, rel_tol=1e-12, abs_tol=0.0), (text, name)
    assert math.isclose(parsed.rhs, rhs, rel_tol=1e-9, abs_tol=1e-9), text


@settings(max_examples=100, deadline=None)
@given(
    coefficients=st.dictionaries(names, coefficient, min_size=1, max_size=4),
    rhs=constant,
    values=st.lists(st.floats(min_value=-1e3, max_value=1e3), min_size=4, max_size=4),
)
def test_slack_is_rhs_minus_lhs(coefficients, rhs, values):
    assignment = dict(zip(coefficients, values))
    lhs = sum(c * assignment[n] for n, c in coefficients.items())
    text = _side([(c, n, 0) for n, c in coefficients.items()])
    le = parse_linear_constraint(f"{text} <= {rhs!r}")
    ge = parse_linear_constraint(f"{text} >= {rhs!r}")
    eq = parse_linear_constraint(f"{text} == {rhs!r}")
    tol = 1e-6 * max(1.0, abs(lhs), abs(rhs))
    assert le.slack(assignment) == pytest.approx(rhs - lhs, abs=tol)
    assert ge.slack(assignment) == pytest.approx(lhs - rhs, abs=tol)
    assert eq.slack(assignment) == pytest.approx(-abs(lhs - rhs), abs=tol)
    assert eq.slack(assignment) <= 0
    assert le.is_satisfied(assignment) or ge.is_satisfied(assignment)
