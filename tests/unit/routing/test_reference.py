"""The reference model on the cases of issue 11: each one failed on the old in-memory or
Redis router, and each is a rule of ROUTING.md."""

from __future__ import annotations

import pytest

from routing.config import QueueConfig
from routing.reference import Reference
from routing.states import InvalidTransition
from routing.types import Agent, Assignment, Ticket


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ref(clock: Clock) -> Reference:
    return Reference(clock, lease=None, callback_window=10.0)


def staff(ref: Reference, clock: Clock, *agents: Agent) -> None:
    ref.add_agents(agents)
    for agent in agents:
        ref.login(agent.id)
        clock.now += 1  # the first is the longest idle


def held(ref: Reference, ticket: Ticket) -> Assignment:
    assignment = ref.assignment(ticket.id)
    assert assignment is not None, f"ticket {ticket.call_id} has no agent"
    return assignment


def stage(ref: Reference, ticket: Ticket) -> str:
    return ref.tickets[ticket.id].stage


def test_no_window_a_call_behind_200_others_is_served(ref: Reference, clock: Clock) -> None:
    """The old Redis router looked at the first 200 calls of a queue only."""
    for n in range(250):
        ref.enqueue(f"ko{n}", "q", {"ko": 1})
    english = ref.enqueue("en", "q", {"en": 1})
    staff(ref, clock, Agent("e", "PJSIP/1", {"en": 5}))
    assert held(ref, english).agent_id == "e"


def test_priority_across_queues(ref: Reference, clock: Clock) -> None:
    """A free agent takes the priority-100 call of 'vip' before an older priority-0 call."""
    ref.enqueue("old", "q7", {}, 0)
    clock.now += 5
    vip = ref.enqueue("vip", "vip", {}, 100)
    staff(ref, clock, Agent("a", "PJSIP/1"))
    assert held(ref, vip).agent_id == "a"


@pytest.mark.parametrize("strategy", ["round_robin", "least_occupied"])
def test_fairness_strategies_are_exact(ref: Reference, clock: Clock, strategy: str) -> None:
    """Among 40 agents, the one never reserved is chosen, however recently idle it is
    (the old router ranked only the 32 longest idle)."""
    agents = [Agent(f"a{n:02}", f"PJSIP/{n}") for n in range(40)]
    staff(ref, clock, *agents[:39])
    for n in range(39):  # each of the first 39 takes and ends a call
        assignment = held(ref, ref.enqueue(f"c{n}", "q", {}))
        ref.connected(assignment)
        clock.now += 1
        ref.completed(assignment)
    staff(ref, clock, agents[39])  # the most recently idle, never busy, never reserved
    ticket = ref.enqueue("fair", "q", {}, strategy=strategy)
    assert held(ref, ticket).agent_id == "a39"


def test_requalify_keeps_an_escalated_priority(ref: Reference, clock: Clock) -> None:
    """A requalify without a priority keeps the one an earlier step raised."""
    ticket = ref.enqueue("c", "q", {"x": 5}, 0)
    ref.requalify(ticket, {"x": 5}, priority=50)
    ref.requalify(ticket, {"x": 3})  # a later step that changes skills only
    assert ref.tickets[ticket.id].priority == 50
    first = ref.enqueue("p40", "q", {"x": 3}, 40)
    staff(ref, clock, Agent("a", "PJSIP/1", {"x": 3}))
    assert held(ref, ticket).agent_id == "a"
    assert stage(ref, first) == "waiting"


def test_put_back_keeps_its_arrival(ref: Reference, clock: Clock) -> None:
    """A missed call goes back in its place by arrival, not by the time of the miss."""
    staff(ref, clock, Agent("a", "PJSIP/1"))
    first = ref.enqueue("first", "q", {})
    clock.now += 5
    second = ref.enqueue("second", "q", {})
    clock.now += 20
    ref.missed(held(ref, first))  # a is 'missed'
    staff(ref, clock, Agent("b", "PJSIP/2"))
    assert held(ref, first).agent_id == "b"
    assert stage(ref, second) == "waiting"


