"""Errors of the QA library, under :class:`speech.errors.SpeechError`."""

from __future__ import annotations

from dataclasses import dataclass

from speech.errors import SpeechError

__all__ = ["Problem", "QaError", "RulePackError", "TranscriptError"]


class QaError(SpeechError):
    """Base of every error raised by ``speech.qa``."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a rule pack, where it was written."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class RulePackError(QaError, ValueError):
    """A rule pack that cannot be used: one ``file:line:col: message`` line per problem."""

    def __init__(self, file: str, line: int, column: int, message: str) -> None:
        self.problems: tuple[Problem, ...] = (Problem(file, line, column, message),)
        super().__init__(str(self.problems[0]))

    @classmethod
    def of(cls, problems: list[Problem]) -> RulePackError:
        """One error for several problems (the first one's position in the attributes)."""
        first = problems[0]
        error = cls(first.file, first.line, first.column, first.message)
        error.problems = tuple(problems)
        error.args = ("\n".join(str(p) for p in problems),)
        return error

    @property
    def file(self) -> str:
        return self.problems[0].file

    @property
    def line(self) -> int:
        return self.problems[0].line

    @property
    def column(self) -> int:
        return self.problems[0].column

    @property
    def message(self) -> str:
        return self.problems[0].message


class TranscriptError(QaError, ValueError):
    """A transcript (JSON) or a recording that cannot be read; the message says why."""
