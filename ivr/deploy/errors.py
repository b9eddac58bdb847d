"""Errors of the deployment renderer: a deployment file that cannot be rendered (every
message positioned ``file:line:col:``) and a name Asterisk's module table cannot place."""

from __future__ import annotations

from ivr.errors import IvrError
from ivr.flows.problems import Problem

__all__ = ["DeploymentError", "ModuleTableError"]


class DeploymentError(IvrError, ValueError):
    """A deployment file that cannot be rendered; :attr:`problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class ModuleTableError(IvrError, ValueError):
    """A name that Asterisk's module table (``ivr/deploy/asterisk_modules.json``) cannot
    place: a module no source file defines, an application or function no module
    registers. The message says which name, who asked for it, and what to do."""
