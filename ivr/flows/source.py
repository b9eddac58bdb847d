"""YAML with positions: ``yaml.SafeLoader`` only, every value's line and column kept.

Flows are data written by people, so every error must point at the line.
PyYAML's safe loader composes a node tree that carries marks; we build the
plain Python value from it (safe constructors only) and keep a map from each
value's path (``("nodes", "main", "options", 0)``) to its 1-based line and
column. Duplicate keys, which YAML silently lets win, are errors here.

Hostile input is bounded by :class:`Limits`: a file's size is checked before
it is read, its values are counted while they are composed (so a huge file
or an alias that repeats a list of lists is refused without being expanded),
and a text longer than the limit is refused with its key. Every YAML file
gets the value limit; flows get tighter ones (:data:`ivr.flows.loader.FLOW_LIMITS`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from ivr.errors import IvrError

__all__ = ["Limits", "Position", "Source", "SourceError", "load_source"]

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    column: int


class SourceError(IvrError, ValueError):
    """A YAML file that cannot be read as data; the message starts ``file:line:col:``."""

    def __init__(self, file: str, position: Position, message: str) -> None:
        super().__init__(f"{file}:{position.line}:{position.column}: {message}")
        self.file = file
        self.position = position
        self.message = message


@dataclass(slots=True)
class Source:
    """A loaded YAML document and where each of its values was written."""

    file: str
    data: Any
    positions: dict[PathKey, Position] = field(default_factory=dict)
    key_positions: dict[PathKey, Position] = field(default_factory=dict)
    quoted: set[PathKey] = field(default_factory=set)

    def where(self, path: PathKey, *, key: bool = False) -> Position:
        """The position of ``path``, or of its nearest ancestor that has one."""
        if key and path in self.key_positions:
            return self.key_positions[path]
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return Position(1, 1)

    def error(self, path: PathKey, message: str, *, key: bool = False) -> SourceError:
        return SourceError(self.file, self.where(path, key=key), message)


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one YAML file may hold; ``None``: no limit of that kind."""

    #: The file's size in bytes, checked before it is read.
    max_bytes: int | None = None
    #: Keys, items and texts, counted while composing and again as aliases expand.
    max_values: int = 1_000_000
    #: Characters in one text (a key or a value).
    max_text: int | None = None
    #: What the file is, for the messages ("a flow file").
    what: str = "a file"
    #: What to do when a limit is passed, for the messages.
    hint: str = ""

    def refuse(
        self, file: str, position: Position, found: str, limit: str, hint: str | None = None
    ) -> SourceError:
        hint = self.hint if hint is None else hint
        said = f"; {hint}" if hint else ""
        return SourceError(file, position, f"{found}; {self.what} holds at most {limit}{said}")


DEFAULT_LIMITS: Final = Limits()

_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


def _mark(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _dotted(path: PathKey) -> str:
    return ".".join(str(part) for part in path) or "(top)"


class _Loader(yaml.SafeLoader):
    """The safe loader, counting the values it composes: past the limit it stops at once,
    without reading the rest of the file."""

    def __init__(self, text: str, file: str, limits: Limits) -> None:
        super().__init__(text)
        self.file = file
        self.limits = limits
        self.composed = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.composed += 1
        if self.composed > self.limits.max_values:
            event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
            mark = event.start_mark
            raise self.limits.refuse(
                self.file,
                Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1),
                f"more than {self.limits.max_values:,} values (keys, items and texts)",
                f"{self.limits.max_values:,}",
            )
        return super().compose_node(parent, index)


