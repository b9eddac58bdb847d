"""``routing.yaml``: agents, and queues with their skills, targets and escalation steps.

    agents:
      - {id: alice, endpoint: PJSIP/1001, skills: {billing: 7}, team: north}
    queues:
      billing:
        skills: {billing: 5}          # every skill at least at its level
        service_level: {percent: 80, seconds: 20}
        announce_every: 30            # position and wait, while on hold
        aht: 240                      # handle time used for the wait estimate
        steps:                        # escalation over the call's wait
          - {after: 30, skills: {billing: 3}}
          - {after: 120, overflow: true}   # leave by the flow's on_failure

Pure models (no I/O): ``ivr`` loads the file with positions and validates it
here, so a mistake reads ``routing.yaml:LINE:COL``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["AgentConfig", "QueueConfig", "RoutingConfig", "ServiceLevel", "Step", "agent_skills"]

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")]
Levels = dict[Name, Annotated[int, Field(ge=1, le=10)]]
Channel = Literal["voice", "chat", "email"]
_VOICE: Channel = "voice"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentConfig(_Strict):
    id: Name
    name: str | None = None
    endpoint: str = Field(pattern=r"^[A-Za-z0-9]+/[A-Za-z0-9_.@+\-]+$")
    skills: Levels = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=list)
    team: str | None = None
    max_contacts: dict[Channel, Annotated[int, Field(ge=1, le=20)]] = Field(
        default_factory=lambda: {_VOICE: 1},
        description="contacts the agent can hold at once, per channel (voice is always 1)",
    )
    log_in: bool = Field(False, description="log in when the engine starts (demos)")

    @field_validator("max_contacts")
    @classmethod
    def _one_call_at_a_time(cls, value: dict[Channel, int]) -> dict[Channel, int]:
        if value.get("voice", 1) != 1:
            raise ValueError(
                "voice must be 1: a phone takes one call at a time (chat and email may allow more)"
            )
        return {_VOICE: 1, **value}


def agent_skills(agent: AgentConfig) -> dict[str, int]:
    """An agent's skills; their team counts as the skill ``team.<name>`` at level 1."""
    skills = dict(agent.skills)
    if agent.team:
        skills[f"team.{agent.team}"] = 1
    return skills


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

    @model_validator(mode="after")
    def _does_something(self) -> Step:
        if (
            self.skills is None
            and self.any_skills is None
            and self.priority is None
            and not self.overflow
        ):
            raise ValueError("a step changes skills or priority, or overflows")
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
    steps: list[Step] = Field(default_factory=list)

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
