"""The channel's own bookkeeping on the hot path: which commands the metrics time, and
how it finds the task the sweeper cancels."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from ivr.agi import channel as agi_channel
from ivr.agi import timings
from ivr.agi.channel import Channel
from ivr.agi.protocol import EnvironmentParser


class Echo:
    """Answers every command at once with ``200 result=0``."""

    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    async def write(self, data: bytes) -> None:
        self.replies.put_nowait(b"200 result=0\n")

    async def read(self) -> bytes:
        return await self.replies.get()


VERBS = ("ANSWER", "STREAM FILE", "WAIT FOR DIGIT", "HANGUP")


async def test_every_command_of_a_short_flow_gets_sampled(monkeypatch: pytest.MonkeyPatch) -> None:
    """400 calls of the same four commands, one call at a time, one command in 8 timed:
    each of the four is timed in some calls (a count shared by the process would time
    only the fourth, every second call), about one call in 8 each."""
    own = timings.AgiTimings()
    monkeypatch.setattr(agi_channel, "TIMINGS", own)
    random.seed(11)
    env = EnvironmentParser().feed(b"agi_network: yes\nagi_uniqueid: 1\n\n")
    assert env is not None
    for _ in range(400):
        ch = Channel(env, Echo(), command_timeout=1)
        for verb in VERBS:
            await ch.command(verb)
    counts = Counter({verb: own.count(verb) for verb in VERBS})
    assert all(20 <= counts[verb] <= 90 for verb in VERBS), counts
    assert own.total() == sum(counts.values())


async def test_sample_one_times_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    own = timings.AgiTimings()
    monkeypatch.setattr(agi_channel, "TIMINGS", own)
    monkeypatch.setattr(timings, "SAMPLE", 1)
    env = EnvironmentParser().feed(b"agi_network: yes\nagi_uniqueid: 1\n\n")
    assert env is not None
    ch = Channel(env, Echo(), command_timeout=1)
    for verb in VERBS:
        await ch.command(verb)
    assert {verb: own.count(verb) for verb in VERBS} == dict.fromkeys(VERBS, 1)


def test_the_running_task_is_read_from_the_live_mapping_only() -> None:
    """asyncio's C mapping of loop to running task is used when asyncio.tasks exposes that
    very object (CPython 3.11-3.13); a dict nothing fills (3.14 keeps the task per
    thread) falls back to asyncio.current_task, so the sweeper still finds the task."""
    live: dict[object, object] = {}
    assert agi_channel._task_getter(live, live) == live.get
    assert agi_channel._task_getter({}, live) is asyncio.current_task
    assert agi_channel._task_getter(None, None) is asyncio.current_task


async def test_the_sweeper_s_task_is_the_one_awaiting_the_reply() -> None:
    loop = asyncio.get_running_loop()
    assert agi_channel._current_task(loop) is asyncio.current_task()
