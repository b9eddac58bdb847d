"""Key names: every key of routing group ``G`` carries the hash tag ``{g:G}``.

A script of group ``G`` is called with :meth:`GroupKeys.all` as its ``KEYS``
(and, on a single Redis, the store-wide ticket counter after them): the same
fixed list for every operation, so every key a script touches is declared
before it runs and, on a cluster, all of them map to one slot.
Keys outside any group (the agent directory, queue settings, the audit
stream) are read and written by plain commands, never by a script.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GROUP_KEYS", "GroupKeys", "Names"]

#: The order is the scripts' (routing/lua/lib.lua names them K_AGENT ... K_HEADS).
GROUP_KEYS = (
    "agent",  # hash   agent id -> record (JSON)
    "ticket",  # hash   ticket id -> record (JSON)
    "profile",  # hash   profile id -> {skills, langs, site} (kept once created)
    "pfree",  # hash   "<pid>|<li|rr|lo>" -> the profile's head "<number>|<id>" (free agents)
    "pstaff",  # hash   profile id -> agents logged in, not paused or missed
    "avail",  # zset   "<pid>|li|<idle_since>|<id>", "|rr|<reserved_at>|", "|lo|<busy>|" (lex)
    "require",  # hash   requirement id -> {queue, skills, any, ...} (kept once created)
    "rwait",  # hash   requirement id -> its head (the best waiting ticket's place)
    "wait",  # zset   "<rid>|<100-priority>|<arrival>|<seq>|<id>" (lex)
    "qwait",  # zset   "<queue>|<100-priority>|<arrival>|<seq>|<id>" (lex, positions)
    "qcount",  # hash   queue -> waiting tickets
    "events",  # stream what happened (KPIs)
    "lease",  # zset   ticket id -> lease deadline
    "holder",  # zset   "<engine>|<ticket>" (lex): the leases an engine renews
    "wrap",  # zset   agent id -> end of wrap-up
    "callbacks",  # zset   reserved callbacks no worker claimed yet (lex, call order)
    "cbworkers",  # zset   engine -> last time its callback worker looked for work
    "last",  # hash   customer -> the agent who served them last
    "aht",  # hash   queue -> recent handle time
    "ended",  # zset   ticket id -> when it ended (forgotten after a while)
    "r2p",  # zset   "<rid>|<pid>|<level in the primary skill>" (lex): who can serve
    "p2r",  # zset   "<pid>|<rid>|<callback 0/1>" (lex): what a profile can serve
    "heads",  # zset   "<place>|<rid>|<callback 0/1>" (lex): every requirement's head, best first
    "calls",  # hash   call id -> its ticket while not ended (an enqueue is idempotent per call)
)


@dataclass(frozen=True, slots=True)
class GroupKeys:
    """The keys of one routing group."""

    prefix: str

    @property
    def gen(self) -> str:
        """string: a random token; gone means Redis lost the group's data (plain commands)."""
        return f"{self.prefix}:gen"

    def context(self, ticket: int) -> str:
        """string: what the caller chose before asking for a callback (plain commands;
        the worker that claims the callback reads it, it expires on its own)."""
        return f"{self.prefix}:cbctx:{ticket}"

    def all(self) -> list[str]:
        return [f"{self.prefix}:{name}" for name in GROUP_KEYS]

    def __getattr__(self, name: str) -> str:
        if name in GROUP_KEYS:
            return f"{self.prefix}:{name}"
        raise AttributeError(name)


@dataclass(frozen=True, slots=True)
class Names:
    """The names of one routing store (``namespace`` keeps stores apart on one server)."""

    namespace: str = "rt"

    def group(self, group: str) -> GroupKeys:
        return GroupKeys(f"{self.namespace}:{{g:{group}}}")

    @property
    def directory(self) -> str:
        """hash agent id -> routing group."""
        return f"{self.namespace}:agents"

    @property
    def seq(self) -> str:
        """counter: ticket ids and seq, store-wide (ROUTING.md)."""
        return f"{self.namespace}:seq"

    @property
    def groups(self) -> str:
        """set of the routing groups in use."""
        return f"{self.namespace}:groups"

    @property
    def queues(self) -> str:
        """hash queue -> settings (JSON), shared by every engine."""
        return f"{self.namespace}:queuecfg"

    @property
    def audit(self) -> str:
        return f"{self.namespace}:audit"

    def channel(self, name: str) -> str:
        return f"{self.namespace}:{name}"
