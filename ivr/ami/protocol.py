"""The AMI wire format, sans-I/O: bytes in, :class:`Message` out, and back.

Asterisk writes ``Name: value`` lines ending in CRLF, a blank line ends a
message, and the very first line of a connection is the banner
``Asterisk Call Manager/<version>`` (transcript ``ami-dial-session.txt``).
Its reader (``get_input`` in main/manager.c) also accepts a bare LF, so the
parser does too. A header may repeat (``Variable``, ``Output``), so a message
keeps its headers as an ordered tuple. Values are UTF-8 when they decode as
such; otherwise (a CallerIDName set by a phone in a legacy charset) the line
is read as Latin-1, which never fails and keeps the original bytes
recoverable (``value.encode("latin-1")``).

Nothing placed in an action may hold CR, LF or NUL: one such character in a
caller-controlled value would start a second header or a second action.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ivr.ami.errors import AmiInjectionError

__all__ = ["AmiParser", "Message", "check_value", "encode_action", "encode_message"]

#: A line longer than this is cut (Asterisk's own events stay far below it).
MAX_LINE = 65536
_FORBIDDEN = frozenset("\r\n\0")

HeaderValue = str | Sequence[str]


@dataclass(frozen=True, slots=True)
class Message:
    """One AMI message (an event or a response): its headers, in order."""

    headers: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str = "") -> str:
        """The first value of header ``name`` (case-insensitive), or ``default``."""
        key = name.lower()
        for header, value in self.headers:
            if header.lower() == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of a repeated header (``Variable``, ``Output``), in order."""
        key = name.lower()
        return [value for header, value in self.headers if header.lower() == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(h.lower() == name.lower() for h, _ in self.headers)

    @property
    def event(self) -> str:
        return self.get("Event")

    @property
    def response(self) -> str:
        return self.get("Response")

    @property
    def action_id(self) -> str:
        return self.get("ActionID")

    def as_dict(self) -> dict[str, str]:
        """First value per header name (the names as Asterisk spelled them)."""
        out: dict[str, str] = {}
        for header, value in self.headers:
            out.setdefault(header, value)
        return out


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


class AmiParser:
    """Feed it bytes as they arrive; it returns the complete messages.

    ``banner`` holds the ``Asterisk Call Manager/x.y.z`` line once seen (a
    client-side parser); a server-side parser is made with ``banner=False``.
    """

    def __init__(self, *, expect_banner: bool = True) -> None:
        self._buffer = bytearray()
        self._headers: list[tuple[str, str]] = []
        self._expect_banner = expect_banner
        self.banner: str | None = None

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    del self._buffer[MAX_LINE:]
                return messages
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if self._expect_banner and self.banner is None and not self._headers:
                text = _decode(line)
                if "Call Manager/" in text and ":" not in text.partition("/")[0]:
                    self.banner = text
                    continue
            if not line:
                if self._headers:
                    messages.append(Message(tuple(self._headers)))
                    self._headers = []
                continue
            name, sep, value = _decode(line).partition(":")
            if not sep:
                # Not a header (old ``Response: Follows`` bodies): keep the text.
                self._headers.append(("", name))
                continue
            self._headers.append((name.strip(), value[1:] if value.startswith(" ") else value))

    @property
    def version(self) -> str:
        """The AMI version from the banner (``11.0.0`` for Asterisk 22), or ``""``."""
        return (self.banner or "").rpartition("/")[2].strip()


def check_value(header: str, value: str) -> str:
    """Return ``value`` if it is safe in one AMI header; raise :class:`AmiInjectionError`."""
    for char in header:
        if char in _FORBIDDEN or char == ":":
            raise AmiInjectionError(header, char, in_name=True)
    if not header:
        raise AmiInjectionError(header, "", in_name=True)
    for char in value:
        if char in _FORBIDDEN:
            raise AmiInjectionError(header, char)
    return value


def _lines(headers: Mapping[str, HeaderValue] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs: list[tuple[str, str]] = []
    for name, value in items:
        if isinstance(value, str):
            pairs.append((name, value))
        else:
            pairs.extend((name, item) for item in value)
    return pairs


def encode_message(headers: Mapping[str, HeaderValue] | Iterable[tuple[str, str]]) -> bytes:
    """``Name: value`` CRLF lines and the blank line, every value checked."""
    out = bytearray()
    for name, value in _lines(headers):
        check_value(name, value)
        out += f"{name}: {value}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def encode_action(
    action: str,
    headers: Mapping[str, HeaderValue] | Iterable[tuple[str, str]] = (),
    *,
    action_id: str | None = None,
) -> bytes:
    """An action: ``Action`` first, then ``ActionID``, then the headers in order.

    A sequence value repeats the header (``Variable: A=1`` ``Variable: B=2``).
    """
    pairs: list[tuple[str, str]] = [("Action", action)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    pairs.extend(_lines(headers))
    return encode_message(pairs)
