"""The routing scripts: ``routing/lua/*.lua``, each with the shared library
prepended, registered once per client with redis-py's ``register_script``
(EVALSHA, falling back to EVAL after a restart flushed the script cache).

Refusals of agent actions come back as ``{'refused', state}`` and Python names
what is allowed from ``routing/states.py``, so the state machine has one text.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

__all__ = ["OPERATIONS", "register", "source"]

OPERATIONS = (
    "enqueue",
    "requalify",
    "abandon",
    "connected",
    "completed",
    "missed",
    "callback",
    "claim",
    "act",
    "upsert",
    "remove",
    "tick",
    "renew",
    "staffed",
    "position",
    "restore",
)


def _read(name: str) -> str:
    return resources.files("routing").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


@cache
def source(operation: str) -> str:
    """The full text of one script: the library (lib.lua: keys, records, indexes;
    decide.lua: decisions), then the operation."""
    # The operation runs as a function so that every record it changed is written
    # once, whichever way it returns.
    return (
        _read("lib")
        + "\n"
        + _read("decide")
        + "\nlocal function operation()\n"
        + _read(operation)
        + "\nend\nlocal result = operation()\nflush()\nreturn result\n"
    )


def register(client: Any) -> dict[str, Any]:
    """Every operation's script object on ``client`` (plain, cluster or Sentinel)."""
    scripts = {name: client.register_script(source(name)) for name in OPERATIONS}
    scripts["seqfloor"] = client.register_script(_read("seqfloor"))
    return scripts