def test_completed_without_connected_has_the_connected_effects(
    ref: Reference, clock: Clock
) -> None:
    """Handle time, the miss streak and the customer's last agent, as if answered."""
    staff(ref, clock, Agent("a", "PJSIP/1"))
    ref.missed(held(ref, ref.enqueue("m", "q", {})))
    ref.resume("a")  # one miss, and 'm' rings again
    assert ref.agents["a"].misses == 1
    assignment = held(ref, ref.tickets[1].value())
    clock.now += 30
    assert ref.completed(assignment)  # connected() was never recorded
    assert ref.agents["a"].misses == 0
    assert ref.aht["q"] == 30.0  # connected, as if answered, when reserved
    again = held(ref, ref.enqueue("c", "q", {}, customer="555"))
    clock.now += 40
    ref.completed(again)
    assert ref.aht["q"] == pytest.approx(0.8 * 30 + 0.2 * 40)
    assert ref.last_agent[("default", "555")] == "a"
    assert stage(ref, again.ticket) == "completed"


def test_a_ring_no_answer_frees_the_agent_for_the_best_call_first(
    ref: Reference, clock: Clock
) -> None:
    """No fault: the freed agent chooses first (priority across queues), then the call."""
    staff(ref, clock, Agent("a", "PJSIP/1"))
    low = ref.enqueue("low", "q1", {}, 0)
    vip = ref.enqueue("vip", "q2", {}, 90)
    ref.missed(held(ref, low), agent_fault=False)
    assert held(ref, vip).agent_id == "a"
    assert stage(ref, low) == "waiting"


def test_reload_and_relogin_keep_run_time_fields(ref: Reference, clock: Clock) -> None:
    """A config reload and a repeated login change no run-time field (idle, fairness, misses)."""
    staff(ref, clock, Agent("a", "PJSIP/1"), Agent("b", "PJSIP/2"))
    ref.missed(held(ref, ref.enqueue("c", "q", {})))  # a missed once; b has the call
    ref.resume("a")
    before = ref.agents["a"]
    idle, reserved_at, busy = before.idle_since, before.reserved_at, before.busy
    clock.now += 100
    ref.add_agents([Agent("a", "PJSIP/9", {"new": 3})])
    assert ref.login("a").result == "unchanged"
    after = ref.agents["a"]
    assert (after.idle_since, after.reserved_at, after.busy, after.misses) == (
        idle,
        reserved_at,
        busy,
        1,
    )
    assert after.config.endpoint == "PJSIP/9"


def test_a_stale_wrap_up_timer_ends_nothing(ref: Reference, clock: Clock) -> None:
    """A wrap-up's timer ends only the wrap-up of its own ticket, never a later one."""
    ref.queues["q"] = QueueConfig(wrap_up=10)
    staff(ref, clock, Agent("a", "PJSIP/1"))
    first = held(ref, ref.enqueue("c1", "q", {}))
    ref.completed(first)
    ref.end_wrap_up("a")  # ended early by the agent
    second = held(ref, ref.enqueue("c2", "q", {}))
    clock.now += 5
    ref.completed(second)
    assert ref.end_wrap_up("a", first.ticket.id).result == "unchanged"  # the old timer
    clock.now += 6  # first's 10 s have passed, second's not
    ref.tick()
    assert ref.agents["a"].state == "wrap_up"
    clock.now += 5
    ref.tick()
    assert ref.agents["a"].state == "available"


def test_most_skilled_ranks_by_the_primary_skill(ref: Reference, clock: Clock) -> None:
    """The primary skill is the one required at the highest level (ties: smaller name)."""
    staff(
        ref,
        clock,
        Agent("billing_expert", "PJSIP/1", {"billing": 9, "tv": 2}),
        Agent("tv_expert", "PJSIP/2", {"billing": 4, "tv": 9}),
    )
    ticket = ref.enqueue("c", "q", {"billing": 4, "tv": 2}, strategy="most_skilled")
    assert held(ref, ticket).agent_id == "billing_expert"


