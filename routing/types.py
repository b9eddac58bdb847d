"""The routing contract in one place: value types and the ``Router`` protocol.

``routing/ROUTING.md`` defines what each operation means; the reference
model (``routing.reference``) is its executable form, and every store (the
Redis router) implements this protocol with the same answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "DEFAULT_GROUP",
    "OUTCOME_STAGE",
    "TERMINAL",
    "Agent",
    "Assignment",
    "Change",
    "Outcome",
    "Router",
    "Stage",
    "Strategy",
    "Ticket",
    "check_callback_number",
]

DEFAULT_GROUP = "default"
Strategy = Literal["longest_idle", "most_skilled", "round_robin", "least_occupied"]
#: How a call that never reached an agent left (``abandon``'s reason); ``unanswered``
#: is a callback whose customer did not answer.
Outcome = Literal["caller", "overflow", "timeout", "unanswered"]
Stage = Literal[
    "waiting",
    "reserved",
    "connected",
    "completed",
    "abandoned",
    "overflowed",
    "timed_out",
    "lease_expired",
    "unanswered",
]
#: The stages a ticket ends in, each reached once.
TERMINAL: frozenset[str] = frozenset(
    {"completed", "abandoned", "overflowed", "timed_out", "lease_expired", "unanswered"}
)
#: ``abandon``'s reason -> the ticket's terminal stage (and its event).
OUTCOME_STAGE: Mapping[str, str] = {
    "caller": "abandoned",
    "overflow": "overflowed",
    "timeout": "timed_out",
    "unanswered": "unanswered",
}

_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")


def check_callback_number(number: str) -> None:
    """Refuse anything but 3 to 20 digits with an optional '+' (every store uses this)."""
    if not _NUMBER.fullmatch(number):
        raise ValueError(f"a callback number is 3 to 20 digits with an optional '+': {number!r}")


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent as configured (``routing.yaml`` or the API); run-time state is the store's."""

    id: str
    endpoint: str
    skills: Mapping[str, int] = field(default_factory=dict)
    #: Languages spoken; empty: every language.
    languages: tuple[str, ...] = ()
    site: str = ""
    group: str = DEFAULT_GROUP
    #: Seconds of wrap-up after each call, overriding the queue's; None: the queue's.
    wrap_up: float | None = None


@dataclass(frozen=True, slots=True)
class Ticket:
    """One call waiting for an agent (what ``enqueue`` returns)."""

    id: int
    call_id: str
    queue: str
    skills: tuple[tuple[str, int], ...]
    priority: int
    any_skills: tuple[tuple[str, int], ...] = ()
    language: str | None = None
    site: str = ""
    group: str = DEFAULT_GROUP


@dataclass(frozen=True, slots=True)
class Assignment:
    """An agent reserved for a ticket."""

    ticket: Ticket
    agent_id: str
    endpoint: str
    #: The number to call back, when the caller asked for a callback.
    callback: str = ""
    #: A callback's context: what the caller chose before (JSON), for the agent.
    context: str = ""


@dataclass(frozen=True, slots=True)
class Change:
    """What an agent state change did: ``done``, ``pending`` (takes effect when the
    call and wrap-up end) or ``unchanged`` (it had already taken effect);
    ``released`` is the ticket a forced logout took back from a ringing agent."""

    result: Literal["done", "pending", "unchanged"]
    released: Assignment | None = None

    def __bool__(self) -> bool:
        return self.result == "done"


class Router(Protocol):
    """What the engine asks of routing (ROUTING.md says what each answer means)."""

    async def enqueue(
        self,
        call_id: str,
        queue: str,
        skills: Mapping[str, int],
        priority: int = 0,
        *,
        strategy: str = "longest_idle",
        customer: str = "",
        any_skills: Mapping[str, int] | None = None,
        language: str | None = None,
        site: str = "",
    ) -> Ticket: ...

    async def wait(self, ticket: Ticket) -> Assignment: ...

    async def requalify(
        self,
        ticket: Ticket,
        skills: Mapping[str, int],
        priority: int | None = None,
        any_skills: Mapping[str, int] | None = None,
        site_only: bool | None = None,
    ) -> None: ...

    async def abandon(self, ticket: Ticket, reason: str = "caller") -> None: ...
    async def connected(self, assignment: Assignment, at: float | None = None) -> None: ...
    async def completed(self, assignment: Assignment) -> None: ...
    async def missed(self, assignment: Assignment, *, agent_fault: bool = True) -> None: ...
    async def request_callback(self, ticket: Ticket, number: str, context: str = "") -> bool: ...
    async def position(self, ticket: Ticket) -> int | None: ...
    async def staffed(
        self, skills: Mapping[str, int], any_skills: Mapping[str, int] | None = None
    ) -> int: ...
    async def handle_time(self, queue: str) -> float | None: ...
    async def note(self, event: str, **fields: str) -> None: ...

    async def add_agents(self, agents: Iterable[Agent]) -> None: ...
    async def login(self, agent_id: str) -> Change: ...
    async def logout(self, agent_id: str) -> Change: ...
    async def pause(self, agent_id: str, reason: str = "") -> Change: ...
    async def resume(self, agent_id: str) -> Change: ...
    async def end_wrap_up(self, agent_id: str) -> Change: ...
    async def agent_state(self, agent_id: str) -> str | None: ...
    async def agents(self) -> list[dict[str, Any]]: ...
