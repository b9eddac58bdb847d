"""Load ``routing.yaml`` with positions: mistakes read ``routing.yaml:LINE:COL: ...``."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from ivr.flows.problems import FlowError, Problem, problem_at
from ivr.flows.source import SourceError, load_source
from routing.config import RoutingConfig

__all__ = ["load_routing"]


def load_routing(path: Path | str, text: str | None = None) -> RoutingConfig:
    try:
        source = load_source(path, text)
    except SourceError as exc:
        where = Problem(exc.file, exc.position.line, exc.position.column, exc.message)
        raise FlowError([where]) from None
    try:
        return RoutingConfig.model_validate(source.data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            key = ".".join(str(part) for part in loc) or "routing"
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "string_pattern_mismatch" and loc[-1] == "endpoint":
                message = "use TECHNOLOGY/resource, e.g. PJSIP/1001"
            problems.append(problem_at(source, loc, f"{key}: {message}", key=True))
        raise FlowError(problems) from None
