"""The routing operations: one Redis Functions library built from ``routing/lua``.

``lib.lua`` (keys, records, indexes), ``decide.lua`` (decisions) and every
operation file, each wrapped in a function, make one library, loaded once per
server (``FUNCTION LOAD``; on a cluster redis-py sends it to every primary) and
called with ``FCALL``. A script sent with ``EVALSHA`` would define the
library's sixty-odd functions again on every call: about 23 µs of Redis's time
per call (measured with ``INFO commandstats``), a sixth of a whole enqueue.

The library's name carries a hash of its text, so engines of two versions (a
rolling upgrade) each call their own. A server that lost its functions (a
restart without persistence, a new shard) answers "Function not found": the
library is loaded again and the call is sent again.

Refusals of agent actions come back as ``{'refused', state}`` and Python names
what is allowed from ``routing/states.py``, so the state machine has one text.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

from redis.exceptions import ResponseError

__all__ = ["OPERATIONS", "Function", "Library", "library", "missing", "register"]

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
def library() -> tuple[str, str]:
    """The library's name and full text."""
    body = [_read("lib"), _read("decide")]
    for op in OPERATIONS:
        body.append(f"local function op_{op}()\n{_read(op)}\nend\n")
    # Each call: its keys and arguments, no ticket quiet yet, the operation, then
    # every record it changed written once, whichever way it returned.
    body.append(
        "local function registered(op)\n"
        "  return function(keys, args)\n"
        "    bind(keys, args)\n"
        "    quiet = nil\n"
        "    local result = op()\n"
        "    flush()\n"
        "    return result\n"
        "  end\n"
        "end\n"
    )
    text = "\n".join(body)
    name = "rt_" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]
    registrations = "".join(
        f"redis.register_function('{name}_{op}', registered(op_{op}))\n" for op in OPERATIONS
    )
    return name, f"#!lua name={name}\n{text}\n{registrations}"


def missing(exc: ResponseError) -> bool:
    """True when Redis does not have the library (load it, then call again)."""
    return "function not found" in str(exc).lower()


class Library:
    """Loads the routing library on one client (plain, cluster or Sentinel)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.name, self.code = library()

    async def load(self) -> None:
        await self.client.function_load(self.code, replace=True)


class Function:
    """One routing operation: ``FCALL``, loading the library when Redis lacks it."""

    def __init__(self, lib: Library, op: str) -> None:
        self.lib = lib
        self.name = f"{lib.name}_{op}"

    async def __call__(self, keys: list[str], args: list[Any], client: Any = None) -> Any:
        if client is not None:  # a pipeline: queued (its caller loaded the library)
            return client.fcall(self.name, len(keys), *keys, *args)
        try:
            return await self.lib.client.fcall(self.name, len(keys), *keys, *args)
        except ResponseError as exc:
            if not missing(exc):
                raise
        await self.lib.load()
        return await self.lib.client.fcall(self.name, len(keys), *keys, *args)


def register(client: Any) -> dict[str, Any]:
    """Every operation on ``client``, and ``seqfloor`` (a plain script on the
    store-wide counter, outside any group)."""
    lib = Library(client)
    scripts: dict[str, Any] = {name: Function(lib, name) for name in OPERATIONS}
    scripts["seqfloor"] = client.register_script(_read("seqfloor"))
    return scripts
