"""A problem in a flow file, positioned: ``file:line:col: message``."""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ivr.errors import IvrError
from ivr.flows.source import PathKey, Source, SourceError, load_source

__all__ = ["FlowError", "Problem", "problem_at", "read_source", "validate_model"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class FlowError(IvrError, ValueError):
    """A flow that cannot run; :attr:`problems` lists every reason with its position."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def problem_at(source: Source, path: PathKey, message: str, *, key: bool = False) -> Problem:
    where = source.where(path, key=key)
    return Problem(source.file, where.line, where.column, message)


def read_source(path: Path | str, text: str | None = None) -> Source:
    """Safe YAML with positions; a file that is not readable YAML is a :class:`FlowError`."""
    try:
        return load_source(path, text)
    except SourceError as exc:
        where = Problem(exc.file, exc.position.line, exc.position.column, exc.message)
        raise FlowError([where]) from None


def validate_model(
    source: Source, model: type[M], hint: Callable[[dict[str, Any]], str | None] | None = None
) -> M:
    """``model`` from the source's data; every error positioned as ``key.path: message``."""
    try:
        return model.model_validate(source.data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            key = ".".join(str(part) for part in loc) or "file"
            hinted = hint(dict(error)) if hint else None
            message = hinted or str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden" and hinted is None:
                owner = _model_at(model, loc[:-1])
                allowed = (
                    [f.alias or name for name, f in owner.model_fields.items()] if owner else []
                )
                message = f"unknown key {loc[-1]!r}" + (
                    f"; allowed: {', '.join(allowed)}" if allowed else ""
                )
            problems.append(problem_at(source, loc, f"{key}: {message}", key=True))
        raise FlowError(problems) from None


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the value at ``loc`` (through lists, dicts, optionals)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            current = _inner(current)
            if isinstance(part, int):
                continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part)) or next(
            (f for f in current.model_fields.values() if f.alias == part), None
        )
        if field is None:
            return None
        current = _inner(field.annotation)
    current = _inner(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner(annotation: Any) -> Any:
    """The model inside ``list[X]``, ``dict[K, X]`` or ``X | None``, else the annotation."""
    for arg in typing.get_args(annotation) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        found = _inner(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation
