"""The flows folder as the console edits it: checks, saves, and every saved version kept.

A text is checked as ``ivr validate`` checks a file (:func:`ivr.flows.loader.
load_flow`: safe YAML under the hostile-input limits, the model, the graph
checks, the engine's HTTP services), then as the engine's reload would take
it among the other flows (:class:`ivr.flows.registry.FlowRegistry`): its
subflows must be flows that load, its id must be no other file's, and no
other flow may lose a subflow it uses (a renamed id). Every problem has its
line and column in the edited text.

A save writes the file atomically into the flows folder (a partial file
under a name the registry does not read, then ``os.replace``), and the
engine's registry watcher reloads it within a second. Each saved text is
also kept as ``<history>/<flow>/<UTC time>-v<version>.yaml`` (flows, not
caller data), with who saved it and why in that folder's ``log.jsonl``; the
text before the first save from the console is kept too, so a rollback can
reach it. A rollback is a new save of an old text, checked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import structlog

from ivr.flows.loader import FLOW_LIMITS, flow_files, load_flow, missing_subflows, parse_flow
from ivr.flows.model import Flow, Subflow
from ivr.flows.problems import FlowError, Problem, problem_at
from ivr.flows.source import Source, SourceError, load_source

__all__ = [
    "Checked",
    "FlowFile",
    "FlowStore",
    "SaveRefused",
    "Saved",
    "Version",
    "diff_lines",
    "text_hash",
]

#: A new flow's file name (a flow in a subfolder is edited, never created, here).
NEW_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: Versions listed at most on one page (all are kept).
HISTORY_SHOWN: Final = 200
_STAMP: Final = "%Y%m%dT%H%M%S.%fZ"

log = structlog.get_logger("ivr.console.flows_store")


def text_hash(text: str) -> str:
    """What the editor was opened on (a save over a file changed since is refused)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def normalised(text: str) -> str:
    """A browser's text as a file: LF line ends (forms send CRLF), a final newline."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") or not text else text + "\n"


@dataclass(frozen=True, slots=True)
class Checked:
    """A text as the engine would take it: the flow, or every problem."""

    flow: Flow | None
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return self.flow is not None and not self.problems


@dataclass(frozen=True, slots=True)
class Version:
    """One kept version of a flow file."""

    name: str  # the history file's name
    at: float
    version: str
    by: str = ""
    action: str = "save"  # "before" (the text before the first save here), save, rollback
    source: str = ""  # a rollback's version

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.at).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class FlowFile:
    """One file of the flows folder, as the engine takes it."""

    key: str  # the path under the folder without ".yaml": the console's name for it
    path: Path
    flow: Flow | None
    problems: list[Problem] = field(default_factory=list)
    last: Version | None = None

    @property
    def loaded(self) -> bool:
        return self.flow is not None and not self.problems


@dataclass(frozen=True, slots=True)
class Saved:
    version: Version
    flow: Flow


class SaveRefused(Exception):  # noqa: N818 - a refusal, with its reasons
    """The save is refused: ``problems`` (each at its line), or ``conflict`` (the file
    changed since the editor opened it)."""

    def __init__(self, problems: list[Problem], *, status: int = 422, message: str = "") -> None:
        super().__init__(message or "; ".join(str(p) for p in problems[:3]))
        self.problems = problems
        self.status = status
        self.message = message


class FlowStore:
    """The flows folder and its history, for the console (one per app)."""

    def __init__(
        self, folder: Path, history: Path, *, services: Collection[str] | None = None
    ) -> None:
        self.folder = Path(folder)
        self.history = Path(history)
        self.services = None if services is None else frozenset(services)
        self._lock = asyncio.Lock()
        #: Loaded files by path, with the (mtime, size) they were loaded at.
        self._cache: dict[Path, tuple[tuple[int, int], Flow | None, list[Problem]]] = {}

    # ---------------------------------------------------------------- files

    def path_of(self, key: str) -> Path | None:
        """The flow file the console calls ``key``, if it is one of the folder's."""
        for path in flow_files([self.folder]):
            if self.key_of(path) == key:
                return path
        return None

    def key_of(self, path: Path) -> str:
        return path.relative_to(self.folder).with_suffix("").as_posix()

    def new_path(self, name: str) -> Path:
        """Where a new flow named ``name`` goes; ValueError when it cannot."""
        if not NEW_NAME.match(name):
            raise ValueError(
                f"file name {name[:70]!r}: lower-case letters, digits, '-' and '_', "
                "starting with a letter or digit (64 at most)"
            )
        if name == "routing":
            raise ValueError("routing.yaml holds agents and queues, not a flow: choose another")
        path = self.folder / f"{name}.yaml"
        if path.exists():
            raise ValueError(f"{path.name} exists already: edit it from the flows page")
        return path

    def load(self, path: Path) -> tuple[Flow | None, list[Problem]]:
        try:
            stat = path.stat()
        except OSError as exc:
            return None, [Problem(str(path.name), 1, 1, f"cannot read it: {exc.strerror}")]
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        try:
            flow: Flow | None = load_flow(path, services=self.services)
            problems: list[Problem] = []
        except FlowError as exc:
            flow, problems = None, [self._relative(p) for p in exc.problems]
        self._cache[path] = (stamp, flow, problems)
        return flow, problems

    def files(self) -> list[FlowFile]:
        """Every flow file with its status as the engine takes the folder (as
        ``ivr validate``: a file that loads may still be refused for a missing
        subflow or an id another file uses)."""
        loaded: dict[str, Flow] = {}
        origin: dict[str, Path] = {}
        found: dict[Path, list[Problem]] = {}
        flows: dict[Path, Flow | None] = {}
        for path in flow_files([self.folder]):
            flow, problems = self.load(path)
            flows[path], found[path] = flow, list(problems)
            if flow is None:
                continue
            if flow.id in loaded:
                other = origin[flow.id].relative_to(self.folder).as_posix()
                message = f"flow id {flow.id!r} is also used by {other}; the engine keeps that one"
                found[path].append(Problem(self._shown(path), 1, 1, message))
                continue
            loaded[flow.id], origin[flow.id] = flow, path
        while broken := missing_subflows(loaded, origin):
            for flow_id, problems in broken.items():
                path = origin.pop(flow_id)
                found[path] += [self._relative(p) for p in problems]
                del loaded[flow_id]
        return [
            FlowFile(self.key_of(p), p, flows[p], found[p], self.last_version(self.key_of(p)))
            for p in flows
        ]

    def _shown(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()

    def _relative(self, problem: Problem) -> Problem:
        with contextlib.suppress(ValueError):
            shown = Path(problem.file).relative_to(self.folder).as_posix()
            return Problem(shown, problem.line, problem.column, problem.message)
        return problem

    # ---------------------------------------------------------------- checks

    def check(self, key: str, text: str, *, path: Path | None = None) -> Checked:
        """``text`` as the file ``key`` (``path``: where it goes), checked as the engine
        would take it among the other files of the folder."""
        path = path or self.path_of(key) or self.folder / f"{key}.yaml"
        shown = path.relative_to(self.folder).as_posix()
        try:
            source = load_source(shown, text, limits=FLOW_LIMITS)
            flow = parse_flow(source, services=self.services)
        except SourceError as exc:
            problem = Problem(exc.file, exc.position.line, exc.position.column, exc.message)
            return Checked(None, [problem])
        except FlowError as exc:
            return Checked(None, exc.problems)
        return Checked(flow, self._among_others(path, flow, source))

    def _others(self, path: Path) -> tuple[dict[str, Flow], dict[str, Path]]:
        """The flows the engine serves from the folder's other files."""
        flows: dict[str, Flow] = {}
        origin: dict[str, Path] = {}
        for other in flow_files([self.folder]):
            if other == path:
                continue
            flow, problems = self.load(other)
            if flow is not None and not problems and flow.id not in flows:
                flows[flow.id], origin[flow.id] = flow, other
        return flows, origin

    def _among_others(self, path: Path, flow: Flow, source: Source) -> list[Problem]:
        """What the registry's reload would refuse: an id another file holds, a subflow
        that is no flow, and another flow that would lose a subflow it uses."""
        flows, origin = self._others(path)
        problems: list[Problem] = []
        if flow.id in flows:
            other = self._shown(origin[flow.id])
            message = f"id: flow id {flow.id!r} is also used by {other}; choose another id"
            problems.append(problem_at(source, ("id",), message))
        known = sorted({*flows, flow.id})
        for name, node in flow.nodes.items():
            if isinstance(node, Subflow) and node.flow not in known:
                message = f"flow: no flow {node.flow!r} is loaded; flows: {', '.join(known)}"
                problems.append(problem_at(source, ("nodes", name, "flow"), message))
        before_flow, _ = self.load(path) if path.exists() else (None, [])
        before = {**flows, **({before_flow.id: before_flow} if before_flow else {})}
        after = {**flows, flow.id: flow}
        broken_before = missing_subflows(before, origin)
        for other_id, found in missing_subflows(after, origin).items():
            if other_id == flow.id or other_id in broken_before:
                continue
            old_id = before_flow.id if before_flow is not None else ""
            for problem in found:
                message = (
                    f"id: {self._shown(origin[other_id])} (line {problem.line}) uses flow "
                    f"{old_id!r} as a subflow; saving would break it: keep the id "
                    f"{old_id!r}, or change that flow first"
                )
                problems.append(problem_at(source, ("id",), message))
        return problems

    # ---------------------------------------------------------------- saves

    async def save(
        self,
        key: str,
        text: str,
        *,
        by: str,
        base: str | None = None,
        new: bool = False,
        action: Literal["save", "rollback"] = "save",
        source: str = "",
    ) -> Saved:
        """Check ``text`` and write it as the file ``key``, keeping the version; raises
        :class:`SaveRefused`. ``base``: the hash of the text the editor opened (a file
        changed since is not overwritten); ``new``: a new file named ``key``."""
        text = normalised(text)
        async with self._lock:
            if new:
                try:
                    path = self.new_path(key)
                except ValueError as exc:
                    raise SaveRefused([], status=409, message=str(exc)) from None
            else:
                found = self.path_of(key)
                if found is None:
                    raise SaveRefused([], status=404, message=f"no flow file {key!r}")
                path = found
            current = path.read_text(encoding="utf-8") if path.exists() else None
            if base is not None and current is not None and text_hash(current) != base:
                raise SaveRefused(
                    [],
                    status=409,
                    message=f"{path.name} changed since you opened it (someone saved it, or "
                    "it was edited on disk); open it again and redo your change",
                )
            checked = await asyncio.to_thread(self.check, key, text, path=path)
            if not checked.ok or checked.flow is None:
                raise SaveRefused(checked.problems)
            flow = checked.flow
            if current is not None and not self.versions(key):
                await asyncio.to_thread(self._keep, key, current, "before", "", "")
            version = await asyncio.to_thread(self._keep, key, text, action, by, source)
            await asyncio.to_thread(_write_atomically, path, text)
            return Saved(version, flow)

    # ---------------------------------------------------------------- history

    def _folder(self, key: str) -> Path:
        return self.history / key.replace("/", "__")

    def _keep(self, key: str, text: str, action: str, by: str, source: str) -> Version:
        folder = self._folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        version = _declared_version(text)
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC).strftime(_STAMP)
        name = f"{stamp}-v{re.sub(r'[^A-Za-z0-9._-]', '_', version)[:40]}.yaml"
        _write_atomically(folder / name, text)
        entry = Version(name, now, version, by, action, source)
        record = {"name": name, "at": now, "version": version, "by": by, "action": action}
        if source:
            record["source"] = source
        line = json.dumps(record).encode("utf-8") + b"\n"
        with (folder / "log.jsonl").open("a+b") as journal:
            end = journal.seek(0, os.SEEK_END)
            if end:
                journal.seek(end - 1)
                if journal.read(1) != b"\n":
                    # A write cut short left half a line: this record starts its own,
                    # or the two would be one line that no longer parses.
                    line = b"\n" + line
            journal.write(line)
        return entry

    def versions(self, key: str) -> list[Version]:
        """The kept versions of ``key``, newest first."""
        folder = self._folder(key)
        if not folder.is_dir():
            return []
        told = _told(folder / "log.jsonl")
        out = []
        for path in folder.glob("*.yaml"):
            record = told.get(path.name, {})
            try:
                at = float(record.get("at") or path.stat().st_mtime)
            except (OSError, TypeError, ValueError):
                continue
            out.append(
                Version(
                    path.name,
                    at,
                    str(record.get("version") or _version_in_name(path.name)),
                    str(record.get("by") or ""),
                    str(record.get("action") or "save"),
                    str(record.get("source") or ""),
                )
            )
        return sorted(out, key=lambda v: (v.at, v.name), reverse=True)

    def last_version(self, key: str) -> Version | None:
        found = self.versions(key)
        return found[0] if found else None

    def version_text(self, key: str, name: str) -> str | None:
        """A kept version's text (None: no such version of ``key``)."""
        if not re.fullmatch(r"[0-9TZ.]+-v[A-Za-z0-9._-]+\.yaml", name):
            return None
        path = self._folder(key) / name
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            return None


