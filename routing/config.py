"""``routing.yaml``: agents, and queues with their skills, targets and escalation steps.

    agents:
      - {id: alice, endpoint: PJSIP/1001, skills: {billing: 7}, team: north, site: seoul}
    queues:
      billing:
        skills: {billing: 5}          # every skill at least at its level
        service_level: {percent: 80, seconds: 20}
        announce_every: 30            # position and wait, while on hold
        aht: 240                      # handle time used for the wait estimate
        wrap_up: 10                   # seconds after each call (an agent's own wins)
        group: default                # routing group: queues that share agents
        prefer_site: true             # the caller's site first ...
        steps:                        # escalation over the call's wait
          - {after: 30, skills: {billing: 3}}
          - {after: 60, all_sites: true}   # ... then every site
          - {after: 120, overflow: true}   # leave by the flow's on_failure
        record: true                  # record calls with an agent (caller, agent, mix)
        retention: 30d                # then delete the files (s, m, h, d; default 30d)

Pure models (no I/O): ``ivr`` loads the file with positions and validates it
here, so a mistake reads ``routing.yaml:LINE:COL``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from routing.types import DEFAULT_GROUP, Agent

__all__ = [
    "AgentConfig",
    "QueueConfig",
    "RoutingConfig",
    "ServiceLevel",
    "Step",
    "agent_of",
    "agent_skills",
]

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")]
#: A site's name, or empty (no site).
Site = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]*$")]
Levels = dict[Name, Annotated[int, Field(ge=1, le=10)]]


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(value: object) -> object:
    """``30d``, ``12h``, ``90m``, ``45s`` or a number of seconds."""
    if isinstance(value, str):
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
        if found is None:
            raise ValueError(f"{value!r} is not a duration; use e.g. 30d, 12h, 90m or seconds")
        return float(found[1]) * _UNITS[found[2] or "s"]
    return value


#: A duration in seconds, written as seconds or ``30d`` / ``12h`` / ``90m``.
Duration = Annotated[float, BeforeValidator(_seconds)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentConfig(_Strict):
    id: Name
    name: str | None = None
    endpoint: str = Field(pattern=r"^[A-Za-z0-9]+/[A-Za-z0-9_.@+\-]+$")
    skills: Levels = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=list)
    team: str | None = None
    site: Site = Field("", description="the centre the agent works in (empty: none)")
    group: Name = Field(DEFAULT_GROUP, description="routing group: the queues the agent serves")
    wrap_up: float | None = Field(
        None, ge=0, le=3600, description="seconds of wrap-up after each call (None: the queue's)"
    )
    log_in: bool = Field(False, description="log in when the engine starts (demos)")


def agent_skills(agent: AgentConfig) -> dict[str, int]:
    """An agent's skills; their team counts as the skill ``team.<name>`` at level 1."""
    skills = dict(agent.skills)
    if agent.team:
        skills[f"team.{agent.team}"] = 1
    return skills


def agent_of(agent: AgentConfig) -> Agent:
    """The routing value of a configured agent (skills with the team, languages, site)."""
    return Agent(
        agent.id,
        agent.endpoint,
        agent_skills(agent),
        tuple(agent.languages),
        agent.site,
        agent.group,
        agent.wrap_up,
    )


class ServiceLevel(_Strict):
    percent: float = Field(80, gt=0, lt=100)
    seconds: float = Field(20, gt=0)


class Step(_Strict):
    after: float = Field(gt=0, description="seconds the call has waited")
    skills: Levels | None = Field(None, description="the requirement from then on")
    any_skills: Levels | None = Field(
        None, description="one of these from then on (teams: {team.b: 1, team.a: 1})"
    )
    priority: int | None = Field(None, ge=0, le=100)
    overflow: bool = Field(False, description="leave the queue by the flow's on_failure")
    all_sites: bool = Field(False, description="from then on, agents of every site may take it")

    @model_validator(mode="after")
    def _does_something(self) -> Step:
        if (
            self.skills is None
            and self.any_skills is None
            and self.priority is None
            and not self.overflow
            and not self.all_sites
        ):
            raise ValueError(
                "a step does something: allowed keys skills, any_skills, priority, overflow, "
                "all_sites"
            )
        return self


class QueueConfig(_Strict):
    skills: Levels = Field(default_factory=dict, description="every one of these")
    any_skills: Levels = Field(default_factory=dict, description="and one of these")
    priority: int = Field(0, ge=0, le=100)
    service_level: ServiceLevel = Field(default_factory=ServiceLevel)
    announce_every: float | None = Field(None, ge=1, description="seconds between notices")
    aht: float = Field(180, gt=0, description="handle time for wait estimates, seconds")
    strategy: Literal["longest_idle", "most_skilled", "round_robin", "least_occupied"] = (
        "longest_idle"
    )
    last_agent_first: bool = Field(True, description="ring the caller's last agent first")
    ring_timeout: int = Field(20, ge=5, le=120, description="seconds an agent's phone rings")
    dial_options: str = Field(
        "",
        pattern=r"^[A-Za-fh-z]*$",
        description="Dial options added to 'g' (letters only, e.g. 'tT' lets both transfer)",
    )
    wrap_up: float = Field(0, ge=0, le=3600, description="seconds of wrap-up after each call")
    group: Name = Field(DEFAULT_GROUP, description="routing group: queues that share agents")
    prefer_site: bool = Field(
        False, description="only agents of the caller's site, until a step with all_sites"
    )
    steps: list[Step] = Field(default_factory=list)
    record: bool = Field(
        False, description="record calls connected to an agent: caller, agent and a mix"
    )
    retention: Duration = Field(
        30 * 86400, ge=3600, description="recordings are deleted after this (e.g. 30d, 12h)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> QueueConfig:
        times = [step.after for step in self.steps]
        if times != sorted(times) or len(set(times)) != len(times):
            raise ValueError("steps must come in order of 'after', each at its own time")
        return self


class RoutingConfig(_Strict):
    agents: list[AgentConfig] = Field(default_factory=list)
    queues: dict[Name, QueueConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique(self) -> RoutingConfig:
        seen: set[str] = set()
        for agent in self.agents:
            if agent.id in seen:
                raise ValueError(f"agent {agent.id!r} is listed twice")
            seen.add(agent.id)
        return self
