"""What every browser test shares: Debian's Chromium and how it is started (Playwright's
own browser download is not reachable; the background-networking flags keep Chromium
from calling out of a closed network), where screenshots go, the two page sizes, and
the console served to it (:func:`served_in_chromium`)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "a long enough secret"
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: run ./dev setup (apt-get install chromium)")


@contextlib.asynccontextmanager
async def served_in_chromium(app: Any, *, lifespan: str = "auto") -> AsyncIterator[tuple[str, Any]]:
    """``app`` on uvicorn at a free loopback port, and a headless Chromium: yields the
    base URL and the browser; stops both after."""
    require_chromium()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, log_level="warning", lifespan=lifespan)
    )
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.02)
        host, port = sock.getsockname()
        SHOTS.mkdir(exist_ok=True)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                yield f"http://{host}:{port}", browser
            finally:
                await browser.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()
