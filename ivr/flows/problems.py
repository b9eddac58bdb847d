"""A problem in a flow file, positioned: ``file:line:col: message``."""

from __future__ import annotations

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
            message = (hint(dict(error)) if hint else None) or str(error["msg"]).removeprefix(
                "Value error, "
            )
            problems.append(problem_at(source, loc, f"{key}: {message}", key=True))
        raise FlowError(problems) from None
