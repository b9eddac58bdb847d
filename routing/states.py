"""The agent state machine, one table for every store.

    logged_out -login-> available -reserve-> reserved -connect-> on_call
    on_call -complete-> wrap_up -ready (end of wrap-up)-> available
    reserved -miss-> missed (the phone did not answer) -resume-> available
    reserved -release-> available (the caller hung up while it rang)
    reserved -logout-> logged_out (forced: the ticket goes back to waiting)
    available | missed -pause(reason)-> paused -resume-> available
    available | paused | missed -logout-> logged_out

A ``pause`` asked while ``reserved``, ``on_call`` or ``wrap_up``, and a
``logout`` asked while ``on_call`` or ``wrap_up``, are **pending**
(:data:`PENDING`): the state stays, and the request takes effect at the
moment the agent would become ``available``. An action from a state it does
not allow is refused with a message naming what is allowed; repeating an
action that already took effect (a replayed event) changes nothing, and
``login`` of an agent who is logged in changes nothing either.
"""

from __future__ import annotations

from typing import Final, Literal

from routing.errors import RoutingError

__all__ = [
    "BUSY",
    "FORCED",
    "PENDING",
    "STATES",
    "TRANSITIONS",
    "InvalidTransition",
    "decide",
    "next_state",
]

STATES: Final = (
    "logged_out",
    "available",
    "reserved",
    "on_call",
    "wrap_up",
    "paused",
    "missed",
)

#: States in which the agent holds a call (they count towards occupancy).
BUSY: Final = frozenset({"reserved", "on_call", "wrap_up"})

#: action -> (the states it is allowed from, the state it leads to).
TRANSITIONS: Final[dict[str, tuple[frozenset[str], str]]] = {
    "login": (frozenset({"logged_out"}), "available"),
    "logout": (frozenset({"available", "paused", "missed"}), "logged_out"),
    "pause": (frozenset({"available", "missed"}), "paused"),
    "resume": (frozenset({"paused", "missed"}), "available"),
    "reserve": (frozenset({"available"}), "reserved"),
    "connect": (frozenset({"reserved"}), "on_call"),
    "miss": (frozenset({"reserved"}), "missed"),
    "release": (frozenset({"reserved"}), "available"),
    "complete": (frozenset({"on_call"}), "wrap_up"),
    "ready": (frozenset({"wrap_up"}), "available"),
}

#: Actions that also take effect from these states, with more to do: a forced logout
#: of a ringing agent gives the ticket back to the queue.
FORCED: Final[dict[str, frozenset[str]]] = {
    "logout": frozenset({"reserved"}),
}

#: Requests that wait for the call (and its wrap-up) to end, from these states.
PENDING: Final[dict[str, frozenset[str]]] = {
    "pause": frozenset({"reserved", "on_call", "wrap_up"}),
    "logout": frozenset({"on_call", "wrap_up"}),
}

#: Actions that change nothing, rather than being refused, from these states.
_UNCHANGED: Final[dict[str, frozenset[str]]] = {
    "login": frozenset(STATES) - {"logged_out"},
}

Decision = Literal["done", "pending", "unchanged"]


class InvalidTransition(RoutingError, ValueError):  # noqa: N818 - reads as the refusal
    """An action the agent's state does not allow."""


def decide(agent: str, state: str, action: str) -> tuple[Decision, str]:
    """What ``action`` does from ``state``: ``("done", target)``, ``("pending", state)``
    or ``("unchanged", state)``; raises :class:`InvalidTransition` naming what is allowed."""
    if action not in TRANSITIONS:
        raise InvalidTransition(f"unknown action {action!r}; allowed: {', '.join(TRANSITIONS)}")
    allowed, target = TRANSITIONS[action]
    if state in allowed or state in FORCED.get(action, frozenset()):
        return "done", target
    if state in PENDING.get(action, frozenset()):
        return "pending", state
    if state == target or state in _UNCHANGED.get(action, frozenset()):
        return "unchanged", state
    allowed = allowed | FORCED.get(action, frozenset())
    pending = PENDING.get(action)
    later = f" (pending from {', '.join(sorted(pending))})" if pending else ""
    raise InvalidTransition(
        f"agent {agent!r} is {state}; {action} is allowed from {', '.join(sorted(allowed))}{later}"
    )


def next_state(agent: str, state: str, action: str) -> str | None:
    """The state after ``action``, or ``None`` when it changes nothing now (it already
    took effect, or it is pending)."""
    result, target = decide(agent, state, action)
    return target if result == "done" else None
