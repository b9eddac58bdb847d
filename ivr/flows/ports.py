"""What the interpreter needs from the world, as small protocols, with the adapters
that exist today.

The interpreter sees only these ports. ``SpeechPrompts`` renders text with
espeak-ng (``speech.tts``); ``UrllibHttp`` makes real HTTP requests in a
worker thread; ``MemoryAnnouncements`` holds the admin's switches in the
process. Routing arrives through the :class:`Router` port (``routing``).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from speech.tts import Synthesizer

__all__ = [
    "Announcements",
    "FileAnnouncements",
    "HttpClient",
    "HttpReply",
    "MemoryAnnouncements",
    "Prompts",
    "SpeechPrompts",
    "UrllibHttp",
]


class Prompts(Protocol):
    async def sound_for(self, text: str, language: str, voice: str | None) -> str:
        """The Asterisk sound name (a path without extension) that says ``text``."""


class SpeechPrompts:
    """Prompts rendered offline by espeak-ng into a folder Asterisk can read."""

    def __init__(self, folder: Path, synthesizer: Synthesizer | None = None) -> None:
        self.folder = Path(folder)
        self.synthesizer = synthesizer or Synthesizer(self.folder)

    async def sound_for(self, text: str, language: str, voice: str | None) -> str:
        path = await self.synthesizer.render(text, language, voice)
        return str(path.resolve().with_suffix(""))  # Asterisk resolves relative names itself


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


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead anywhere (ftp://, an internal host): it is an error."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class UrllibHttp:
    """HTTP with the standard library, run in a worker thread; JSON in and out."""

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any,
        timeout: float,
    ) -> HttpReply:
        return await asyncio.to_thread(self._request, method, url, dict(headers), body, timeout)

    @staticmethod
    def _request(
        method: str, url: str, headers: dict[str, str], body: Any, timeout: float
    ) -> HttpReply:
        if not url.startswith(("http://", "https://")):
            raise OSError(f"only http and https URLs are allowed, not {url[:30]!r}")
        for name, value in headers.items():
            if any(c in name + value for c in "\r\n\x00"):
                raise OSError(f"header {name!r} holds a line break; refused")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - scheme checked above
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                raw = response.read(1_000_000)
                status = int(response.status)
        except urllib.error.HTTPError as exc:  # 4xx, 5xx, and 3xx: redirects are not followed
            raw, status = exc.read(1_000_000), exc.code
        except (http.client.HTTPException, ValueError) as exc:  # a reply that is not HTTP
            raise OSError(f"bad reply from {url[:60]}: {exc!r}") from None
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return HttpReply(status, parsed)


class Announcements(Protocol):
    async def active(self, name: str) -> bool:
        """Whether the admin switched announcement ``name`` on."""


class MemoryAnnouncements:
    """Announcement switches kept in the process (set by the admin API or tests)."""

    def __init__(self, active: Mapping[str, bool] | None = None) -> None:
        self._active = dict(active or {})

    async def active(self, name: str) -> bool:
        return self._active.get(name, False)

    def switch(self, name: str, on: bool) -> None:
        self._active[name] = on


class FileAnnouncements:
    """Announcement switches in a small JSON file the admin changes with
    ``ivr announcement on|off NAME``; read again whenever the file changes.

    One file on disk is enough for one engine host; the routing issue moves
    the switches into Redis for several engines.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._active: dict[str, bool] = {}

    def switches(self) -> dict[str, bool]:
        """Every switch, read again when the file changed."""
        try:
            stat = self.path.stat()
        except OSError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return self._active  # a half-written file: keep what we knew
            pairs = data.items() if isinstance(data, dict) else []
            self._active = {str(k): bool(v) for k, v in pairs}
            self._stamp = stamp
        return self._active

    async def active(self, name: str) -> bool:
        return self.switches().get(name, False)

    def switch(self, name: str, on: bool) -> None:
        switches = dict(self.switches())
        switches[name] = on
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".part")
        partial.write_text(json.dumps(switches, indent=2, sort_keys=True), encoding="utf-8")
        partial.replace(self.path)