class _Builder:
    def __init__(self, file: str, loader: yaml.SafeLoader, limits: Limits = DEFAULT_LIMITS) -> None:
        self.file = file
        self.loader = loader
        self.limits = limits
        self.built = 0
        self.source = Source(file, None)

    def _count(self, node: yaml.Node) -> None:
        """Bound the values built: an alias repeats its anchor's values each time it is used."""
        self.built += 1
        if self.built > self.limits.max_values:
            raise self.limits.refuse(
                self.file,
                _mark(node),
                f"more than {self.limits.max_values:,} values once its aliases are expanded",
                f"{self.limits.max_values:,}",
            )

    def _check_text(self, node: yaml.Node, path: PathKey) -> None:
        limit = self.limits.max_text
        if limit is not None and isinstance(node, yaml.ScalarNode) and len(node.value) > limit:
            raise self.limits.refuse(
                self.file,
                _mark(node),
                f"{_dotted(path)}: a text of {len(node.value):,} characters",
                f"{limit:,} characters in one text",
                "shorten it, or play a recording instead",
            )

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self._count(node)
        self.source.positions[path] = _mark(node)
        self._check_text(node, path)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
            raise SourceError(self.file, _mark(node), f"tag {node.tag!r} is not allowed")
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise SourceError(self.file, _mark(key_node), "'<<' merge keys are not allowed")
                self._check_text(key_node, (*path, "(a key)"))
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    raise SourceError(
                        self.file, _mark(key_node), "a key must be text or a whole number"
                    )
                if key in result:
                    first = self.source.key_positions[(*path, key)]
                    raise SourceError(
                        self.file,
                        _mark(key_node),
                        f"duplicate key {key!r} (first at line {first.line}); "
                        "YAML would silently keep only the last one",
                    )
                self.source.key_positions[(*path, key)] = _mark(key_node)
                result[key] = self.build(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
            self.source.quoted.add(path)  # its text starts one column after the mark
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:  # 2026-02-30, a 5,000-digit number
            raise SourceError(self.file, _mark(node), f"not a valid value: {exc}") from None


def _read(path: Path | str, limits: Limits) -> str:
    """The file's text; one larger than ``limits.max_bytes`` is refused before it is read."""
    file = str(path)
    try:
        with Path(path).open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            limit = limits.max_bytes
            if limit is not None and size > limit:
                raise _too_big(file, size, limits)
            data = stream.read() if limit is None else stream.read(limit + 1)
    except OSError as exc:
        raise SourceError(file, Position(1, 1), f"cannot read it: {exc.strerror}") from None
    if limits.max_bytes is not None and len(data) > limits.max_bytes:  # it grew meanwhile
        raise _too_big(file, len(data), limits)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(file, Position(1, 1), f"not UTF-8 text: {exc.reason}") from None


def _too_big(file: str, size: int, limits: Limits) -> SourceError:
    limit = limits.max_bytes or 0
    return limits.refuse(
        file,
        Position(1, 1),
        f"the file is {size:,} bytes",
        f"{limit:,} bytes ({_human(limit)})",
    )


def _human(size: int) -> str:
    """1048576 -> '1 MiB' (limits are round numbers)."""
    for unit in ("bytes", "KiB", "MiB"):
        if size < 1024 or size % 1024 or unit == "MiB":
            return f"{size:,} {unit}"
        size //= 1024
    return f"{size:,} GiB"


def load_source(
    path: Path | str, text: str | None = None, *, limits: Limits = DEFAULT_LIMITS
) -> Source:
    """Read ``path`` (or ``text`` named as ``path``) with the safe loader, keeping positions;
    past one of ``limits`` the file is refused as soon as that is known."""
    file = str(path)
    if text is None:
        text = _read(path, limits)
    elif limits.max_bytes is not None and len(text) * 4 > limits.max_bytes:
        size = len(text.encode("utf-8", "surrogatepass"))  # up to 4 bytes a character
        if size > limits.max_bytes:
            raise _too_big(file, size, limits)
    loader = _Loader(text, file, limits)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SourceError(file, Position(1, 1), "the file is empty; expected a mapping")
        builder = _Builder(file, loader, limits)
        builder.source.data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if "'\\t'" in problem or "\t" in problem:
            problem += "; YAML indents with spaces, not tabs: replace the tab with spaces"
        raise SourceError(file, where, f"YAML syntax: {problem}") from None
    except yaml.YAMLError as exc:
        raise SourceError(file, Position(1, 1), f"YAML: {exc}") from None
    except RecursionError:
        raise SourceError(file, Position(1, 1), "nested too deeply") from None
    finally:
        loader.dispose()
    return builder.source
