"""YAML with positions for rule packs: PyYAML's safe loader, every value's line and column kept.

Packs are written by people, so every error points at the line. The safe
loader composes a node tree that carries marks; the plain value is built
from it (safe constructors only, no tags, no merge keys) with a map from each
value's path (``("rules", 0, "must_say")``) to its 1-based line and column.
Duplicate keys, which YAML silently lets win, are errors. A file over
:data:`MAX_BYTES` is refused before it is read, and :data:`MAX_VALUES` bounds
the values built (an alias repeating a large list counts each time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from speech.qa.errors import Problem, RulePackError

__all__ = ["MAX_BYTES", "MAX_VALUES", "Located", "load_yaml"]

MAX_BYTES: Final = 1 << 20
MAX_VALUES: Final = 100_000
PathKey = tuple[str | int, ...]
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


@dataclass(slots=True)
class Located:
    """A loaded YAML document and where each of its values (and keys) was written."""

    file: str
    data: Any = None
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: PathKey, *, key: bool = False) -> tuple[int, int]:
        """The (line, column) of ``path``, or of its nearest ancestor that has one."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            if (found := self.positions.get(path[:end])) is not None:
                return found
        return 1, 1

    def problem(self, path: PathKey, message: str, *, key: bool = False) -> Problem:
        """A problem reported at ``path`` (at its key with ``key=True``)."""
        return Problem(self.file, *self.where(path, key=key), message)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, located: Located) -> None:
        self.loader = loader
        self.located = located
        self.count = 0

    def fail(self, node: yaml.Node, message: str) -> RulePackError:
        return RulePackError(self.located.file, *_mark(node), message)

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.fail(node, f"more than {MAX_VALUES:,} values; a rule pack holds fewer")
        self.located.positions[path] = _mark(node)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
            raise self.fail(node, f"tag {node.tag!r} is not allowed; write plain YAML")
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.fail(key_node, "'<<' merge keys are not allowed")
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail(key_node, "a key must be text")
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int) or isinstance(key, bool):
                    raise self.fail(key_node, "a key must be text")
                if key in result:
                    line, _ = self.located.keys[(*path, key)]
                    raise self.fail(
                        key_node,
                        f"duplicate key {key!r} (first at line {line}); "
                        "YAML would silently keep only the last one",
                    )
                self.located.keys[(*path, key)] = _mark(key_node)
                result[key] = self.build(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as error:
            raise self.fail(node, f"not a valid value: {error}") from None


def load_yaml(path: Path | str, text: str | None = None) -> Located:
    """Read ``path`` (or ``text``, named ``path``) with the safe loader, keeping positions."""
    file = str(path)
    if text is None:
        try:
            with Path(path).open("rb") as stream:
                data = stream.read(MAX_BYTES + 1)
        except OSError as error:
            raise RulePackError(file, 1, 1, f"cannot read it: {error.strerror}") from None
        if len(data) > MAX_BYTES:
            raise RulePackError(file, 1, 1, f"the file is over {MAX_BYTES:,} bytes; split it")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RulePackError(file, 1, 1, f"not UTF-8 text: {error.reason}") from None
    located = Located(file)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise RulePackError(file, 1, 1, "the file is empty; expected `language:` and `rules:`")
        located.data = _Builder(loader, located).build(node, ())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = error.problem or error.context or "invalid YAML"
        if "\t" in problem or "'\\t'" in problem:
            problem += "; YAML indents with spaces, not tabs"
        raise RulePackError(file, line, column, f"YAML syntax: {problem}") from None
    except yaml.YAMLError as error:
        raise RulePackError(file, 1, 1, f"YAML: {error}") from None
    except RecursionError:
        raise RulePackError(file, 1, 1, "nested too deeply") from None
    finally:
        loader.dispose()
    return located
