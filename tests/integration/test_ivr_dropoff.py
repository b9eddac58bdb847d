"""Drop-off per flow node, end to end: a caller who hangs up in a menu is recorded in
the ``ivr_ended`` note at that node, and the KPIs count a drop-off there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr.flows.interpreter import Engine
from ivr.flows.ports import SpeechPrompts
from ivr.testing import AsteriskEmulator, Hangup, Keys
from routing.kpis import summarize
from routing.redis import RedisRouter
from tests.integration.helpers.engine_rig import flows_in, serving

FLOW = """\
id: front
entry: welcome
nodes:
  welcome: {type: play, say: Welcome., next: menu}
  menu:
    type: menu
    prompt: For opening hours, press 1.
    options:
      - {digit: 1, goto: hours}
    on_failure: bye
  hours: {type: hangup, say: We are open from nine to six.}
  bye: {type: hangup, say: Goodbye.}
"""


@pytest.fixture
async def rig(
    redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[AsteriskEmulator, RedisRouter]]:
    registry = flows_in(tmp_path / "flows", {"front": FLOW})
    router = RedisRouter.connect(redis_url)
    await router.redis.flushall()
    await router.start()
    engine = Engine(flows=registry.get, prompts=SpeechPrompts(tmp_path / "prompts"), router=router)
    server, _ = await serving(registry, engine)
    emulator = AsteriskEmulator(port=server.port, sound_dirs=[tmp_path / "prompts"])
    try:
        yield emulator, router
    finally:
        await server.drain(1)
        await emulator.close()
        await router.close()


async def test_a_caller_who_hangs_up_in_the_menu_drops_off_there(
    rig: tuple[AsteriskEmulator, RedisRouter],
) -> None:
    emulator, router = rig
    calls = (
        emulator.call("front", actions=[Hangup(on="STREAM FILE", nth=2)]),  # in the menu
        emulator.call("front", actions=[Keys("1")]),  # heard the hours: contained, no drop
    )
    for call in calls:
        await asyncio.wait_for(call, 60)
    ended = [f for _, f in await router.events(time.time() - 60) if f["event"] == "ivr_ended"]
    assert sorted((f["node"], f["ended"], f["contained"]) for f in ended) == [
        ("hours", "hangup", "1"),
        ("menu", "caller_hangup", "1"),
    ]
    flow = summarize(await router.events(time.time() - 60), now=time.time()).flows["front"]
    assert (flow.calls, flow.contained, flow.dropped, flow.nodes) == (2, 2, 1, {"menu": 1})
