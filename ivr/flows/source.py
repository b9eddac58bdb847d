"""YAML with positions: ``yaml.SafeLoader`` only, every value's line and column kept.

Flows are data written by people, so every error must point at the line.
PyYAML's safe loader composes a node tree that carries marks; we build the
plain Python value from it (safe constructors only) and keep a map from each
value's path (``("nodes", "main", "options", 0)``) to its 1-based line and
column. Duplicate keys, which YAML silently lets win, are errors here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ivr.errors import IvrError

__all__ = ["Position", "Source", "SourceError", "load_source"]

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


_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


def _mark(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, file: str, loader: yaml.SafeLoader) -> None:
        self.file = file
        self.loader = loader
        self.source = Source(file, None)

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.source.positions[path] = _mark(node)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
            raise SourceError(self.file, _mark(node), f"tag {node.tag!r} is not allowed")
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise SourceError(self.file, _mark(key_node), "'<<' merge keys are not allowed")
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


def load_source(path: Path | str, text: str | None = None) -> Source:
    """Read ``path`` (or ``text`` named as ``path``) with the safe loader, keeping positions."""
    file = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SourceError(file, Position(1, 1), f"cannot read it: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise SourceError(file, Position(1, 1), f"not UTF-8 text: {exc.reason}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SourceError(file, Position(1, 1), "the file is empty; expected a mapping")
        builder = _Builder(file, loader)
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
