"""Skill-based routing on Redis: the answers of ``routing/ROUTING.md``, shared by
every engine process, one atomic Lua script (``routing/lua/``) per decision.

**Keys.** Every key of routing group ``G`` is ``<ns>:{g:G}:<name>`` (see
:mod:`routing.redis.keys`), so one group lives in one Redis Cluster slot and a
cluster spreads groups over its shards. Agents and tickets are JSON records in
one hash per group. *Available agents* are grouped by **profile** (their
exact skills, languages and site: a hash of them is the profile id) in one
lexicographic sorted set, ``avail``, with three members per available agent,
``<pid>|li|<idle_since>|<id>``, ``<pid>|rr|<reserved_at>|<id>`` and
``<pid>|lo|<busy>|<id>``: numbers in fixed width, so byte order is the
strategy's order and the id breaks ties. *Waiting tickets* are grouped by
**requirement** (queue, skills, any-of skills, language, site when the
queue keeps to the caller's site, and whether it is a callback) in ``wait``,
``<rid>|<100-priority>|<arrival>|<seq>|<id>``: the call order.

**Why a decision is O(P log n) and O(R log n).** All agents of a profile are
equally eligible for any ticket, and all tickets of a requirement equally
need any agent. So *call → agent* reads, for each of the P profiles with a free
agent (hash ``pfree``) that satisfies the ticket, the head of that profile's
range for the ticket's strategy (one ``ZRANGEBYLEX ... LIMIT 0 1``, O(log n)),
and takes the best head (``most_skilled`` ranks the heads by the profile's
level in the primary skill first); *agent → call* reads, for each of the R
requirements with a waiting ticket (hash ``rwait``) that the agent's profile
satisfies, the head of that requirement's range, and takes the best by
(priority, arrival, seq). Nothing is windowed and nothing depends on the
number of agents or calls beyond the log: the strategies are exact.

**KEYS.** Each script gets the same fixed list of its group's keys
(:data:`routing.redis.keys.GROUP_KEYS`): the per-profile and per-requirement
"sets" are ranges of one key, not keys of their own, and records are fields of
one hash, so a script never touches a key it was not given; no key is built
from ARGV or from data. Redis's scripting contract and Redis Cluster are both
satisfied literally, and every key of the list shares the ``{g:G}`` tag.
Keys outside groups (agent directory, queue settings, audit) are plain
commands. ``now`` comes from the router's injectable clock as ARGV.

**Leases, outbox, resets.** Waiting (not callback), reserved and connected
tickets carry a lease renewed by the engine that holds them; ``tick`` ends
those whose lease passed (``lease_expired``) and the wrap-ups that are due. A
transition Redis cannot take goes to a durable outbox (JSON lines, fsync'd)
replayed in order. A group whose generation key vanished lost its data:
``on_reset`` runs, and the engine puts its callers on hold back in place.
"""

from routing.redis.router import RedisRouter

__all__ = ["RedisRouter"]