def test_replayed_transitions_change_nothing(ref: Reference, clock: Clock) -> None:
    """A repeated connected() for a finished call does not put the agent, now ringing for
    a new caller, on a call; a repeated missed() does not put a finished call back."""
    staff(ref, clock, Agent("a", "PJSIP/1"))
    old = held(ref, ref.enqueue("c1", "q", {}))
    ref.connected(old)
    ref.completed(old)
    new = held(ref, ref.enqueue("c2", "q", {}))
    assert not ref.connected(old)
    assert not ref.missed(old)
    assert not ref.completed(old)
    assert not ref.abandon(old.ticket)
    assert ref.agents["a"].state == "reserved"
    assert stage(ref, old.ticket) == "completed"
    assert held(ref, new.ticket).agent_id == "a"


def test_pending_pause_and_logout(ref: Reference, clock: Clock) -> None:
    """A pause or logout asked during a call waits for its end; resume cancels it."""
    staff(ref, clock, Agent("a", "PJSIP/1"), Agent("b", "PJSIP/2"))
    one = held(ref, ref.enqueue("c1", "q", {}))
    ref.connected(one)
    assert ref.pause("a", "lunch").result == "pending"
    assert ref.pause("a", "lunch").result == "unchanged"
    assert ref.snapshot()["agents"]["a"] == {"state": "on_call", "pending": "pause"}
    waiting = ref.enqueue("c2", "q", {})  # b takes it
    ref.completed(one)
    assert (ref.agents["a"].state, ref.agents["a"].reason) == ("paused", "lunch")
    assert held(ref, waiting).agent_id == "b"
    ref.connected(held(ref, waiting))
    assert ref.logout("b").result == "pending"
    assert ref.resume("b").result == "done"  # clears it
    assert ref.logout("b").result == "pending"
    ref.completed(held(ref, waiting))
    assert ref.agents["b"].state == "logged_out"


def test_forced_logout_of_a_ringing_agent(ref: Reference, clock: Clock) -> None:
    """The agent is logged out at once; the ticket waits again at its place and the result
    names it, so the engine can hang up the agent's leg."""
    staff(ref, clock, Agent("a", "PJSIP/1"))
    ticket = ref.enqueue("c1", "q", {})
    change = ref.logout("a")
    assert change.result == "done" and change.released is not None
    assert change.released.ticket.id == ticket.id
    assert (ref.agents["a"].state, stage(ref, ticket)) == ("logged_out", "waiting")
    staff(ref, clock, Agent("b", "PJSIP/2"))
    assert held(ref, ticket).agent_id == "b"


def test_wrap_up_per_queue_and_per_agent(ref: Reference, clock: Clock) -> None:
    """The queue's wrap-up applies unless the agent has their own; end_wrap_up ends it early."""
    ref.queues["q"] = QueueConfig(wrap_up=30)
    staff(ref, clock, Agent("a", "PJSIP/1"), Agent("quick", "PJSIP/2", wrap_up=0))
    for agent in ("a", "quick"):
        assignment = held(ref, ref.enqueue(f"c-{agent}", "q", {}))
        assert assignment.agent_id == agent
        ref.completed(assignment)
    assert (ref.agents["a"].state, ref.agents["quick"].state) == ("wrap_up", "available")
    late = ref.enqueue("late", "q", {})
    assert held(ref, late).agent_id == "quick"
    with pytest.raises(InvalidTransition, match="reserved; ready is allowed from wrap_up"):
        ref.end_wrap_up("quick")
    assert ref.end_wrap_up("a").result == "done"


def test_leases_end_tickets_whose_engine_is_gone(clock: Clock) -> None:
    """An unrenewed lease ends its ticket lease_expired and frees the agent, who then
    takes the next call."""
    ref = Reference(clock, lease=30)
    staff(ref, clock, Agent("a", "PJSIP/1"))
    talking = held(ref, ref.enqueue("c1", "q", {}, engine="e1"))
    ref.connected(talking)
    waiting = ref.enqueue("c2", "q", {}, engine="e2")
    clock.now += 20
    ref.renew("e2")
    clock.now += 15
    assert ref.tick() == 1
    assert stage(ref, talking.ticket) == "lease_expired"
    assert held(ref, waiting).agent_id == "a"  # freed, and it took the next call
    kinds = [e["event"] for _, e in ref.events]
    assert kinds.count("lease_expired") == 1


