"""Load a flow: safe YAML with positions → model → graph checks.

Every problem becomes a :class:`Problem` that reads
``dialplans/x.yaml:LINE:COL: what is wrong; what is allowed``; all problems
of a file are reported together, not just the first.

Flows are read under limits that real flows never reach and hostile files
reach at once (each refusal names the file, the key where there is one, and
the limit; a reloading engine keeps serving the previous version):

* a flow file holds at most 1 MiB (:data:`MAX_FLOW_BYTES`), checked before it is read;
* at most 100,000 values (keys, items and texts, aliases counted as expanded),
  counted while the YAML is composed (:data:`MAX_FLOW_VALUES`);
* one text (a prompt, a phrase) at most 10,000 characters, some ten minutes of
  speech (:data:`MAX_TEXT`);
* at most 5,000 nodes in one flow (:data:`MAX_NODES`): a larger one is split
  into subflows.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ivr.flows import model
from ivr.flows.checks import check_flow
from ivr.flows.model import NODE_TYPES, Flow, Subflow
from ivr.flows.problems import FlowError, Problem, problem_at, read_source
from ivr.flows.source import Limits, PathKey, Source, SourceError, load_source

__all__ = [
    "FLOW_LIMITS",
    "MAX_NODES",
    "FlowError",
    "Problem",
    "load_flow",
    "load_flows",
    "missing_subflows",
    "parse_flow",
]

MAX_FLOW_BYTES = 1 << 20
MAX_FLOW_VALUES = 100_000
MAX_TEXT = 10_000
MAX_NODES = 5_000
#: What one flow file may hold (see the module's docstring).
FLOW_LIMITS = Limits(
    max_bytes=MAX_FLOW_BYTES,
    max_values=MAX_FLOW_VALUES,
    max_text=MAX_TEXT,
    what="a flow file",
    hint="split the flow into subflows",
)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class inside an annotation like ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _node_class(data: Any) -> type[BaseModel] | None:
    kind = data.get("type") if isinstance(data, dict) else None
    for cls in vars(model).values():
        if (
            isinstance(cls, type)
            and issubclass(cls, BaseModel)
            and "type" in cls.model_fields
            and typing.get_args(cls.model_fields["type"].annotation) == (kind,)
        ):
            return cls
    return None


def _walk(data: Any, loc: tuple[Any, ...]) -> tuple[PathKey, type[BaseModel] | None]:
    """Map a pydantic error location to the YAML path, and the model at its parent."""
    path: list[str | int] = []
    current: type[BaseModel] | None = Flow
    value: Any = data
    index = 0
    while index < len(loc):
        part = loc[index]
        index += 1
        if len(path) == 1 and path[0] == "nodes":
            path.append(part)
            value = value.get(part) if isinstance(value, dict) else None
            current = _node_class(value)
            if current is not None and index < len(loc) and loc[index] == value.get("type"):
                index += 1  # pydantic inserts the union's tag into the location
            continue
        if isinstance(part, int):
            path.append(part)
            value = value[part] if isinstance(value, list) and part < len(value) else None
            continue
        if part == "[key]":  # a dict key that is not allowed: point at the key itself
            continue
        field = _field(current, part)
        if field is not None:
            name = field.alias or part
            current_next = _model_of(field.annotation)
        else:
            name, current_next = part, None
        path.append(name)
        value = value.get(name) if isinstance(value, dict) else None
        if index < len(loc) or current_next is not None:
            current = current_next
    return tuple(path), current


def _field(model: type[BaseModel] | None, part: Any) -> Any:
    """The model's field named ``part`` in an error location (by name or by alias)."""
    if model is None or not isinstance(part, str):
        return None
    if part in model.model_fields:
        return model.model_fields[part]
    return next((f for f in model.model_fields.values() if f.alias == part), None)


def _allowed(model: type[BaseModel] | None) -> str:
    if model is None:
        return ""
    names = [f.alias or n for n, f in model.model_fields.items()]
    return "; allowed: " + ", ".join(names)


