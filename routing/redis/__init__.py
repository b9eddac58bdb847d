"""Skill-based routing on Redis: the answers of ``routing/ROUTING.md``, shared by
every engine process, one atomic Lua script (``routing/lua/``) per decision.

**Keys.** Every key of routing group ``G`` is ``<ns>:{g:G}:<name>``
(:mod:`routing.redis.keys`), so one group lives in one Redis Cluster slot and a
cluster spreads groups over its shards. Agents and tickets are JSON records in
one hash each per group. Available agents are grouped by **profile** (their
exact skills, languages and site; the profile id is a hash of them): the
lexicographic set ``avail`` holds ``<pid>|li|<idle_since>|<id>``,
``<pid>|rr|<reserved_at>|<id>`` and ``<pid>|lo|<busy>|<id>`` per free agent
(numbers in fixed width, so byte order is the strategy's order, the id
breaking ties), and ``pfree`` each profile's head per strategy. The ``rr``
and ``lo`` members are kept from the group's first decision by that strategy
on (built then from the free agents, once), so a group routing by idle time
alone does not pay for them. Waiting
tickets are grouped by **requirement** (queue, skills, any-of skills, language,
the site while the queue keeps to it, callback or not): ``wait`` holds
``<rid>|<100-priority>|<arrival>|<seq>|<id>`` (call order), ``rwait`` each
requirement's head, and ``heads`` every head in call order. The eligibility
graph, ``r2p`` (``<rid>|<pid>|<level in the primary skill>``) and ``p2r``, is
worked out once per profile and per requirement, when it first appears (O(R)
or O(P) then), and kept. An edge never changes once made (both ids are hashes
of their definitions), so the library also keeps the ranges it read in its Lua
state, per graph token (a field of ``pfree`` made again whenever the group's
keys are new), and drops a requirement's or a profile's entry when an edge is
added to it (``routing/lua/lib.lua``). ``pfree`` and ``rwait`` carry one long
field that keeps them hash tables (a listpack finds a field by a scan).

**Why a decision is O(P log n) and O(R log n).** Every agent of a profile is
equally eligible for any ticket, and every ticket of a requirement equally
needs any agent. *Call → agent* reads the requirement's eligible profiles
(one range of ``r2p``, or its cached copy) and their heads for the ticket's strategy (one HMGET of
``pfree``), and takes the best (``most_skilled`` ranks by the edge's level
first): O(P) small reads plus O(log n) per index update, nothing per agent.
*Agent → call* reads the profile's eligible requirements (``p2r``) and their
heads (one HMGET of ``rwait``), and takes the best by (priority, arrival,
seq); when the group has fewer waiting requirements than the profile has
edges, it walks ``heads`` in call order instead and stops at the first the
profile serves (an O(1) membership test each). No window, no walk of agents
or calls: the strategies and the call order are exact, at any queue length.

**One library.** The operations are one Redis Functions library (``FCALL``),
loaded once per server and again when a server lost it
(:mod:`routing.redis.scripts`); Redis 7 or newer.

**KEYS.** Each operation of a group gets the same fixed list
(:data:`routing.redis.keys.GROUP_KEYS`), and on a single Redis the store-wide
ticket counter after it. Per-profile and per-requirement "sets" are ranges of
one key, records are fields of one hash, so a script touches no key it was not
given and none is built from ARGV or from data: Redis's scripting contract and
Redis Cluster's one-slot rule both hold literally, every listed key sharing
the ``{g:G}`` tag. (On a cluster the counter lives in another slot, so the
router takes the ticket id from it first and passes it as ARGV.) Keys outside
groups (agent directory, queue settings, audit) are plain commands. ``now``
comes from the router's injectable clock as ARGV.

**One write per turn.** On a single Redis (TCP or Unix socket) the scripts
the engine's callers start in one turn of the event loop go out together on
one connection, their group's KEYS packed once, and their replies come back
in order (:mod:`routing.redis.pipe`); a "Function not found" reply or a lost
connection sends the call through redis-py's ordinary FCALL (which loads the
library first when needed). A cluster or Sentinel
client always takes the ordinary way.

**Leases, outbox, resets.** Waiting (not callback), reserved and connected
tickets carry a lease renewed by the engine that holds them; ``tick`` ends
those whose lease passed (``lease_expired``) and the wrap-ups that are due. A
transition Redis cannot take goes to a durable outbox (JSON lines, fsync'd)
replayed in order. A group whose generation key vanished lost its data:
``on_reset`` runs, and the engine puts its callers on hold back in place.
"""

from routing.redis.router import RedisRouter

__all__ = ["RedisRouter"]
