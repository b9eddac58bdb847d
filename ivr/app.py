"""Composition root: the one place that wires FastAGI, flows, speech and routing.

Until the flow interpreter lands, the engine serves one built-in demo call
(``agi://engine/demo``) written against the ``Channel`` API.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal

import structlog

from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.config import Settings
from ivr.errors import PlaybackError

__all__ = ["build_server", "demo", "serve"]

log = structlog.get_logger("ivr.app")


async def demo(channel: Channel) -> None:
    """A short call: greet, ask for a 4-digit number, read it back, say goodbye."""
    await channel.answer()
    try:
        await channel.stream_file("demo-congrats", "0123456789#")
    except PlaybackError as exc:
        log.warning("demo.prompt_missing", error=str(exc))
    with channel.sensitive():
        entry = await channel.get_data("beep", 5000, 4)
    if entry.digits:
        await channel.say_digits(entry.digits)
    await channel.stream_file("vm-goodbye")
    await channel.hangup()


def build_server(settings: Settings) -> FastAgiServer:
    server = FastAgiServer(
        host=settings.agi_host,
        port=settings.agi_port,
        max_calls=settings.max_calls,
        command_timeout=settings.command_timeout,
        env_timeout=settings.env_timeout,
        hangup_grace=settings.hangup_grace,
    )
    server.route("demo", demo)
    return server


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain: no new calls, running calls finish."""
    server = build_server(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    log.info("engine.ready", agi=f"{settings.agi_host}:{server.port}")
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("engine.stopping", drain_timeout=settings.drain_timeout, calls=server.active_calls)
    await server.drain(settings.drain_timeout)
    log.info("engine.stopped", **dataclasses.asdict(server.stats))
