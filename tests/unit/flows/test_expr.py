"""The branch-condition language: what it accepts, what it refuses, how it evaluates."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.flows.expr import ExpressionError, parse

VARS: dict[str, Any] = {
    "caller": {"tier": "gold", "number": "5551234"},
    "attempts": 2,
    "intent": "Billing",
    "digits": "0042",
    "empty": "",
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('caller.tier == "gold"', True),
        ("caller.tier != 'gold'", False),
        ("attempts >= 3", False),
        ("not (attempts >= 3)", True),
        ('lower(intent) in ["billing", "invoice"]', True),
        ('startswith(caller.number, "555") and len(digits) == 4', True),
        ("digits == 42", True),
        ('digits > "41"', True),
        ("missing == null", True),
        ("missing > 3", False),
        ("attempts + 1 == 3", True),
        ('"a" + "b" == "ab"', True),
        ("-attempts < 0", True),
        ('contains(intent, "ill") or false', True),
        ('intent not in ["Sales"]', True),
        ("empty", False),
        ("number(digits) == 42", True),
    ],
)
def test_evaluates(source: str, expected: bool) -> None:
    """Each supported construct evaluates as a reader would expect."""
    assert parse(source).test(VARS) is expected


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        ("attempts >", "expected a value", 11),
        ('__import__("os")', "unknown function '__import__'; allowed:", 1),
        ("len(a, b)", "len() takes 1 argument, got 2", 1),
        ("a == 1 2", "unexpected '2'", 8),
        ("a ; b", "unexpected character ';'", 3),
        ("(a == 1", "expected ')'", 8),
    ],
)
def test_refuses_with_column(source: str, message: str, column: int) -> None:
    """A bad expression says what is wrong and at which column."""
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        parse(source)
    assert e.value.column == column


def test_names_are_collected() -> None:
    """The variables an expression reads are known at load time (for checks)."""
    assert parse("a.b == 1 or lower(c) in [d]").names == {"a.b", "c", "d"}


@given(st.text(max_size=60))
def test_never_crashes(source: str) -> None:
    """Any text parses or raises ExpressionError; a parsed one evaluates without raising."""
    try:
        expression = parse(source)
    except ExpressionError:
        return
    expression.evaluate(VARS)
