"""Numbers the engine may dial for a caller: whole numbers only, never a line break."""

from __future__ import annotations

import pytest

from ivr.numbers import callback_dial
from routing.types import check_callback_number


@pytest.mark.parametrize("number", ["5551234\n", "+821012345678\n", "555\n1234", "555 1234"])
def test_a_number_with_a_line_break_or_space_is_refused(number: str) -> None:
    with pytest.raises(ValueError, match="callback number"):
        check_callback_number(number)


def test_a_whole_number_is_taken() -> None:
    check_callback_number("+821012345678")


def test_an_allowed_number_with_a_trailing_line_break_is_not_dialled() -> None:
    dial = {"internal": "PJSIP/{to}", "external": "PJSIP/{to}@trunk"}
    assert callback_dial("5551234\n", ("555*",), **dial) is None
    assert callback_dial("5551234", ("555*",), **dial) == "PJSIP/5551234@trunk"