def test_callbacks_keep_their_place_and_can_be_unanswered(ref: Reference, clock: Clock) -> None:
    """A callback keeps its place, is claimed by one worker, and may end unanswered
    (the agent not blamed)."""
    first = ref.enqueue("c1", "q", {})
    second = ref.enqueue("c2", "q", {})
    assert ref.request_callback(first, "+15551234")
    assert ref.claim_callback("e1") is None  # a worker looks for work: it is alive
    staff(ref, clock, Agent("a", "PJSIP/1"))
    claimed = ref.claim_callback("e1")
    assert claimed is not None and claimed.ticket.id == first.id
    assert claimed.callback == "+15551234"
    assert ref.claim_callback("e2") is None  # one worker only
    assert ref.abandon(first, "unanswered")
    assert stage(ref, first) == "unanswered"
    assert ref.agents["a"].misses == 0
    assert held(ref, second).agent_id == "a"
    assert not ref.request_callback(second, "5551234")  # ringing: too late


def test_no_agent_waits_on_a_callback_nobody_can_place(ref: Reference, clock: Clock) -> None:
    """Callbacks take agents only while a callback worker looked for work within the
    window; a worker coming alive lets them take agents first, in call order."""
    callback = ref.enqueue("c1", "q", {})
    assert ref.request_callback(callback, "5551234")
    live = ref.enqueue("c2", "q", {})
    staff(ref, clock, Agent("a", "PJSIP/1"), Agent("b", "PJSIP/2"))
    assert held(ref, live).agent_id == "a"
    assert (stage(ref, callback), ref.agents["b"].state) == ("waiting", "available")
    claimed = ref.claim_callback("e1")
    assert claimed is not None and (claimed.ticket.id, claimed.agent_id) == (callback.id, "b")
    clock.now += ref.callback_window + 1  # the worker is gone
    ref.abandon(claimed.ticket, "unanswered")
    again = ref.enqueue("c3", "q", {"rare": 1})  # nobody: it waits
    assert ref.request_callback(again, "5551234")
    ref.requalify(again, {})  # b could take it, but no worker could place it
    assert (stage(ref, again), ref.agents["b"].state) == ("waiting", "available")


def test_languages_and_sites(ref: Reference, clock: Clock) -> None:
    """The caller's language must be spoken; a site-preferring queue widens to every
    site on requalify."""
    ref.queues["q"] = QueueConfig(prefer_site=True)
    staff(
        ref,
        clock,
        Agent("busan_ko", "PJSIP/1", {}, ("ko",), "busan"),
        Agent("seoul_en", "PJSIP/2", {}, ("en",), "seoul"),
    )
    korean = ref.enqueue("c1", "q", {}, language="ko", site="seoul")
    assert stage(ref, korean) == "waiting"  # the Korean speaker is in Busan
    ref.requalify(korean, {}, site_only=False)  # a step with all_sites
    assert held(ref, korean).agent_id == "busan_ko"
    english = ref.enqueue("c2", "q", {}, language="en", site="seoul")
    assert held(ref, english).agent_id == "seoul_en"


def test_routing_groups_do_not_share_agents(ref: Reference, clock: Clock) -> None:
    """An agent serves only the queues of their routing group."""
    ref.queues["kr"] = QueueConfig(group="kr")
    staff(ref, clock, Agent("a", "PJSIP/1"))
    ticket = ref.enqueue("c", "kr", {})
    assert stage(ref, ticket) == "waiting"
    staff(ref, clock, Agent("k", "PJSIP/2", group="kr"))
    assert held(ref, ticket).agent_id == "k"


def test_refusals_name_what_is_allowed(ref: Reference) -> None:
    """Refused requests say what is allowed."""
    ref.add_agents([Agent("a", "PJSIP/1")])
    with pytest.raises(InvalidTransition, match="logged_out; pause is allowed from available"):
        ref.pause("a")
    with pytest.raises(InvalidTransition, match="no agent 'x'"):
        ref.login("x")
    with pytest.raises(ValueError, match="allowed: longest_idle"):
        ref.enqueue("c", "q", {}, strategy="random")
