"""What the interpreter needs from the world, as small protocols, with the adapters
that exist today.

The interpreter sees only these ports. ``SpeechPrompts`` renders text with
espeak-ng (``speech.tts``): fixed text cached, text made from a call's data
per call (``speech.private``); ``PooledHttp`` makes real HTTP requests on the
engine's one pooled httpx client; the admin's announcement switches live in
:mod:`ivr.flows.announcements` (re-exported here). Routing arrives through the
:class:`Router` port (``routing``).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from ivr.flows.announcements import Announcements, FileAnnouncements, MemoryAnnouncements
from speech.private import CallFolder, PrivateFolders
from speech.tts import Synthesizer

__all__ = [
    "MAX_REPLY_BYTES",
    "Announcements",
    "FileAnnouncements",
    "HttpClient",
    "HttpReply",
    "MemoryAnnouncements",
    "PooledHttp",
    "Prompts",
    "ReplyTooLargeError",
    "SpeechPrompts",
]


class Prompts(Protocol):
    async def sound_for(self, text: str, language: str, voice: str | None) -> str:
        """The Asterisk sound name (a path without extension) that says fixed ``text``
        (cached: the same text is rendered once)."""

    def call_folder(self) -> CallFolder:
        """A new folder for one call's own prompts; the call removes it when it ends."""

    async def private_sound(
        self, text: str, language: str, voice: str | None, folder: CallFolder
    ) -> str:
        """The sound name of ``text`` made from the call's data: rendered now into a
        file with a random name in ``folder``, never cached."""


#: Under the prompts folder: the per-call prompts (``speech.private``).
PER_CALL = "per-call"


class SpeechPrompts:
    """Prompts rendered offline by espeak-ng into a folder Asterisk can read."""

    def __init__(self, folder: Path, synthesizer: Synthesizer | None = None) -> None:
        self.folder = Path(folder)
        self.synthesizer = synthesizer or Synthesizer(self.folder)
        self.private = PrivateFolders(self.folder / PER_CALL)

    async def sound_for(self, text: str, language: str, voice: str | None) -> str:
        path = await self.synthesizer.render(text, language, voice)
        return str(path.resolve().with_suffix(""))  # Asterisk resolves relative names itself

    def call_folder(self) -> CallFolder:
        return self.private.call_folder()

    async def private_sound(
        self, text: str, language: str, voice: str | None, folder: CallFolder
    ) -> str:
        path = await self.synthesizer.render_private(text, language, voice, folder.new_file())
        return str(path.resolve().with_suffix(""))


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: Any


class HttpClient(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any,
        timeout: float,
    ) -> HttpReply:
        """Raises ``OSError`` or ``TimeoutError`` when the service cannot be reached."""


#: The largest reply body an ``http`` node takes: JSON for a few variables, with room.
MAX_REPLY_BYTES = 1_000_000


class ReplyTooLargeError(OSError):
    """A reply body past the limit: refused while it streams, the node takes on_error."""


class PooledHttp:
    """HTTP with one pooled ``httpx.AsyncClient`` for the whole engine; JSON in and out.

    One deadline covers the whole request (a free connection from the pool,
    connecting, sending, the reply and all of its body): a server that trickles
    its reply cannot hold a call longer than the node's ``timeout``. Nothing runs
    in a thread, so cancelling the call (a hang-up, the engine stopping) ends the
    request and closes its connection at once. A body past ``limit`` bytes is
    refused as it streams (or from its Content-Length), never read whole.
    Redirects are not followed: a redirect could lead anywhere (an internal host),
    so a 3xx is an error like a 4xx. The client is made on the first request and
    closed with the engine (:meth:`aclose`).
    """

    def __init__(self, *, limit: int = MAX_REPLY_BYTES, max_connections: int = 100) -> None:
        self.limit = limit
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections // 4
        )
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                limits=self._limits,
                # Only what _decoded unpacks within the limit (never br or zstd).
                headers={"Accept-Encoding": "gzip, deflate"},
            )
        return self._client

    async def aclose(self) -> None:
        """Close the pooled connections (the engine is stopping)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any,
        timeout: float,
    ) -> HttpReply:
        if not url.startswith(("http://", "https://")):
            raise OSError(f"only http and https URLs are allowed, not {url[:8]!r}...")
        for name, value in headers.items():
            if any(c in name + value for c in "\r\n\x00"):
                raise OSError(f"header {name!r} holds a line break; refused")
        # Whitespace around a field value is not part of it (RFC 9110 §5.5), and h11
        # refuses to send it: "Bearer ${env:TOKEN}" with no token set is "Bearer".
        sent = {name: value.strip(" \t") for name, value in headers.items()}
        try:
            # The deadline of the whole request; httpx's own (per connect, per read)
            # are the same length, so only a stalled pool or a trickle reaches this one.
            async with asyncio.timeout(timeout):
                return await self._exchange(method, url, sent, body, timeout)
        except (TimeoutError, httpx.TimeoutException):
            raise TimeoutError(f"no complete reply within {timeout:g} s") from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError) as exc:
            # The message names the kind of failure, never the URL (it may hold a
            # caller's digits: the node logs the flow's template instead).
            raise OSError(f"{type(exc).__name__}: {_short(exc)}") from None

    async def _exchange(
        self, method: str, url: str, headers: dict[str, str], body: Any, timeout: float
    ) -> HttpReply:
        extra: dict[str, Any] = {} if body is None else {"json": body}
        stream = self.client.stream(method, url, headers=headers, timeout=timeout, **extra)
        async with stream as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.limit:
                raise ReplyTooLargeError(
                    f"the reply is {int(declared):,} bytes, more than the {self.limit:,} "
                    "bytes allowed"
                )
            raw = bytearray()
            async for chunk in response.aiter_raw():
                raw += chunk
                if len(raw) > self.limit:
                    raise ReplyTooLargeError(
                        f"the reply is more than the {self.limit:,} bytes allowed"
                    )
            status = response.status_code
            encoding = response.headers.get("content-encoding", "")
        if encoding and encoding != "identity":
            raw = bytearray(_decoded(bytes(raw), encoding, self.limit))
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return HttpReply(status, parsed)


def _decoded(raw: bytes, encoding: str, limit: int) -> bytes:
    """A compressed body, decompressed no further than ``limit`` (a zip bomb is refused)."""
    if encoding not in ("gzip", "deflate"):
        raise OSError(f"the reply is encoded with {encoding[:20]!r}; send it plain or gzip")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    decompressor = zlib.decompressobj(wbits)
    try:
        out = decompressor.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise OSError(f"the {encoding} reply is corrupt: {exc}") from None
    if len(out) > limit:
        raise ReplyTooLargeError(f"the reply is more than the {limit:,} bytes allowed, unpacked")
    return out


def _short(error: BaseException) -> str:
    return (str(error) or "no detail")[:200]
