"""A durable local outbox for transitions Redis could not take.

When a transition (abandon, connected, completed, missed, requalify, a
callback request) fails because Redis is unreachable, it is appended to a
file as one JSON line and fsync'd before the call returns; the router
replays the lines in order when Redis answers again, and every later
transition queues behind them so the order holds. The scripts are
idempotent per ticket, so a line replayed twice (a crash between a replay
and the rewrite of the file) changes nothing the second time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["Outbox"]


class Outbox:
    """JSON lines in ``path``: ``{"op": ..., "group": ..., "args": [...]}``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, op: str, group: str, args: list[Any]) -> None:
        line = json.dumps({"op": op, "group": group, "args": args}, separators=(",", ":"))
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())

    def pending(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def __bool__(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def keep(self, rest: list[dict[str, Any]]) -> None:
        """Replace the file with ``rest`` (what is still to replay), atomically."""
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        with temporary.open("w", encoding="utf-8") as out:
            for entry in rest:
                out.write(json.dumps(entry, separators=(",", ":")) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
