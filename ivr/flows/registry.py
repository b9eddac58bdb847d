"""The flows a running engine serves, reloaded when their files change.

A changed file is loaded and checked first; only a flow that passes replaces
the old one, in one assignment, so a call never sees half a flow. A bad edit
is refused with its problems logged and the old version keeps serving. A
call holds the :class:`Flow` object it started with, so a reload never
changes a call in progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

import structlog

from ivr.flows.loader import flow_files, load_flow, missing_subflows
from ivr.flows.model import Flow, Subflow
from ivr.flows.problems import FlowError, Problem

__all__ = ["FlowRegistry"]

log = structlog.get_logger("ivr.flows.registry")


class FlowRegistry:
    """Flows by id, from the YAML files under ``folder``; ``services``: the engine's HTTP
    services by name (a flow naming another is refused; None: names not checked)."""

    def __init__(self, folder: Path, *, services: Collection[str] | None = None) -> None:
        self.folder = Path(folder)
        self.services = None if services is None else frozenset(services)
        self._flows: dict[str, Flow] = {}
        self._origin: dict[Path, str] = {}
        self._stamps: dict[Path, tuple[int, int]] = {}
        self._refused: set[Path] = set()
        #: Flows whose file went while another flow still uses them as a subflow.
        self._kept: set[str] = set()
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
        changed: set[str] = set()
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
                changed.add(self._origin[path])
        problems += self._keep_subflows(flows, changed)
        if flows != self._flows:
            self._flows = flows  # one assignment: readers see the old or the new set
            self.generation += 1
        return problems

    def _keep_subflows(self, flows: dict[str, Flow], changed: set[str]) -> list[Problem]:
        """Refuse what would leave a subflow node pointing at no flow: a changed flow
        naming a flow that is not there keeps its previous version; a flow removed (or
        renamed) while another still uses it is kept until nothing uses it."""
        problems: list[Problem] = []
        for flow_id in list(self._kept):
            used = any(
                isinstance(n, Subflow) and n.flow == flow_id
                for f in flows.values()
                for n in f.nodes.values()
            )
            if not used:
                self._kept.discard(flow_id)
                flows.pop(flow_id, None)
                log.info("flows.removed", flow=flow_id, why="no flow uses it any more")
        files = {i: p for p, i in self._origin.items()}
        for _ in range(len(flows) + 1):
            broken = missing_subflows(flows, files)
            if not broken:
                break
            for flow_id, found in broken.items():
                if flow_id in changed:
                    problems += found
                    previous = self._flows.get(flow_id)
                    if previous is not None and previous is not flows[flow_id]:
                        flows[flow_id] = previous
                    else:
                        del flows[flow_id]
                    changed.discard(flow_id)
                    log.error(
                        "flows.refused",
                        flow=flow_id,
                        problems=[str(p) for p in found],
                        serving=f"the previous version of {flow_id!r}" if previous else "nothing",
                    )
                    continue
                for node in flows[flow_id].nodes.values():
                    target = node.flow if isinstance(node, Subflow) else None
                    if target is not None and target not in flows and target in self._flows:
                        flows[target] = self._flows[target]
                        self._kept.add(target)
                        problems.append(
                            Problem(
                                str(files.get(flow_id, flow_id)),
                                1,
                                1,
                                f"flow {target!r} was removed or renamed but {flow_id!r} "
                                "uses it as a subflow: it keeps serving until no flow does",
                            )
                        )
                if flow_id in missing_subflows(flows, files):  # nothing to keep: drop it
                    del flows[flow_id]
        return problems

    def _load(self, path: Path, flows: dict[str, Flow]) -> list[Problem]:
        """Load one file into ``flows``; its problems if refused (the old version stays)."""
        try:
            flow = load_flow(path, services=self.services)
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
