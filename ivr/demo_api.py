"""The demo account service the billing flow looks up (``GET /accounts/<number>``).

A few fixed accounts over plain HTTP on 127.0.0.1, so that ``./dev run``
shows a real HTTP lookup without any other service. Not for production.
"""

from __future__ import annotations

import asyncio
import json
import re

__all__ = ["ACCOUNTS", "start_demo_api"]

ACCOUNTS = {
    "12345": {"name": "Alice", "balance": "42.50"},
    "7788": {"name": "Bob", "balance": "0.00"},
    "5550": {"name": "김민지", "balance": "1200.00"},
}
_REQUEST = re.compile(rb"^GET /accounts/([0-9]{1,20}) HTTP/1\.[01]\r?$")


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        match = _REQUEST.match(head.split(b"\n", 1)[0])
        account = ACCOUNTS.get(match.group(1).decode()) if match else None
        status = "200 OK" if account else "404 Not Found"
        body = json.dumps(account or {"error": "no such account"}).encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        pass
    finally:
        writer.close()


async def start_demo_api(port: int = 8089) -> asyncio.Server:
    return await asyncio.start_server(_serve, "127.0.0.1", port)
