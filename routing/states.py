"""The agent state machine, one table for every store.

    logged_out -login-> available -reserve-> reserved -connect-> on_call
    on_call -complete-> wrap_up -ready (timer)-> available
    reserved -miss-> missed (the phone did not answer) -resume-> available
    reserved -release-> available (the caller hung up while it rang)
    available | missed | wrap_up -pause(reason)-> paused -resume-> available
    available | paused | missed | wrap_up -logout-> logged_out

An action from a state it does not allow is refused with a message naming
what is allowed; repeating an action that already took effect (a replayed
event) changes nothing.
"""

from __future__ import annotations

from typing import Final

from routing.errors import RoutingError

__all__ = ["STATES", "TRANSITIONS", "InvalidTransition", "next_state"]

STATES: Final = (
    "logged_out",
    "available",
    "reserved",
    "on_call",
    "wrap_up",
    "paused",
    "missed",
)

TRANSITIONS: Final[dict[str, tuple[frozenset[str], str]]] = {
    "login": (frozenset({"logged_out"}), "available"),
    "logout": (frozenset({"available", "paused", "missed", "wrap_up"}), "logged_out"),
    "pause": (frozenset({"available", "missed", "wrap_up"}), "paused"),
    "resume": (frozenset({"paused", "missed"}), "available"),
    "reserve": (frozenset({"available"}), "reserved"),
    "connect": (frozenset({"reserved"}), "on_call"),
    "miss": (frozenset({"reserved"}), "missed"),
    "release": (frozenset({"reserved"}), "available"),
    "complete": (frozenset({"on_call"}), "wrap_up"),
    "ready": (frozenset({"wrap_up"}), "available"),
}


class InvalidTransition(RoutingError, ValueError):  # noqa: N818 - reads as the refusal
    """An action the agent's state does not allow."""


def next_state(agent: str, state: str, action: str) -> str | None:
    """The state after ``action``, or ``None`` when it already took effect (idempotent)."""
    if action not in TRANSITIONS:
        raise InvalidTransition(f"unknown action {action!r}; allowed: {', '.join(TRANSITIONS)}")
    allowed, target = TRANSITIONS[action]
    if state in allowed:
        return target
    if state == target:
        return None
    raise InvalidTransition(
        f"agent {agent!r} is {state}; {action} is allowed from {', '.join(sorted(allowed))}"
    )
