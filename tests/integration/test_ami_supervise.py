"""A supervisor switching modes on one agent's call (listen, whisper, barge) ends up with
one spy on it, not one per request; another supervisor's spy is left alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from ivr.ami import AmiClient, AmiConfig, ChanSpyStop
from ivr.auth import Principal
from ivr.centre.supervise import Supervisors
from ivr.emulator.ami import EmuChannel, Pbx
from ivr.testing import AsteriskEmulator
from routing.memory import Agent
from routing.redis import RedisRouter

LEE = Principal("lee", "supervisor")


@dataclass
class Floor:
    pbx: Pbx
    ami: AmiClient
    router: RedisRouter
    supervisors: Supervisors
    call: EmuChannel  # the agent's leg, bridged with a caller


@pytest.fixture
async def floor(redis_url: str) -> AsyncIterator[Floor]:
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    await router.add_agents([Agent("ann", "PJSIP/1001", {"sales": 5})])
    emulator = AsteriskEmulator()
    server = await emulator.start_ami()
    pbx = emulator.pbx
    for endpoint in ("PJSIP/1001", "PJSIP/2001", "PJSIP/2002"):
        pbx.add_endpoint(endpoint)
    caller = pbx.new_channel("PJSIP/caller-00000001", state=6, cid_num="5551234")
    agent = pbx.endpoint_channel("PJSIP/1001", state=6)
    pbx.bridge(agent, caller)
    ami = AmiClient(
        AmiConfig(port=server.port, username="ivr", secret="ivr-secret", ping_interval=0)
    )
    await ami.connect()
    try:
        yield Floor(pbx, ami, router, Supervisors(router, ami), agent)
    finally:
        await ami.close()
        await emulator.close()
        await router.close()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.02)


async def test_switching_mode_replaces_the_spy(floor: Floor) -> None:
    """listen → barge → whisper from PJSIP/2001: after each, exactly one spy of 2001 runs on
    the call, in the mode asked last; the earlier one was hung up (ChanSpyStop)."""
    pbx, call = floor.pbx, floor.call
    async with floor.ami.events("ChanSpyStop") as stops:
        first = await floor.supervisors.spy(LEE, "ann", "listen", "PJSIP/2001")
        assert first.answered and first.replaced == ()
        (listening,) = pbx.active_spies(call.name)
        assert listening.options == "qEu"

        barge = await floor.supervisors.spy(LEE, "ann", "barge", "PJSIP/2001")
        assert barge.replaced == (listening.spyer,)
        stop = await stops.get(timeout=2)
        assert isinstance(stop, ChanSpyStop) and stop.spyer.channel == listening.spyer

        async def one_spy() -> bool:
            return len(pbx.active_spies(call.name)) == 1

        await until(one_spy)
        (barging,) = pbx.active_spies(call.name)
        assert barging.options == "qEuB" and barging.spyer != listening.spyer
        assert listening.spyer not in pbx.channels

        whisper = await floor.supervisors.spy(LEE, "ann", "whisper", "PJSIP/2001")
        assert whisper.replaced == (barging.spyer,)
        await stops.get(timeout=2)
        await until(one_spy)
        (whispering,) = pbx.active_spies(call.name)
        assert whispering.options == "qEuw" and whispering.target == call.uniqueid
    audit = await floor.router.audit_log()
    assert [(a["action"], a.get("replaced", "")) for a in audit] == [
        ("supervise.listen", ""),
        ("supervise.barge", listening.spyer),
        ("supervise.whisper", barging.spyer),
    ]
    assert len(pbx.spies) == 3  # three ChanSpys were run, one at a time


async def test_another_supervisor_s_spy_is_kept(floor: Floor) -> None:
    """Two supervisors may listen to one call: a mode switch by one leaves the other."""
    pbx, call = floor.pbx, floor.call
    await floor.supervisors.spy(LEE, "ann", "listen", "PJSIP/2001")
    other = await floor.supervisors.spy(LEE, "ann", "listen", "PJSIP/2002")
    assert other.replaced == ()
    switched = await floor.supervisors.spy(LEE, "ann", "barge", "PJSIP/2001")
    assert len(switched.replaced) == 1 and switched.replaced[0].startswith("PJSIP/2001-")

    async def two_spies() -> bool:
        return len(pbx.active_spies(call.name)) == 2

    await until(two_spies)
    modes = sorted((s.spyer.rpartition("-")[0], s.options) for s in pbx.active_spies(call.name))
    assert modes == [("PJSIP/2001", "qEuB"), ("PJSIP/2002", "qEu")]