def _told(path: Path) -> dict[str, dict[str, Any]]:
    """The records of a history's ``log.jsonl`` by version file name. A line that is
    not one (a write cut short, a hand edit) is skipped with a warning naming the
    file and line: its version is still listed, from the file's name and time."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}  # no save logged yet: the versions go by their files' names and times
    except OSError as exc:
        log.warning("console.flow_history_unreadable", file=str(path), error=str(exc))
        return {}
    told: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            log.warning(
                "console.flow_history_line_skipped", file=str(path), line=number, error=str(exc)
            )
            continue
        if isinstance(record, dict) and isinstance(record.get("name"), str):
            told[record["name"]] = record
        else:
            error = "not a version record (an object with a 'name')"
            log.warning(
                "console.flow_history_line_skipped", file=str(path), line=number, error=error
            )
    return told


def _declared_version(text: str) -> str:
    """The ``version:`` the text declares (1 when it says none, as the model)."""
    found = re.search(r"^version:[ \t]*['\"]?([^'\"#\n]*?)['\"]?[ \t]*(?:#.*)?$", text, re.M)
    return found[1].strip() if found and found[1].strip() else "1"


def _version_in_name(name: str) -> str:
    return name.rpartition("-v")[2].removesuffix(".yaml")


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path``: a reader (the registry's watcher) sees the old file or
    the new one. The partial file's name ends in ``.part``: never read as a flow."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


Line = tuple[Literal["meta", "hunk", "add", "del", "same"], str]


def diff_lines(old: str, new: str, old_label: str, new_label: str) -> list[Line]:
    """A unified diff of two texts as (kind, line) for the page."""

    def kinds() -> Iterator[Line]:
        for line in difflib.unified_diff(
            old.splitlines(), new.splitlines(), old_label, new_label, lineterm="", n=3
        ):
            if line.startswith(("---", "+++")):
                yield "meta", line
            elif line.startswith("@@"):
                yield "hunk", line
            elif line.startswith("+"):
                yield "add", line
            elif line.startswith("-"):
                yield "del", line
            else:
                yield "same", line

    return list(kinds())
