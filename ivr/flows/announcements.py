"""Announcement switches: an outage notice an admin turns on, for some flows, until a time.

An ``announcement`` node plays only while its switch is on. A switch
(:class:`Notice`) can say more than on or off: words an admin typed (spoken by
the prompts synthesizer and cached as any fixed text: an admin's words are not
caller data) or a recording under the prompts folder, said instead of the
node's own ``say`` / ``file``; the flows whose calls hear it (empty: every flow
with the node); and when it stops by itself (``until``, seconds since the
epoch: past it the switch reads off, with nothing to run at that moment).

The switches file (``var/announcements.json``, written by ``ivr announcement``
and the console) keeps the first form for a bare switch, ``{"outage": true}``,
and holds an object for the rest::

    {"outage": true,
     "storm": {"on": true, "text": "Storms delay our engineers.", "language": "en",
               "flows": ["main"], "until": 1767229200.0, "by": "ada", "at": 1767200000.0}}
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

__all__ = ["MAX_NOTICE_TEXT", "Announcements", "FileAnnouncements", "MemoryAnnouncements", "Notice"]

#: The longest typed notice: a minute or so of speech.
MAX_NOTICE_TEXT = 1000


@dataclass(frozen=True, slots=True)
class Notice:
    """One switch as its admin set it."""

    on: bool = False
    #: Words said instead of the node's own (in ``language``; empty: the call's).
    text: str = ""
    language: str = ""
    #: A sound said instead of the node's own: a path without its extension, as
    #: Asterisk plays it (a WAV under the prompts folder).
    recording: str = ""
    #: The flows whose calls hear it (the flow a call entered, or the subflow that
    #: holds the node); empty: every flow.
    flows: tuple[str, ...] = ()
    #: When it switches itself off (seconds since the epoch); None: never.
    until: float | None = None
    #: Who switched it last, and when.
    by: str = ""
    at: float | None = None

    def expired(self, now: float) -> bool:
        return self.until is not None and now >= self.until

    def live(self, now: float) -> bool:
        """On, and not past its expiry."""
        return self.on and not self.expired(now)

    def covers(self, flows: Collection[str]) -> bool:
        """True when a call in ``flows`` hears it."""
        return not self.flows or any(flow in self.flows for flow in flows)

    def to_json(self) -> bool | dict[str, Any]:
        """The file's form: a bare bool when nothing but on/off is set."""
        if self == Notice(self.on):
            return self.on
        out: dict[str, Any] = {"on": self.on}
        for key in ("text", "language", "recording", "by"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.flows:
            out["flows"] = list(self.flows)
        if self.until is not None:
            out["until"] = self.until
        if self.at is not None:
            out["at"] = self.at
        return out

    @classmethod
    def from_json(cls, raw: object) -> Notice:
        """A switch from the file; what cannot be read is left out (an unreadable
        object is off: a notice nobody can read back is never played by mistake)."""
        if isinstance(raw, bool):
            return cls(raw)
        if not isinstance(raw, Mapping):
            return cls(False)

        def text(key: str, limit: int = MAX_NOTICE_TEXT) -> str:
            value = raw.get(key)
            return value[:limit] if isinstance(value, str) else ""

        def moment(key: str) -> float | None:
            value = raw.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return float(value) if math.isfinite(value) else None

        flows = raw.get("flows")
        return cls(
            on=raw.get("on") is True,
            text=text("text"),
            language=text("language", 20),
            recording=text("recording", 500),
            flows=tuple(f for f in flows if isinstance(f, str)) if isinstance(flows, list) else (),
            until=moment("until"),
            by=text("by", 64),
            at=moment("at"),
        )


class Announcements(Protocol):
    async def active(self, name: str) -> bool:
        """Whether the admin switched announcement ``name`` on (and it has not expired)."""

    async def notice(self, name: str, flows: Collection[str]) -> Notice | None:
        """The live notice ``name`` a call in ``flows`` hears, or None."""


class MemoryAnnouncements:
    """Announcement switches kept in the process (flow tests, the harnesses)."""

    def __init__(
        self,
        active: Mapping[str, bool | Notice] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self._notices = {
            name: value if isinstance(value, Notice) else Notice(value)
            for name, value in (active or {}).items()
        }

    async def active(self, name: str) -> bool:
        return self._notices.get(name, Notice()).live(self.clock())

    async def notice(self, name: str, flows: Collection[str]) -> Notice | None:
        found = self._notices.get(name)
        if found is None or not found.live(self.clock()) or not found.covers(flows):
            return None
        return found

    def switch(self, name: str, on: bool) -> None:
        self._notices[name] = replace(self._notices.get(name, Notice()), on=on)

    def put(self, name: str, notice: Notice) -> None:
        self._notices[name] = notice


class FileAnnouncements:
    """Announcement switches in a small JSON file the admin changes with
    ``ivr announcement on|off NAME`` or the console; read again whenever the file
    changes (a running engine sees a change on its next call).

    One file on disk is enough for one engine host; the routing issue moves
    the switches into Redis for several engines.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._stamp: tuple[int, int] | None = None
        self._notices: dict[str, Notice] = {}

    def notices(self) -> dict[str, Notice]:
        """Every switch as written (expired ones too), read again when the file changed."""
        try:
            stat = self.path.stat()
        except OSError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return self._notices  # a half-written file: keep what we knew
            pairs = data.items() if isinstance(data, dict) else []
            self._notices = {str(k): Notice.from_json(v) for k, v in pairs}
            self._stamp = stamp
        return self._notices

    def switches(self) -> dict[str, bool]:
        """Every switch: on (and not expired) or off."""
        now = self.clock()
        return {name: notice.live(now) for name, notice in self.notices().items()}

    async def active(self, name: str) -> bool:
        return self.switches().get(name, False)

    async def notice(self, name: str, flows: Collection[str]) -> Notice | None:
        found = self.notices().get(name)
        if found is None or not found.live(self.clock()) or not found.covers(flows):
            return None
        return found

    def switch(self, name: str, on: bool, *, by: str = "") -> Notice:
        """On or off, keeping the notice's words, recording and flows; switching on
        clears an expiry (on from the command line means on until switched off)."""
        old = self.notices().get(name, Notice())
        notice = replace(old, on=on, until=None if on else old.until)
        if by:
            notice = replace(notice, by=by, at=self.clock())
        self.put(name, notice)
        return notice

    def put(self, name: str, notice: Notice) -> None:
        """Write switch ``name`` as ``notice`` (atomically: a reader sees the old file or
        the new one)."""
        data = {k: v.to_json() for k, v in self.notices().items()}
        data[name] = notice.to_json()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            partial.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
            os.replace(partial, self.path)
        finally:
            partial.unlink(missing_ok=True)
        self._stamp = None  # read back at the next look
