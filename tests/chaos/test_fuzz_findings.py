"""What bench/fuzz.py found on the AMI side, pinned (no server needed).

- manager.c reads an AMI line into a 1,025-byte buffer; a longer line makes it
  drop the whole action. A callback's hand-over (the caller's context, up to 900
  bytes of JSON) is escaped as an application argument for Originate's
  ``Variable``, which can double it: the callback was never placed.
- A lone surrogate (a JSON ``\\udc80`` escape in an HTTP result) made the AMI
  encoder raise UnicodeEncodeError instead of the project's refusal.
- A callback number with a trailing line break passed ``^...$`` patterns.
"""

from __future__ import annotations

import json

import pytest

from ivr.ami.client import AMI_LINE_MAX, AmiUnsendableError, _sendable, _variable
from ivr.centre.callbacks import CallbackWorker, _handed
from ivr.errors import UnsafeArgumentError
from ivr.flows.queueing import _HANDOFF_BYTES
from routing.types import Assignment, Ticket


def _assignment(context: str, callback: str = "+82255501234") -> Assignment:
    stored = json.dumps({"flow": "main", "context": context})
    return Assignment(Ticket(7, "c7", "billing", (), 0), "ann", "PJSIP/1001", callback, stored)


class TestAmiLines:
    def test_a_line_asterisk_would_drop_is_refused(self) -> None:
        """An action with a line past 1,022 bytes is refused, naming the header."""
        with pytest.raises(AmiUnsendableError, match="Variable is 1031 bytes"):
            _sendable("Originate", {"Variable": "X=" + "a" * 1019}, "id-1")
        assert _sendable("Originate", {"Variable": "X=" + "a" * 1010}, "id-1")

    def test_a_lone_surrogate_is_refused_as_unsafe(self) -> None:
        """Not UnicodeEncodeError: the project's refusal, which callers handle."""
        with pytest.raises(UnsafeArgumentError):
            _sendable("Setvar", {"Variable": "X", "Value": "a\udc80b"}, "id-2")


class TestCallbackContext:
    def test_a_full_context_of_quotes_still_fits_one_line(self) -> None:
        """900 bytes of JSON full of quotes and commas: the agent's leg gets what fits
        (the caller at least), and the Originate stays sendable."""
        caller = {"number": "+82255501234", "name": 'Kim "the, (boss)"'}
        noisy = '",[]()' * 200
        while len(context := json.dumps({"caller": caller, "said": noisy})) > _HANDOFF_BYTES:
            noisy = noisy[:-1]
        assert len(context) > _HANDOFF_BYTES - 10
        variables = _handed(_assignment(context))
        headers = {"Variable": [f"{k}={_variable(v)}" for k, v in variables.items()]}
        wire = _sendable("Originate", headers, "id-3")
        assert max(len(line) for line in wire.split(b"\r\n")) <= AMI_LINE_MAX
        assert json.loads(variables["__IVR_CONTEXT"])["caller"] == caller

    def test_a_short_context_goes_whole(self) -> None:
        context = json.dumps({"caller": {"number": "+8225550", "name": "Lee"}, "menu": "2"})
        assert _handed(_assignment(context))["__IVR_CONTEXT"] == context


class _Router:
    def __init__(self) -> None:
        self.abandoned: list[tuple[int, str]] = []

    async def abandon(self, ticket: Ticket, reason: str = "caller") -> None:
        self.abandoned.append((ticket.id, reason))


class TestCallbackNumber:
    async def test_a_number_with_a_trailing_line_break_is_never_dialled(self) -> None:
        """'12345\\n' passes the allow-list's '^...$' pattern; the worker refuses it
        (ends the callback unanswered) before any dial string is built."""
        router = _Router()
        worker = CallbackWorker(router, ami=None, allow=("*",))  # type: ignore[arg-type]
        result = await worker.place(_assignment("{}", callback="12345\n"))
        assert result == "refused"
        assert router.abandoned == [(7, "unanswered")]
