"""ROUTING.md's invariants, checked from outside a router: on its ``snapshot()``, the
agents' configuration and the tickets' requirements as the driver knows them.

Shared by the model-based test (``tests/model``) and the soak (``bench/routing_soak.py``).
Each check returns the violations it found, as sentences; an empty list is a pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Set
from typing import Any

from routing.kpis import ENDINGS, summarize
from routing.reference import TicketRecord, call_order, eligible
from routing.types import TERMINAL, Agent

Snapshot = Mapping[str, Mapping[str, Mapping[str, Any]]]


def reservations(snapshot: Snapshot, orphans: Set[str] = frozenset()) -> list[str]:
    """No agent holds two reservations; a reserved agent's ticket names them. ``orphans``
    are calls in progress whose agent was moved to another routing group meanwhile."""
    found: list[str] = []
    agents, tickets = snapshot["agents"], snapshot["tickets"]
    holders = Counter(
        t["agent"]
        for call, t in tickets.items()
        if t["stage"] == "reserved" or (t["stage"] == "connected" and call not in orphans)
    )
    for agent, count in holders.items():
        if count > 1:
            found.append(f"agent {agent} holds {count} tickets")
    for call, t in tickets.items():
        want = {"reserved": "reserved", "connected": "on_call"}.get(t["stage"])
        if call in orphans:
            continue
        if want and agents.get(t["agent"], {}).get("state") != want:
            found.append(f"{call} is {t['stage']} with {t['agent']}, who is not {want}")
    for agent, a in agents.items():
        if a["state"] in ("reserved", "on_call") and holders[agent] != 1:
            found.append(f"agent {agent} is {a['state']} with no ticket naming them")
    return found


def work_conserving(
    snapshot: Snapshot,
    profiles: Mapping[str, Agent],
    needs: Mapping[str, TicketRecord],
    closed: Set[str] = frozenset(),
) -> list[str]:
    """No available agent is eligible for a waiting ticket (but the ``closed`` ones:
    callbacks while no callback worker is alive)."""
    free = [a for a, row in snapshot["agents"].items() if row["state"] == "available"]
    waiting = [
        c for c, row in snapshot["tickets"].items() if row["stage"] == "waiting" and c not in closed
    ]
    return [
        f"{agent} is available and eligible for waiting {call}"
        for agent in free
        for call in waiting
        if eligible(profiles[agent], "available", needs[call])
    ]


def best_call_first(
    before: Snapshot,
    after: Snapshot,
    profiles: Mapping[str, Agent],
    needs: Mapping[str, TicketRecord],
    closed: Set[str] = frozenset(),
) -> list[str]:
    """Every reservation made by a step went to a ticket no still-waiting ticket the same
    agent could take comes before (priority, then arrival, then seq), across the group."""
    found: list[str] = []
    waiting = [
        c for c, row in after["tickets"].items() if row["stage"] == "waiting" and c not in closed
    ]
    for call, row in after["tickets"].items():
        old = before["tickets"].get(call)
        if row["stage"] != "reserved" or (
            old is not None and old["stage"] == "reserved" and old["agent"] == row["agent"]
        ):
            continue
        agent = profiles[row["agent"]]
        mine = call_order(needs[call])
        for other in waiting:
            if eligible(agent, "available", needs[other]) and call_order(needs[other]) < mine:
                found.append(f"{agent.id} took {call} while better {other} waits")
    return found


def terminal_once(before: Snapshot, after: Snapshot) -> list[str]:
    """A ticket that reached a terminal stage stays in it."""
    return [
        f"{call} left its terminal stage {old['stage']} for {after['tickets'][call]['stage']}"
        for call, old in before["tickets"].items()
        if old["stage"] in TERMINAL and after["tickets"][call]["stage"] != old["stage"]
    ]


def one_terminal_event(events: Iterable[tuple[float, Mapping[str, str]]]) -> list[str]:
    """Each ticket has at most one terminal event (completed or an ending)."""
    ends = Counter(
        e.get("ticket", "") for _, e in events if e.get("event") in ("completed", *ENDINGS)
    )
    return [f"ticket {t} ended {n} times" for t, n in ends.items() if n > 1]


def kpis_match(
    events: Iterable[tuple[float, Mapping[str, str]]],
    counters: Mapping[str, Mapping[str, int]],
    now: float,
) -> list[str]:
    """The per-queue counts folded from the event stream equal the model's own counters."""
    queues = summarize(events, now=now).queues
    found: list[str] = []
    for queue, want in counters.items():
        stats = queues.get(queue)
        for key, value in want.items():
            got = getattr(stats, key) if stats is not None else 0
            if got != value:
                found.append(f"queue {queue}: {key} is {got} in the stream, {value} in the model")
    return found


def all_of(
    before: Snapshot,
    after: Snapshot,
    profiles: Mapping[str, Agent],
    needs: Mapping[str, TicketRecord],
    closed: Set[str] = frozenset(),
    orphans: Set[str] = frozenset(),
    *,
    composite: bool = False,
) -> list[str]:
    """Every snapshot invariant of one step. A ``composite`` step (``tick``: several
    operations, one after the other) is not held to best-call-first as a whole: a call
    put back by a later expiry may outrank one an earlier expiry's agent took."""
    return [
        *reservations(after, orphans),
        *work_conserving(after, profiles, needs, closed),
        *([] if composite else best_call_first(before, after, profiles, needs, closed)),
        *terminal_once(before, after),
    ]


def orphaned(before: Snapshot, agent: str) -> set[str]:
    """The calls in progress an agent leaves behind when moved to another group."""
    return {
        call
        for call, t in before["tickets"].items()
        if t["stage"] == "connected" and t["agent"] == agent
    }
