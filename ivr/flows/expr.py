"""The condition language of ``branch`` nodes: a small, closed evaluator (no ``eval``).

    caller.tier == "gold" and not (attempts >= 3)
    lower(intent) in ["billing", "invoice"] or startswith(account, "9")

Literals (numbers, "strings", true, false, null, [lists]), variables with
dotted names, comparisons (``== != < <= > >=``, ``in``, ``not in``),
``and``/``or``/``not``, ``+``/``-``, parentheses, and the functions in
:data:`FUNCTIONS`. Expressions are parsed when a flow loads, so a typo is a
load-time error with its column; evaluation never raises on missing
variables (they read as ``null``) or on mismatched types (a comparison that
makes no sense is false).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ivr.errors import IvrError

__all__ = ["FUNCTIONS", "Expression", "ExpressionError", "parse"]


class ExpressionError(IvrError, ValueError):
    """An expression that does not parse; ``column`` is 1-based within it."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.column = column


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _number(value: Any) -> float | int | None:
    """A number from a value; whole numbers stay exact integers (19-digit accounts)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = _text(value).strip()
    if re.fullmatch(r"[-+]?\d{1,100}", text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


FUNCTIONS: Final[dict[str, tuple[int, Callable[..., Any]]]] = {
    "len": (1, lambda v: len(v) if isinstance(v, (str, list, dict)) else len(_text(v))),
    "lower": (1, lambda v: _text(v).lower()),
    "upper": (1, lambda v: _text(v).upper()),
    "trim": (1, lambda v: _text(v).strip()),
    "str": (1, _text),
    "number": (1, _number),
    "startswith": (2, lambda v, p: _text(v).startswith(_text(p))),
    "endswith": (2, lambda v, p: _text(v).endswith(_text(p))),
    "contains": (2, lambda v, p: _text(p) in _text(v)),
}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\+|-|\.)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    column: int


def _tokens(source: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            column = pos + len(source[pos:]) - len(source[pos:].lstrip()) + 1
            raise ExpressionError(f"unexpected character {source[column - 1]!r}", column)
        kind = match.lastgroup or "op"
        text = match.group(kind)
        column = match.start(kind) + 1
        if kind == "name" and text in _KEYWORDS:
            kind = "keyword"
        out.append(_Tok(kind, text, column))
        pos = match.end()
    out.append(_Tok("end", "", len(source) + 1))
    return out


Node = tuple[Any, ...]


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.index = 0
        self.names: set[str] = set()

    @property
    def tok(self) -> _Tok:
        return self.tokens[self.index]

    def take(self, text: str | None = None) -> _Tok:
        tok = self.tok
        if text is not None and tok.text != text:
            shown = tok.text or "the end"
            raise ExpressionError(f"expected {text!r}, found {shown!r}", tok.column)
        self.index += 1
        return tok

    def accept(self, text: str) -> bool:
        if self.tok.text == text and self.tok.kind in ("op", "keyword"):
            self.index += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.or_()
        if self.tok.kind != "end":
            raise ExpressionError(f"unexpected {self.tok.text!r}", self.tok.column)
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.accept("or"):
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.accept("and"):
            node = ("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.accept("not"):
            return ("not", self.not_())
        return self.compare()

    def compare(self) -> Node:
        node = self.sum_()
        tok = self.tok
        if tok.text in ("==", "!=", "<", "<=", ">", ">=", "in") and tok.kind != "string":
            self.index += 1
            return ("cmp", tok.text, node, self.sum_())
        if tok.text == "not" and self.tokens[self.index + 1].text == "in":
            self.index += 2
            return ("not", ("cmp", "in", node, self.sum_()))
        return node

    def sum_(self) -> Node:
        node = self.unary()
        while self.tok.text in ("+", "-") and self.tok.kind == "op":
            op = self.take().text
            node = ("arith", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.accept("-"):
            return ("arith", "-", ("lit", 0), self.unary())
        return self.primary()

    def primary(self) -> Node:  # noqa: PLR0911 - one return per kind of value
        tok = self.take()
        if tok.kind == "number":
            return ("lit", float(tok.text) if "." in tok.text else int(tok.text))
        if tok.kind == "string":
            body = tok.text[1:-1]
            return ("lit", re.sub(r"\\(.)", r"\1", body))
        if tok.kind == "keyword" and tok.text in ("true", "false", "null"):
            return ("lit", {"true": True, "false": False, "null": None}[tok.text])
        if tok.text == "(":
            node = self.or_()
            self.take(")")
            return node
        if tok.text == "[":
            items: list[Node] = []
            while not self.accept("]"):
                items.append(self.or_())
                if not self.accept(","):
                    self.take("]")
                    break
            return ("list", tuple(items))
        if tok.kind == "name":
            if self.tok.text == "(":
                return self.call(tok)
            parts = [tok.text]
            while self.accept("."):
                parts.append(self.take_name().text)
            name = ".".join(parts)
            self.names.add(name)
            return ("var", name)
        shown = tok.text or "the end"
        raise ExpressionError(f"expected a value, found {shown!r}", tok.column)

    def take_name(self) -> _Tok:
        tok = self.take()
        if tok.kind != "name":
            raise ExpressionError("expected a name after '.'", tok.column)
        return tok

    def call(self, name: _Tok) -> Node:
        if name.text not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            message = f"unknown function {name.text!r}; allowed: {allowed}"
            raise ExpressionError(message, name.column)
        self.take("(")
        args: list[Node] = []
        while not self.accept(")"):
            args.append(self.or_())
            if not self.accept(","):
                self.take(")")
                break
        arity = FUNCTIONS[name.text][0]
        if len(args) != arity:
            raise ExpressionError(
                f"{name.text}() takes {arity} argument{'s' if arity > 1 else ''}, got {len(args)}",
                name.column,
            )
        return ("call", name.text, tuple(args))


def _lookup(variables: Mapping[str, Any], name: str) -> Any:
    if name in variables:
        return variables[name]
    value: Any = variables
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "in":
        if isinstance(right, (list, tuple)):
            return left in right or _text(left) in [_text(r) for r in right]
        return _text(left) in _text(right)
    if op in ("==", "!="):
        # A number against text compares as numbers ("0042" == 42: keypad
        # input is text); text against text compares as text ("0042" != "42").
        numeric = any(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)
        )
        if numeric and _number(left) is not None and _number(right) is not None:
            same = _number(left) == _number(right)
        else:
            same = left == right
        return same if op == "==" else not same
    a, b = left, right
    if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        a, b = _number(a), _number(b)
    if a is None or b is None:
        return False
    return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])


def _evaluate(node: Node, variables: Mapping[str, Any]) -> Any:  # noqa: PLR0911 - per node kind
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "var":
        return _lookup(variables, node[1])
    if kind == "list":
        return [_evaluate(item, variables) for item in node[1]]
    if kind == "not":
        return not _evaluate(node[1], variables)
    if kind == "and":
        return bool(_evaluate(node[1], variables)) and bool(_evaluate(node[2], variables))
    if kind == "or":
        return bool(_evaluate(node[1], variables)) or bool(_evaluate(node[2], variables))
    if kind == "cmp":
        return _compare(node[1], _evaluate(node[2], variables), _evaluate(node[3], variables))
    if kind == "arith":
        left, right = _evaluate(node[2], variables), _evaluate(node[3], variables)
        if node[1] == "+" and (isinstance(left, str) or isinstance(right, str)):
            return _text(left) + _text(right)
        a, b = _number(left), _number(right)
        if a is None or b is None:
            return None
        return a + b if node[1] == "+" else a - b
    if kind == "call":
        function = FUNCTIONS[node[1]][1]
        return function(*(_evaluate(arg, variables) for arg in node[2]))
    raise AssertionError(f"unknown node {kind}")  # pragma: no cover - parser makes no others


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed condition: ``Expression.parse(text).evaluate(variables)``."""

    source: str
    tree: Node
    names: frozenset[str]

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        return _evaluate(self.tree, variables)

    def test(self, variables: Mapping[str, Any]) -> bool:
        return bool(self.evaluate(variables))


def parse(source: str) -> Expression:
    """Parse ``source`` or raise :class:`ExpressionError` naming the column."""
    if len(source) > 2000:
        raise ExpressionError("expression longer than 2000 characters", 1)
    depth = 0
    for column, char in enumerate(source, start=1):
        depth += (char in "([" and 1) or (-1 if char in ")]" else 0)
        if depth > 32:
            raise ExpressionError("brackets nested deeper than 32", column)
    parser = _Parser(source)
    try:
        tree = parser.parse()
    except RecursionError:
        raise ExpressionError("nested too deeply", 1) from None
    return Expression(source, tree, frozenset(parser.names))
