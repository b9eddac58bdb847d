"""Load ``routing.yaml`` with positions: mistakes read ``routing.yaml:LINE:COL: ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ivr.flows.problems import read_source, validate_model
from routing.config import AgentConfig, RoutingConfig, agent_skills
from routing.types import Agent

__all__ = ["agent_of", "load_routing", "load_routing_file"]


def agent_of(config: AgentConfig) -> Agent:
    """The routing agent an ``agents:`` entry (or the API's PUT) describes."""
    return Agent(
        config.id,
        config.endpoint,
        agent_skills(config),
        languages=tuple(config.languages),
        site=config.site,
        group=config.group,
        wrap_up=config.wrap_up,
    )


def load_routing(path: Path | str, text: str | None = None) -> RoutingConfig:
    """Load and check ``routing.yaml``; problems come as :class:`FlowError`."""

    def hint(error: dict[str, Any]) -> str | None:
        if error["type"] == "string_pattern_mismatch" and error["loc"][-1] == "endpoint":
            return "use TECHNOLOGY/resource, e.g. PJSIP/1001"
        return None

    return validate_model(read_source(path, text), RoutingConfig, hint)


def load_routing_file(path: Path) -> RoutingConfig:
    """``path`` loaded and checked; no agents and no queues when there is no such file."""
    return load_routing(path) if path.exists() else RoutingConfig()