#: Labels pydantic puts in an error's location for the members of a union.
_UNION_LABELS = re.compile(r"^(str|int|float|bool|list\[.*\]|dict\[.*\]|[A-Z]\w*)$")


def _one_per_union(exc: ValidationError) -> list[Any]:
    """A value that fits none of a union's members gives one error, not one per member.

    Prompt text (one string, or one per language) keeps its own, clearer message.
    """
    groups: dict[tuple[Any, ...], list[Any]] = {}
    order: list[tuple[Any, ...]] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        bare = tuple(p for p in loc if not (isinstance(p, str) and _UNION_LABELS.match(p)))
        if bare not in groups:
            order.append(bare)
        groups.setdefault(bare, []).append(error)
    out: list[Any] = []
    for bare in order:
        errors = groups[bare]
        labels = [
            p for e in errors for p in e["loc"] if isinstance(p, str) and _UNION_LABELS.match(p)
        ]
        if not labels or set(labels) <= {"str", "dict[str,str]"}:
            out += errors
        else:
            out.append(
                {
                    "loc": bare,
                    "type": "union_mismatch",
                    "input": errors[0].get("input"),
                    "members": labels,
                }
            )
    return out


def _describe(source: Source, error: Any) -> Problem:  # noqa: PLR0911 - one return per kind
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and _UNION_LABELS.match(p)))
    kind = error["type"]
    if kind == "union_mismatch":
        path, _ = _walk(source.data, loc)
        kinds = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true/false"}
        wanted = sorted({kinds.get(m, m) for m in error["members"]})
        shown = repr(error.get("input"))[:40]
        return problem_at(source, path, f"{path[-1]}: {shown} is not {' or '.join(wanted)}")
    if error["loc"] != loc and kind in ("string_type", "dict_type"):
        labels = [
            i for i, p in enumerate(error["loc"]) if isinstance(p, str) and _UNION_LABELS.match(p)
        ]
        path, _ = _walk(source.data, tuple(error["loc"][: labels[-1]]))
        return problem_at(
            source,
            path,
            f"{path[-1]}: give one text, or one per language like {{en: ..., ko: ...}}; "
            "put quotes around text that holds a comma or a colon",
        )
    path, parent = _walk(source.data, loc)
    if kind == "extra_forbidden":
        return problem_at(source, path, f"unknown key {path[-1]!r}{_allowed(parent)}", key=True)
    if kind == "union_tag_invalid":
        found = error.get("ctx", {}).get("tag")
        return problem_at(
            source,
            (*path, "type"),
            f"unknown node type {found!r}; allowed: {', '.join(NODE_TYPES)}",
        )
    if kind == "union_tag_not_found":
        return problem_at(source, path, f"a node needs 'type': one of {', '.join(NODE_TYPES)}")
    if kind == "missing":
        hint = ""
        if parent is not None and loc[-1] in parent.model_fields:
            hint = parent.model_fields[str(loc[-1])].description or ""
        return problem_at(
            source, path[:-1], f"missing {path[-1]!r}" + (f": {hint}" if hint else "")
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    if "[key]" in error["loc"]:
        return problem_at(source, path, f"{path[-1]}: {message}", key=True)
    if kind == "string_type" and isinstance(error.get("input"), bool):
        word = "yes/on/true" if error["input"] else "no/off/false"
        message = f"YAML reads {word} as a boolean, not text; put the word in quotes"
    if kind == "string_pattern_mismatch" and path and path[-1] in ("next", "goto", "on_failure"):
        message = "a node name: letters, digits, '_' and '-', starting with a letter"
    name = next((p for p in reversed(path) if isinstance(p, str)), "flow")
    return problem_at(source, path, f"{name}: {message}")


def parse_flow(source: Source, *, services: Collection[str] | None = None) -> Flow:
    """Validate loaded YAML into a :class:`Flow`, then run the graph checks (``services``:
    the engine's HTTP services by name, when known; see :func:`check_flow`)."""
    if not isinstance(source.data, dict):
        raise FlowError([problem_at(source, (), "a flow is a mapping with 'id' and 'nodes'")])
    nodes = source.data.get("nodes")
    if isinstance(nodes, dict) and len(nodes) > MAX_NODES:
        # Before the model and the graph checks, whose work grows with the nodes.
        message = (
            f"nodes: {len(nodes):,} nodes; a flow holds at most {MAX_NODES:,}: "
            "split it into subflows"
        )
        raise FlowError([problem_at(source, ("nodes",), message, key=True)])
    try:
        flow = Flow.model_validate(source.data)
    except ValidationError as exc:
        problems = sorted(
            {str(p): p for p in (_describe(source, e) for e in _one_per_union(exc))}.values(),
            key=lambda p: (p.line, p.column),
        )
        raise FlowError(problems) from None
    problems = check_flow(flow, source, services)
    if problems:
        raise FlowError(problems)
    return flow


def load_flow(
    path: Path | str, text: str | None = None, *, services: Collection[str] | None = None
) -> Flow:
    """Load and check one flow file; raises :class:`FlowError` listing every problem."""
    try:
        source = load_source(path, text, limits=FLOW_LIMITS)
    except SourceError as exc:
        problem = Problem(exc.file, exc.position.line, exc.position.column, exc.message)
        raise FlowError([problem]) from None
    return parse_flow(source, services=services)


def flow_files(paths: Iterable[Path]) -> list[Path]:
    """The flow files under ``paths`` (directories are searched, ``tests/`` skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*.yaml")
                if "tests" not in p.relative_to(path).parts and p.name != "routing.yaml"
            )
        elif path.name != "routing.yaml":
            found.append(path)
    return found


def missing_subflows(
    flows: Mapping[str, Flow], files: Mapping[str, Path | str]
) -> dict[str, list[Problem]]:
    """Subflow nodes naming a flow that is not in ``flows``, by the id of the flow that
    holds them; each problem points at the node's ``flow:`` (``files``: where each flow
    was read, to find the line)."""
    found: dict[str, list[Problem]] = {}
    known = sorted(flows)
    for flow_id, flow in flows.items():
        bad = [
            (name, node.flow)
            for name, node in flow.nodes.items()
            if isinstance(node, Subflow) and node.flow not in flows
        ]
        if not bad:
            continue
        file = files.get(flow_id, flow_id)
        try:
            source: Source | None = read_source(file)
        except FlowError:
            source = None
        for name, target in bad:
            message = f"flow: no flow {target!r} is loaded; flows: {', '.join(known)}"
            found.setdefault(flow_id, []).append(
                problem_at(source, ("nodes", name, "flow"), message)
                if source is not None
                else Problem(str(file), 1, 1, f"nodes.{name}.{message}")
            )
    return found


def load_flows(
    paths: Iterable[Path], *, services: Collection[str] | None = None
) -> tuple[dict[str, Flow], list[Problem]]:
    """Load every flow under ``paths``; flows by id, and all problems found (a subflow
    naming a flow that is not there included: the flow is then left out). ``services``:
    the engine's HTTP services by name, when known."""
    flows: dict[str, Flow] = {}
    problems: list[Problem] = []
    origin: dict[str, Path] = {}
    for file in flow_files(paths):
        try:
            flow = load_flow(file, services=services)
        except FlowError as exc:
            problems += exc.problems
            continue
        if flow.id in flows:
            problems.append(
                Problem(str(file), 1, 1, f"flow id {flow.id!r} is also used by {origin[flow.id]}")
            )
            continue
        flows[flow.id] = flow
        origin[flow.id] = file
    while broken := missing_subflows(flows, origin):
        # Leaving a flow out can break another that uses it: until none is broken.
        for flow_id, found in broken.items():
            problems += found
            del flows[flow_id]
    return flows, problems
