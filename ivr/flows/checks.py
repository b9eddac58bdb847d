"""Checks over a flow's graph, run when it loads (before any call can reach it).

Unknown targets, a missing entry, unreachable nodes, menu options that
collide, branch conditions that do not parse, loops that never take input
(a caller stuck in them would never be heard again), and placeholders
where they are not allowed: ``${env:IVR_*}`` outside an http node's
headers, ``${service:NAME}`` anywhere but the very start of its url (or
naming a service the engine does not have, when the engine's are known).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING

from ivr.flows.expr import ExpressionError, parse
from ivr.flows.model import Branch, Flow, Language, LanguageOption, Menu, Option, targets_of
from ivr.flows.problems import Problem, problem_at
from ivr.flows.services import leading, misplaced, unknown

if TYPE_CHECKING:
    from ivr.flows.source import Source

__all__ = ["INPUT_NODES", "check_flow"]

_ENV = re.compile(r"\$\{env:([^}]*)\}")

#: Node types that wait for the caller (keys, speech, an agent): a loop through
#: one of them is a menu the caller can leave, not a spin.
INPUT_NODES = frozenset(
    {"menu", "gather", "speech", "faq", "language", "record", "survey", "queue", "transfer"}
)


def check_flow(
    flow: Flow, source: Source, services: Collection[str] | None = None
) -> list[Problem]:
    """Every problem of ``flow`` with its position in ``source``; ``services``: the names
    of the engine's HTTP services (None: not known here, names are not checked)."""
    problems: list[Problem] = []
    names = list(flow.nodes)
    if flow.entry is not None and flow.entry not in flow.nodes:
        problems.append(
            problem_at(
                source, ("entry",), f"entry {flow.entry!r} is not a node; nodes: {_few(names)}"
            )
        )
    edges: dict[str, list[str]] = defaultdict(list)
    for name, node in flow.nodes.items():
        for path, target in targets_of(node):
            if target not in flow.nodes:
                problems.append(
                    problem_at(
                        source,
                        ("nodes", name, *path),
                        f"{path[-1]}: no node named {target!r}; nodes: {_few(names)}",
                    )
                )
            else:
                edges[name].append(target)
        if isinstance(node, Menu | Language):
            problems += _collisions(node, name, source)
        if isinstance(node, Branch):
            for index, condition in enumerate(node.conditions):
                try:
                    parse(condition.if_)
                except ExpressionError as exc:
                    path = ("nodes", name, "conditions", index, "if")
                    where = source.where(path)
                    column = where.column + exc.column - (0 if path in source.quoted else 1)
                    problems.append(Problem(source.file, where.line, column, f"if: {exc}"))
    if problems:
        return sorted(problems, key=lambda p: (p.line, p.column))
    reachable = _reach(flow.start, edges)
    for name in names:
        if name not in reachable:
            problems.append(
                problem_at(
                    source,
                    ("nodes", name),
                    f"node {name!r} cannot be reached from {flow.start!r}; "
                    "remove it or point a 'next'/'goto' at it",
                    key=True,
                )
            )
    problems += _spins(flow, edges, source)
    problems += _env_references(source)
    problems += _service_references(flow, source, services)
    return sorted(problems, key=lambda p: (p.line, p.column))


def _strings(source: Source) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every text under the flow's ``nodes``, with its path."""
    stack: list[tuple[tuple[str | int, ...], object]] = [
        (("nodes",), source.data.get("nodes", {}) if isinstance(source.data, dict) else {})
    ]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, dict):
            stack += [((*path, key), item) for key, item in value.items()]
        elif isinstance(value, list):
            stack += [((*path, index), item) for index, item in enumerate(value)]


def _env_references(source: Source) -> list[Problem]:
    """``${env:...}`` is for secrets in HTTP headers only, and only ``IVR_*`` names."""
    problems: list[Problem] = []
    for path, text in _strings(source):
        for name in _ENV.findall(text):
            in_headers = len(path) > 3 and path[2] == "headers"
            if not in_headers:
                message = "${env:...} is only allowed in an http node's headers"
            elif not name.startswith("IVR_"):
                message = f"${{env:{name}}}: only variables named IVR_* can be used"
            else:
                continue
            problems.append(problem_at(source, path, message))
    return problems


def _service_references(
    flow: Flow, source: Source, services: Collection[str] | None
) -> list[Problem]:
    """``${service:NAME}`` only opens an http node's url, and names a known service."""
    problems: list[Problem] = []
    for path, text in _strings(source):
        node = flow.nodes.get(str(path[1])) if len(path) == 3 else None
        in_url = node is not None and node.type == "http" and path[2] == "url"
        message = misplaced(text, url=in_url)
        if message is None and in_url and services is not None:
            found = leading(text)
            if found is not None and found[0] not in services:
                message = unknown(found[0], services)
        if message is not None:
            problems.append(problem_at(source, path, message))
    return problems


def _few(names: list[str]) -> str:
    return ", ".join(names[:12]) + (" …" if len(names) > 12 else "")


def _reach(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for target in edges[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _collisions(node: Menu | Language, name: str, source: Source) -> list[Problem]:
    problems: list[Problem] = []
    digits: dict[str, int] = {}
    phrases: dict[str, int] = {}
    options: Sequence[Option | LanguageOption] = node.options
    for index, option in enumerate(options):
        if option.digit is not None:
            if option.digit in digits:
                problems.append(
                    problem_at(
                        source,
                        ("nodes", name, "options", index, "digit"),
                        f"digit {option.digit!r} is already option {digits[option.digit] + 1}",
                    )
                )
            digits[option.digit] = index
        for phrase in option.phrases:
            key = " ".join(phrase.lower().split())
            if key in phrases and phrases[key] != index:
                problems.append(
                    problem_at(
                        source,
                        ("nodes", name, "options", index, "phrases"),
                        f"phrase {phrase!r} is already option {phrases[key] + 1}",
                    )
                )
            phrases.setdefault(key, index)
    return problems


def _spins(flow: Flow, edges: dict[str, list[str]], source: Source) -> list[Problem]:
    """Cycles made only of nodes that never wait for the caller."""
    passive = {n for n, node in flow.nodes.items() if node.type not in INPUT_NODES}
    following = {n: [t for t in edges[n] if t in passive] for n in passive}
    problems: list[Problem] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported: set[frozenset[str]] = set()
    for root in flow.nodes:
        if root not in passive or root in state:
            continue
        # Iterative depth-first search: flows can be thousands of nodes long.
        trail = [root]
        stack = [iter(following[root])]
        state[root] = 1
        while stack:
            for target in stack[-1]:
                if state.get(target) == 1:
                    loop = trail[trail.index(target) :]
                    if frozenset(loop) not in reported:
                        reported.add(frozenset(loop))
                        problems.append(
                            problem_at(
                                source,
                                ("nodes", loop[0]),
                                "these nodes loop without ever waiting for the caller: "
                                + " -> ".join([*loop, loop[0]])
                                + "; put a menu, gather or hangup in the loop",
                                key=True,
                            )
                        )
                elif target not in state:
                    state[target] = 1
                    trail.append(target)
                    stack.append(iter(following[target]))
                    break
            else:
                state[trail.pop()] = 2
                stack.pop()
    return problems
