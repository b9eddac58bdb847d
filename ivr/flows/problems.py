"""A problem in a flow file, positioned: ``file:line:col: message``."""

from __future__ import annotations

from dataclasses import dataclass

from ivr.errors import IvrError
from ivr.flows.source import PathKey, Source

__all__ = ["FlowError", "Problem", "problem_at"]


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
