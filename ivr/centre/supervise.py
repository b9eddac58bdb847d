"""Supervisors listen to, whisper to, or barge into an agent's call.

The engine finds the agent's live channel (``CoreShowChannels``: the channel
of the agent's endpoint that is in a bridge) and runs AMI ``Originate`` to the
supervisor's phone with ``ChanSpy`` on exactly that channel: its uniqueid
with the ``u`` option (never a name prefix, which would match other calls),
``q`` (no beep), ``E`` (leave when the call ends), plus ``w`` (whisper: only
the agent hears the supervisor) or ``B`` (barge: both parties do).

A supervisor who changes mode on the same call (listen, then whisper, then
barge) gets one spy, not two: the spies this supervisor's phone already runs on
that call (``CoreShowChannels`` lists them with application ``ChanSpy`` and
the call's uniqueid in their data) are hung up (AMI ``Hangup``, class
``call``) before the new one is placed. ChanSpy's ``d`` option was the other
way, and is not used: it lets the *supervisor's phone* switch modes with keys
4, 5 and 6 (app_chanspy.c), which AMI cannot press for it (``PlayDTMF`` sends
the tone towards the phone, ChanSpy reads it from the phone), so the API and
the command line could not change the mode, and a mode changed by keys would
never reach the audit. Only a principal with the supervisor role may
supervise, and every use is written to the audit stream (with the spy it
replaced) before the supervisor's phone rings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import structlog

from ivr.ami import AmiActionError, AmiClient, AmiError, CoreShowChannel
from ivr.auth import Principal
from ivr.errors import IvrError
from routing.redis import RedisRouter

__all__ = ["MODES", "Supervision", "SupervisionError", "Supervisors"]

log = structlog.get_logger("ivr.centre.supervise")

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
    #: The earlier spies of this supervisor on this call that were hung up.
    replaced: tuple[str, ...] = ()


class Supervisors:
    """The supervision service the API and the CLI use."""

    def __init__(self, router: RedisRouter, ami: AmiClient, *, ring_timeout: float = 30) -> None:
        self.router = router
        self.ami = ami
        self.ring_timeout = ring_timeout

    async def cancel_ring(self, endpoint: str) -> str | None:
        """Hang up ``endpoint``'s ringing (unanswered) leg, if it has one; its name.

        A forced logout takes the caller back from a ringing agent: Dial in the
        caller's engine then returns and the call waits for the next agent.
        """
        try:
            channels = await self.ami.core_show_channels()
            ringing = _ringing(channels, endpoint)
            if ringing is not None:
                await self.ami.hangup(ringing)
        except AmiError as exc:
            log.error("supervise.cancel_ring_failed", endpoint=endpoint, error=str(exc))  # noqa: TRY400
            return None
        return ringing

    async def agent_channel(self, endpoint: str) -> tuple[str, str] | None:
        """(channel name, uniqueid) of the endpoint's call in a bridge, or None."""
        return _bridged(await self.ami.core_show_channels(), endpoint)

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
            channels = await self.ami.core_show_channels()
        except AmiError as exc:
            raise SupervisionError(f"Asterisk cannot be asked: {exc}", 503) from exc
        found = _bridged(channels, agent["endpoint"])
        if found is None:
            raise SupervisionError(
                f"agent {agent_id!r} is not on a call (state {agent.get('state', '?')})", 409
            )
        channel, uniqueid = found
        earlier = _spies(channels, supervisor, channel, uniqueid)
        fields = {"agent": agent_id, "channel": channel, "supervisor": supervisor}
        if earlier:
            fields["replaced"] = ",".join(earlier)
        await self.router.audit(who.name, f"supervise.{mode}", **fields)
        log.info("supervise.start", by=who.name, mode=mode, **fields)
        for spy in earlier:  # one spy per supervisor and call: the new mode replaces the old
            try:
                await self.ami.hangup(spy)
            except AmiActionError as exc:
                log.info("supervise.spy_gone", spy=spy, error=exc.reason)  # ended meanwhile
            except AmiError as exc:
                raise SupervisionError(
                    f"Asterisk could not end the earlier spy {spy}: {exc}", 503
                ) from exc
        try:
            response = await self.ami.spy(
                supervisor,
                uniqueid,
                mode,
                timeout=self.ring_timeout,
            )
        except AmiError as exc:
            raise SupervisionError(f"Asterisk refused the supervision: {exc}", 503) from exc
        return Supervision(agent_id, mode, channel, supervisor, response.success, tuple(earlier))


#: ast_channel_state: a leg that is up has answered.
_UP = 6


def _ringing(channels: list[CoreShowChannel], endpoint: str) -> str | None:
    """The name of ``endpoint``'s leg that has not answered yet, or None."""
    prefix = endpoint + "-"
    for item in channels:
        snapshot = item.channel
        if snapshot.channel.startswith(prefix) and snapshot.state != _UP and not item.bridge_id:
            return snapshot.channel
    return None


def _bridged(channels: list[CoreShowChannel], endpoint: str) -> tuple[str, str] | None:
    """(channel name, uniqueid) of ``endpoint``'s channel in a bridge, or None."""
    prefix = endpoint + "-"
    bridged = None
    for item in channels:
        snapshot = item.channel
        if snapshot.channel.startswith(prefix) and item.bridge_id:
            bridged = (snapshot.channel, snapshot.uniqueid)
    return bridged


def _spies(
    channels: list[CoreShowChannel], supervisor: str, channel: str, uniqueid: str
) -> list[str]:
    """The channels of ``supervisor``'s phone running ChanSpy on that call (its data starts
    with the uniqueid the engine gives, or the channel name)."""
    return [
        item.channel.channel
        for item in channels
        if item.application.lower() == "chanspy"
        and item.channel.endpoint == supervisor
        and item.application_data.partition(",")[0] in (uniqueid, channel)
    ]
