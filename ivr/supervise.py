"""Supervisors listen to, whisper to, or barge into an agent's call.

The engine finds the agent's live channel (``CoreShowChannels``: the channel
of the agent's endpoint that is in a bridge) and runs AMI ``Originate`` to the
supervisor's phone with ``ChanSpy`` on exactly that channel: its uniqueid
with the ``u`` option (never a name prefix, which would match other calls),
``q`` (no beep), ``E`` (leave when the call ends), plus ``w`` (whisper: only
the agent hears the supervisor) or ``B`` (barge: both parties do).

Only a principal with the supervisor role may do it, and every use is
written to the audit stream before the supervisor's phone rings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import structlog

from ivr.ami import AmiClient, AmiError
from ivr.auth import Principal
from ivr.errors import IvrError
from routing.redis_router import RedisRouter

__all__ = ["MODES", "Supervision", "SupervisionError", "Supervisors"]

log = structlog.get_logger("ivr.supervise")

Mode = Literal["listen", "whisper", "barge"]
MODES: tuple[Mode, ...] = ("listen", "whisper", "barge")
#: A supervisor's own phone: a device, never a Local channel, a dialplan context
#: or a trunk ('@'), so no supervision can be sent to an outside number.
_ENDPOINT = re.compile(r"^(?:PJSIP|SIP|IAX2|DAHDI)/[A-Za-z0-9_.+\-]{1,64}$")


class SupervisionError(IvrError):
    """A supervision request that cannot be carried out; ``status`` suits HTTP."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Supervision:
    agent: str
    mode: str
    channel: str
    supervisor: str
    answered: bool


class Supervisors:
    """The supervision service the API and the CLI use."""

    def __init__(self, router: RedisRouter, ami: AmiClient, *, ring_timeout: float = 30) -> None:
        self.router = router
        self.ami = ami
        self.ring_timeout = ring_timeout

    async def agent_channel(self, endpoint: str) -> tuple[str, str] | None:
        """(channel name, uniqueid) of the endpoint's call in a bridge, or None."""
        prefix = endpoint + "-"
        bridged = None
        for item in await self.ami.core_show_channels():
            snapshot = item.channel
            if snapshot.channel.startswith(prefix) and item.bridge_id:
                bridged = (snapshot.channel, snapshot.uniqueid)
        return bridged

    async def spy(self, who: Principal, agent_id: str, mode: str, supervisor: str) -> Supervision:
        if not who.may("supervisor"):
            raise SupervisionError(
                f"{who.name} is {who.role}; supervising needs the supervisor role", 403
            )
        if mode not in MODES:
            raise SupervisionError(f"mode {mode!r} is unknown; allowed: {', '.join(MODES)}", 422)
        if not _ENDPOINT.match(supervisor):
            raise SupervisionError(
                f"{supervisor!r} is not an endpoint; write TECHNOLOGY/resource, e.g. PJSIP/2001",
                422,
            )
        agent = await self.router.agent(agent_id, skills=False)
        if agent is None:
            raise SupervisionError(f"no agent {agent_id!r}", 404)
        try:
            found = await self.agent_channel(agent["endpoint"])
        except AmiError as exc:
            raise SupervisionError(f"Asterisk cannot be asked: {exc}", 503) from exc
        if found is None:
            raise SupervisionError(
                f"agent {agent_id!r} is not on a call (state {agent.get('state', '?')})", 409
            )
        channel, uniqueid = found
        await self.router.audit(
            who.name, f"supervise.{mode}", agent=agent_id, channel=channel, supervisor=supervisor
        )
        log.info("supervise.start", by=who.name, agent=agent_id, mode=mode, channel=channel)
        try:
            response = await self.ami.spy(
                supervisor,
                uniqueid,
                mode,
                timeout=self.ring_timeout,
            )
        except AmiError as exc:
            raise SupervisionError(f"Asterisk refused the supervision: {exc}", 503) from exc
        return Supervision(agent_id, mode, channel, supervisor, response.success)
