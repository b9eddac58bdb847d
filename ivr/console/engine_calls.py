"""Calls in the IVR on the live board: the engine's flow steps, told to the aggregator.

:func:`follow_calls` sets the engine's node observers (``Services.on_node`` and
``on_left``) so that each step of a call is :meth:`Aggregator.ivr_step` with the
flow, the node, the call's language and the caller's number, and the end of its
walk is :meth:`Aggregator.ivr_left`. What the caller typed or said is never
passed; the number is shown to supervisors by design, unless the flow marks
``caller`` sensitive (then it is left out, as it is from logs and the agent's
handoff).
"""

from __future__ import annotations

from ivr.console.live import Aggregator
from ivr.flows.run import Run, Services
from ivr.log import sensitive_keys

__all__ = ["caller_of", "follow_calls"]

#: What Asterisk sends as the number of a caller who has none (or withholds it).
_NO_NUMBER = frozenset({"", "unknown"})


def caller_of(run: Run) -> str:
    """The caller's number as the board shows it ('' when none, or sensitive)."""
    number = run.channel.env.callerid
    if number in _NO_NUMBER or "caller" in run.sensitive | sensitive_keys.get():
        return ""
    return number


def follow_calls(engine: Services, aggregator: Aggregator) -> None:
    """Show ``engine``'s calls on ``aggregator``'s board from their first node until
    they leave their flow."""

    def step(run: Run, flow: str, node: str) -> None:
        aggregator.ivr_step(
            run.channel.uniqueid, flow, node, caller=caller_of(run), language=run.language
        )

    def left(run: Run) -> None:
        aggregator.ivr_left(run.channel.uniqueid)

    engine.on_node, engine.on_left = step, left
