"""The flows a running engine serves, reloaded when their files change.

A changed file is loaded and checked first; only a flow that passes replaces
the old one, in one assignment, so a call never sees half a flow. A bad edit
is refused with its problems logged and the old version keeps serving. A
call holds the :class:`Flow` object it started with, so a reload never
changes a call in progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from ivr.flows.loader import flow_files, load_flow
from ivr.flows.model import Flow
from ivr.flows.problems import FlowError, Problem

__all__ = ["FlowRegistry"]

log = structlog.get_logger("ivr.flows.registry")


class FlowRegistry:
    """Flows by id, from the YAML files under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._flows: dict[str, Flow] = {}
        self._origin: dict[Path, str] = {}
        self._stamps: dict[Path, tuple[int, int]] = {}
        self._refused: set[Path] = set()
        self.generation = 0

    def get(self, flow_id: str) -> Flow | None:
        return self._flows.get(flow_id)

    @property
    def ids(self) -> list[str]:
        return sorted(self._flows)

    def reload(self) -> list[Problem]:
        """Load new and changed files, drop deleted ones; return the problems refused."""
        problems: list[Problem] = []
        flows = dict(self._flows)
        present = set(flow_files([self.folder]))
        removed = False
        for path in set(self._origin) - present:  # deletions first: a rename is delete + add
            flow_id = self._origin.pop(path)
            self._stamps.pop(path, None)
            flows.pop(flow_id, None)
            removed = True
            log.info("flows.removed", flow=flow_id, file=str(path))
        for path in set(self._stamps) - present:
            self._stamps.pop(path, None)
        if removed:  # a file refused as a duplicate may be fine now: look again
            for path in self._refused:
                self._stamps.pop(path, None)
            self._refused.clear()
        for path in sorted(present):
            try:
                stat = path.stat()
            except OSError:
                continue
            stamp = (stat.st_mtime_ns, stat.st_size)
            if self._stamps.get(path) == stamp:
                continue
            self._stamps[path] = stamp
            found = self._load(path, flows)
            if found:
                problems += found
                self._refused.add(path)
            else:
                self._refused.discard(path)
        if flows != self._flows:
            self._flows = flows  # one assignment: readers see the old or the new set
            self.generation += 1
        return problems

    def _load(self, path: Path, flows: dict[str, Flow]) -> list[Problem]:
        """Load one file into ``flows``; its problems if refused (the old version stays)."""
        try:
            flow = load_flow(path)
        except FlowError as exc:
            problems = exc.problems
        except Exception as exc:  # a loader bug must not stop the other files
            problems = [Problem(str(path), 1, 1, f"could not load: {exc!r}")]
        else:
            other = next((p for p, i in self._origin.items() if i == flow.id and p != path), None)
            if other is None:
                old_id = self._origin.get(path)
                if old_id is not None and old_id != flow.id:
                    flows.pop(old_id, None)
                flows[flow.id] = flow
                self._origin[path] = flow.id
                log.info("flows.loaded", flow=flow.id, version=str(flow.version), file=str(path))
                return []
            problems = [Problem(str(path), 1, 1, f"flow id {flow.id!r} is also used by {other}")]
        kept = self._origin.get(path)
        log.error(
            "flows.refused",
            file=str(path),
            problems=[str(p) for p in problems],
            serving=f"the previous version of {kept!r}" if kept else "nothing new",
        )
        return problems

    async def watch(
        self, interval: float = 1.0, on_change: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Reload every ``interval`` seconds until cancelled; ``on_change`` after a change
        (the engine renders the new prompts ahead)."""
        while True:
            await asyncio.sleep(interval)
            before = self.generation
            try:
                await asyncio.to_thread(self.reload)
                if on_change is not None and self.generation != before:
                    await on_change()
            except Exception:  # a reload must never stop the engine
                log.exception("flows.reload_failed")
