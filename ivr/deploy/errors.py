"""Errors of the deployment renderer; every message is positioned ``file:line:col:``."""

from __future__ import annotations

from ivr.errors import IvrError
from ivr.flows.problems import Problem

__all__ = ["DeploymentError"]


class DeploymentError(IvrError, ValueError):
    """A deployment file that cannot be rendered; :attr:`problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
