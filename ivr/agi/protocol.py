"""The FastAGI wire format, sans I/O.

This module turns bytes from Asterisk into typed records (the environment
block, replies, the ``HANGUP`` notice) and commands into bytes. It never
touches a socket or the event loop: servers feed it what they read and write
what it returns. The rules follow ``res/res_agi.c`` of Asterisk 22 and the
captured sessions in ``shared/asterisk/transcripts/agi-sessions.json``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, NamedTuple
from urllib.parse import parse_qsl, unquote

from ivr.errors import AgiProtocolError, UnsafeArgumentError

__all__ = [
    "HANGUP_NOTICE",
    "MAX_COMMAND_BYTES",
    "Environment",
    "EnvironmentParser",
    "Event",
    "HangupNotice",
    "Reply",
    "ReplyParser",
    "decode_text",
    "encode_command",
    "encode_environment",
    "escape_app_arg",
    "quote",
    "split_command_line",
    "token",
]

#: Asterisk reads a command with fgets into an AGI_BUF_LEN buffer (2048 bytes
#: before 22.6 / 21.11 / 20.16, 8192 since; PROTOCOL.md §8.4) and runs whatever
#: does not fit as a *further* command, so a longer line would be an injection.
#: The whole line, LF included, must fit in 2047: safe on every version.
MAX_COMMAND_BYTES: Final = 2047
#: Generous caps that keep a hostile peer from growing our buffers forever.
MAX_ENVIRONMENT_BYTES: Final = 256 * 1024
MAX_REPLY_LINE_BYTES: Final = 256 * 1024
MAX_ARGS: Final = 128

_FORBIDDEN = ("\r", "\n", "\x00")
_VERB = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*")
#: An argument that can go bare: no space, quote, backslash or control character.
_BARE = re.compile(r'[^\s"\\\x00-\x1f\x7f]+')
_ENV_KEY = re.compile(r"agi_[a-z0-9_]+")
_ARG_KEY = re.compile(r"agi_arg_([0-9]+)")
_REPLY_LINE = re.compile(r"([0-9]{3})([ -])(.*)", re.DOTALL)
_RESULT = re.compile(r"result=(\S*)(.*)", re.DOTALL)
# Greedy data: ``GET VARIABLE`` values may hold ')', so the data runs to the
# last ')' that is followed only by ``key=value`` fields (PROTOCOL.md §2).
_TAIL = re.compile(r"(?: \((?P<data>.*)\))?(?P<fields>(?: [A-Za-z_]+=\S*)*)", re.DOTALL)
_FIELD = re.compile(r" ([A-Za-z_]+)=(\S*)")
_REPLY_200 = re.compile(r"200 result=(\S*)(?: \((.*)\))?((?: [A-Za-z_]+=\S*)*)", re.DOTALL)


def decode_text(raw: bytes) -> str:
    """Decode bytes Asterisk sent: UTF-8 when valid, else Latin-1 (never fails).

    Caller names from SIP trunks are not always UTF-8 (PROTOCOL.md §1).
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# --------------------------------------------------------------------------
# Environment block


class Environment(NamedTuple):
    """The ``agi_*`` block Asterisk sends when a call reaches the engine.

    Immutable, and a named tuple rather than a frozen dataclass, as
    :class:`Reply` is: one is made for every call, and a frozen dataclass's
    ``__init__`` alone cost 9,000 instructions (callgrind).
    """

    variables: Mapping[str, str]
    script: str
    query: Mapping[str, str]
    args: tuple[str, ...]

    def get(self, key: str, default: str = "") -> str:
        """Return ``agi_<key>`` (the prefix is optional), or ``default``."""
        name = key if key.startswith("agi_") else f"agi_{key}"
        return self.variables.get(name, default)

    @property
    def channel(self) -> str:
        return self.get("channel")

    @property
    def uniqueid(self) -> str:
        return self.get("uniqueid")

    @property
    def callerid(self) -> str:
        """The caller's number; ``unknown`` when Asterisk has none."""
        return self.get("callerid")

    @property
    def calleridname(self) -> str:
        return self.get("calleridname")

    @property
    def language(self) -> str:
        return self.get("language")

    @property
    def context(self) -> str:
        return self.get("context")

    @property
    def extension(self) -> str:
        return self.get("extension")

    @property
    def dnid(self) -> str:
        return self.get("dnid")


#: The query of a script that has none (shared: it cannot be changed).
_NO_QUERY: Final[Mapping[str, str]] = MappingProxyType({})


def _split_script(raw: str) -> tuple[str, Mapping[str, str]]:
    # agi_network_script holds the raw path and query, not URL-decoded
    # (transcript "700?lang=en&x=a b").
    if "?" not in raw and "%" not in raw:  # a flow's id, as the dialplan sends it
        return raw.strip("/"), _NO_QUERY
    path, _, query = raw.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True) if query else []
    return unquote(path).strip("/"), MappingProxyType(dict(pairs))


def _build_environment(variables: dict[str, str], args: bool) -> Environment:
    script, query = _split_script(variables.get("agi_network_script", ""))
    numbered: list[tuple[int, str]] = []
    for key, value in variables.items() if args else ():
        match = _ARG_KEY.fullmatch(key)
        if match:
            numbered.append((int(match.group(1)), value))
    numbered.sort()
    # The parser is done with the dict: it is handed over, not copied.
    return Environment(
        MappingProxyType(variables),
        script,
        query,
        tuple([value for _, value in numbered]) if numbered else (),
    )


#: The order in which res_agi.c setup_env() writes the block (Asterisk 22).
ENV_ORDER: Final = (
    "agi_network",
    "agi_network_script",
    "agi_request",
    "agi_channel",
    "agi_language",
    "agi_type",
    "agi_uniqueid",
    "agi_version",
    "agi_callerid",
    "agi_calleridname",
    "agi_callingpres",
    "agi_callingani2",
    "agi_callington",
    "agi_callingtns",
    "agi_dnid",
    "agi_rdnis",
    "agi_context",
    "agi_extension",
    "agi_priority",
    "agi_enhanced",
    "agi_accountcode",
    "agi_threadid",
)
_RANK: Final = {key: index for index, key in enumerate(ENV_ORDER)}
#: Values Asterisk writes raw that a caller (or a far network) controls: a line
#: break in them must not end the block or forge a key (a CNAM with LF, say).
CALLER_KEYS: Final = frozenset({"agi_callerid", "agi_calleridname", "agi_dnid", "agi_rdnis"})
#: Keys after which any new key may follow ("": the first line).
_OPEN_AFTER: Final = frozenset({"", *ENV_ORDER}) - CALLER_KEYS
#: The key that follows each one in setup_env()'s order.
_NEXT_KEY: Final[dict[str, str]] = {
    **dict(itertools.pairwise(ENV_ORDER)),
    ENV_ORDER[-1]: "agi_arg_1",
}


#: A whole block exactly as setup_env() writes it (every key, in order, ``key:
#: value`` with one space, no agi_arg_N), then the blank line: what the line by
#: line parser would make of these lines is plain, and one match in C reads it
#: (the line by line path cost some 3,000 instructions per line; callgrind).
_WHOLE_BLOCK: Final = re.compile("".join(f"{key}: ([^\n]*)\n" for key in ENV_ORDER) + "\n")


def _lines_in_order(keys: tuple[str, ...]) -> str:
    """A pattern for the first lines of ``keys`` in order, any number of them."""
    pattern = ""
    for key in reversed(keys):
        pattern = f"{key}: [^\n]*\n(?:{pattern})?"
    return pattern


#: The complete lines of a block's beginning, as setup_env() writes them.
_BLOCK_START: Final = re.compile(_lines_in_order(ENV_ORDER))


def _next_key(key: str) -> str:
    if key.startswith("agi_arg_"):
        return f"agi_arg_{int(key[8:]) + 1}"
    rank = _RANK[key]
    return ENV_ORDER[rank + 1] if rank + 1 < len(ENV_ORDER) else "agi_arg_1"


class EnvironmentParser:
    """Collects the environment block; fed bytes until it returns an Environment.

    Asterisk writes caller ID, name, DNID and RDNIS without escaping, so a
    line break inside them arrives as a line of its own. Keys must come in
    setup_env()'s order and only once; a line that is not the next key, or
    a blank line before ``agi_threadid`` right after such a value, is part
    of that value (and :attr:`suspicious` is set). Bytes after the block
    are kept in :attr:`remainder`. A block exactly as setup_env() writes it
    (what Asterisk sends unless a value holds a line break) is read in one
    match once it is whole; what any other block means is decided line by line.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._variables: dict[str, str] = {}
        self._last = ""
        self._args = False  # an agi_arg_N key was seen
        self._size = 0
        self.remainder = b""
        self.done = False
        self.suspicious = False

    def feed(self, data: bytes) -> Environment | None:
        if self.done:
            raise AgiProtocolError("the environment block was already complete")
        buffer = self._buffer
        if buffer:
            buffer += data
            data = bytes(buffer)
            buffer.clear()
        if not self._variables and len(data) <= MAX_ENVIRONMENT_BYTES:
            # Nothing taken yet: a block as setup_env() writes it is read in one
            # match, once it is whole; until then its beginning is only kept.
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = ""  # the line by line path decodes each line on its own
            whole = _WHOLE_BLOCK.match(text)
            if whole is not None:
                return self._take_whole(data, text, whole)
            start = _BLOCK_START.match(text)
            if start is not None and start.end() == text.rfind("\n") + 1:
                buffer += data
                return None
        return self._feed_lines(data)

    def _take_whole(self, data: bytes, text: str, whole: re.Match[str]) -> Environment:
        """The block :data:`_WHOLE_BLOCK` matched at the start of ``data`` (``text``)."""
        self.done = True
        end = whole.end()
        self.remainder = data[end:] if len(text) == len(data) else text[end:].encode("utf-8")
        variables = self._variables = dict(zip(ENV_ORDER, whole.groups(), strict=True))
        return _build_environment(variables, False)

    def _feed_lines(self, data: bytes) -> Environment | None:
        """The general path: every complete line in ``data`` taken in turn."""
        buffer = self._buffer
        last = data.rfind(b"\n")
        if last < 0:
            if len(data) > MAX_ENVIRONMENT_BYTES:
                raise AgiProtocolError("environment line too long; is this Asterisk?")
            buffer += data
            return None
        self._size += last
        if self._size > MAX_ENVIRONMENT_BYTES:
            raise AgiProtocolError("environment block too large")
        block, rest = data[:last], data[last + 1 :]
        try:
            # One decode for the whole block; a block that is not UTF-8 is
            # decoded line by line (each line UTF-8 or else Latin-1), as before.
            lines = block.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            lines = [decode_text(raw) for raw in block.split(b"\n")]
        end = self._take_lines(lines)
        if end < 0:
            buffer += rest
            return None
        self.done = True
        if end + 1 < len(lines):  # more lines after the blank one: keep their bytes
            self.remainder = b"\n".join(block.split(b"\n")[end + 1 :]) + b"\n" + rest
        else:
            self.remainder = rest
        if not self._variables:
            raise AgiProtocolError("empty environment block; expected agi_* lines")
        return _build_environment(self._variables, self._args)

    def _take_lines(self, lines: list[str]) -> int:
        """Take whole lines; the index of the blank line that ends the block, or -1."""
        variables = self._variables
        last = self._last
        for index, line in enumerate(lines):
            if line:
                # The usual line: the next of setup_env()'s keys, first time seen,
                # after a value no caller controls (or right after one that is).
                key, sep, value = line.partition(": ")
                if (
                    sep
                    and key in _RANK
                    and key not in variables
                    and (last in _OPEN_AFTER or _NEXT_KEY.get(last) == key)
                ):
                    variables[key] = value
                    last = key
                    continue
                self._last = last
                self._take_line(line)
                last = self._last
            elif last in CALLER_KEYS and "agi_threadid" not in variables:
                # A blank line inside a caller-controlled value, not the end of
                # the block (Asterisk writes agi_threadid after them all).
                self._last = last
                self._take_line(line)
                last = self._last
            else:
                self._last = last
                return index
        self._last = last
        return -1

    def _take_line(self, line: str) -> None:
        # ``agi_<name>: <value>`` (the space is optional), read without a regex
        # for the keys setup_env() writes; other agi_* names are checked by one.
        key, colon, value = line.partition(":")
        if colon and (key in _RANK or (key.startswith("agi_") and _ENV_KEY.fullmatch(key))):
            if value[:1] == " ":
                value = value[1:]
            last = self._last
            repeated = key in self._variables
            trusted = last not in CALLER_KEYS and not last.startswith("agi_arg_")
            # After a value a caller controls, only the very next key of
            # setup_env()'s order starts a new line; anything else is the value's.
            follows = key == _next_key(last) if not trusted else True
            if not repeated and follows:
                self._variables[key] = value
                self._last = key
                self._args = self._args or key.startswith("agi_arg_")
                return
            if repeated and trusted:
                raise AgiProtocolError(f"environment key {key!r} sent twice")
        if self._last in CALLER_KEYS or self._last.startswith("agi_arg_"):
            self._variables[self._last] += "\n" + line
            self.suspicious = True
            return
        raise AgiProtocolError(
            f"not an AGI environment line: {line[:60]!r}; expected 'agi_<name>: <value>'"
        )


def encode_environment(variables: Mapping[str, str]) -> bytes:
    """Encode an environment block as Asterisk writes it (``key: value\\n``, blank line)."""
    lines = [f"{key}: {value}\n" for key, value in variables.items()]
    return ("".join(lines) + "\n").encode("utf-8")


# --------------------------------------------------------------------------
# Replies


#: The ``fields`` of a reply that has none (shared: it cannot be changed).
_NO_FIELDS: Final[Mapping[str, str]] = MappingProxyType({})


class Reply(NamedTuple):
    """One reply line (or the 520 usage block) from Asterisk.

    ``result`` is the raw token after ``result=``: an integer for most
    commands, the digits for ``GET DATA``, empty on a ``GET DATA`` timeout,
    ``None`` for 510/511/520 replies.

    An immutable named tuple, as aiohttp's parsed messages are: one is made
    for every reply, and a tuple is built several times faster than a
    frozen dataclass.
    """

    code: int
    result: str | None = None
    data: str | None = None
    fields: Mapping[str, str] = _NO_FIELDS
    message: str = ""
    usage: tuple[str, ...] = ()
    raw: bytes = b""

    @property
    def value(self) -> int | None:
        """``result`` as an integer, or ``None`` when it is not one."""
        if self.result is None:
            return None
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def endpos(self) -> int | None:
        raw = self.fields.get("endpos")
        return int(raw) if raw is not None and raw.lstrip("-").isdigit() else None


@dataclass(frozen=True, slots=True)
class HangupNotice:
    """The unsolicited ``HANGUP`` line: the channel is gone (it may precede a reply)."""

    raw: bytes = b"HANGUP\n"


HANGUP_NOTICE: Final = HangupNotice()
Event = Reply | HangupNotice


#: ``Reply``'s constructor without the Python frame of its ``__new__`` (1,500
#: instructions of 3,600 a reply): every field given, in order.
_new_reply: Final = tuple.__new__


def parse_reply_line(line: str, raw: bytes = b"") -> Reply:
    """Parse one complete (non-usage) reply line, without its newline."""
    if line.startswith("200 result="):  # the common case, one regex at most
        value, space, after = line[11:].partition(" ")
        if not space:
            return _new_reply(Reply, (200, value, None, _NO_FIELDS, "", (), raw))
        if after.startswith("endpos=") and after[7:].isdigit() and value.lstrip("-").isdigit():
            # A prompt's end: what the pattern below reads, without it.
            return _new_reply(Reply, (200, value, None, {"endpos": after[7:]}, "", (), raw))
        fast = _REPLY_200.fullmatch(line)
        if fast is not None:
            value, data, pairs = fast.groups()
            fields = dict(_FIELD.findall(pairs)) if pairs else _NO_FIELDS
            return _new_reply(Reply, (200, value, data, fields, "", (), raw))
    match = _REPLY_LINE.fullmatch(line)
    if match is None:
        raise AgiProtocolError(f"not an AGI reply: {line[:80]!r}; expected '<code> <text>'")
    code, rest = int(match.group(1)), match.group(3)
    result = _RESULT.fullmatch(rest)
    if result is None:
        return Reply(code=code, message=rest, raw=raw)
    tail = result.group(2)
    parts = _TAIL.fullmatch(tail)
    if parts is None:
        return Reply(code=code, result=result.group(1), message=tail.strip(), raw=raw)
    fields = dict(_FIELD.findall(parts.group("fields")))
    return Reply(
        code=code, result=result.group(1), data=parts.group("data"), fields=fields, raw=raw
    )


#: The replies most commands get, each made once: a read of exactly one of these
#: lines is answered with its record (10,700 instructions less than parsing it).
#: A fixed table: nothing read is ever added to it.
_COMMON_REPLIES: Final[Mapping[bytes, Reply]] = {
    raw: parse_reply_line(raw[:-1].decode(), raw)
    for raw in (b"200 result=0\n", b"200 result=1\n", b"200 result=-1\n")
}


class ReplyParser:
    """Turns the byte stream from Asterisk into :data:`Event` records."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._usage: list[str] | None = None
        self._usage_raw = bytearray()

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished reply are buffered."""
        return bool(self._buffer) or self._usage is not None

    def feed(self, data: bytes) -> list[Event]:
        common = _COMMON_REPLIES.get(data)
        if common is not None and not self._buffer and self._usage is None:
            return [common]
        if data and not self._buffer and self._usage is None and data.find(b"\n") == len(data) - 1:
            # The usual read: exactly one whole line, nothing buffered.
            if data.startswith(b"200 result="):
                try:
                    line = data[:-1].decode("utf-8")
                except UnicodeDecodeError:
                    line = data[:-1].decode("latin-1")
                return [parse_reply_line(line, data)]
            event = self._take_line(data)
            return [event] if event is not None else []
        self._buffer += data
        events: list[Event] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_REPLY_LINE_BYTES:
                    raise AgiProtocolError("reply line too long")
                return events
            raw = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            event = self._take_line(raw)
            if event is not None:
                events.append(event)

    def _take_line(self, raw: bytes) -> Event | None:
        try:
            line = raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            line = raw[:-1].decode("latin-1")
        if self._usage is not None:
            self._usage_raw += raw
            if line.startswith("520 "):
                usage, self._usage = tuple(self._usage), None
                whole, self._usage_raw = bytes(self._usage_raw), bytearray()
                return Reply(code=520, message=line[4:], usage=usage, raw=whole)
            self._usage.append(line)
            if len(self._usage_raw) > MAX_REPLY_LINE_BYTES:
                raise AgiProtocolError("520 usage block too long")
            return None
        if line == "HANGUP":
            return HANGUP_NOTICE
        if line.startswith("520-"):
            # The usage block: '520-Invalid command syntax...', lines, '520 End of proper usage.'
            self._usage = []
            self._usage_raw = bytearray(raw)
            return None
        return parse_reply_line(line, raw)


# --------------------------------------------------------------------------
# Commands


def _check(value: str) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UnsafeArgumentError(
                f"value {value[:40]!r} is not valid Unicode (a lone surrogate); decode input "
                "with errors='replace' first"
            ) from None
    if "\r" in value or "\n" in value or "\x00" in value:
        bad = next(char for char in _FORBIDDEN if char in value)
        name = {"\r": "CR", "\n": "LF", "\x00": "NUL"}[bad]
        raise UnsafeArgumentError(
            f"value {value[:40]!r} contains {name}; AGI has no escape for it and it would "
            "start a second command. Strip control characters before passing it on."
        )
    return value


def quote(value: str) -> str:
    """Quote ``value`` so that Asterisk's tokenizer reads it back as one argument."""
    _check(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def token(value: str | int) -> str:
    """One argument: bare when that is unambiguous, else quoted."""
    text = str(value)
    _check(text)
    if _BARE.fullmatch(text):
        return text
    return quote(text)


class Quoted(str):
    """An argument that is always sent in quotes (escape digits, as Asterisk's docs show)."""

    __slots__ = ()


#: Verbs already checked, with their number of words (a command's verbs are few).
_VERBS: dict[str, int] = {}
#: The lines of commands with no argument already encoded (ANSWER, HANGUP): a verb
#: and LF, nothing a caller sends.
_BARE_LINES: dict[str, bytes] = {}


def encode_command(verb: str, *args: str | int) -> bytes:  # noqa: PLR0912 - one frame per command
    """Encode one command line, e.g. ``encode_command("STREAM FILE", "beep", Quoted(""))``.

    ``verb`` is the command's fixed words; every element of ``args`` becomes
    exactly one argument whatever it holds, or :class:`UnsafeArgumentError` is
    raised. Lines end with LF only: Asterisk keeps a CR as part of the last
    argument.
    """
    if not args:
        known = _BARE_LINES.get(verb)
        if known is not None:
            return known
    verb_words = _VERBS.get(verb)
    if verb_words is None:
        if not _VERB.fullmatch(verb):
            raise UnsafeArgumentError(f"AGI command verb {verb!r} must be words of letters")
        verb_words = verb.count(" ") + 1
        if len(_VERBS) < 256:
            _VERBS[verb] = verb_words
    if len(args) + verb_words > MAX_ARGS - 1:
        raise UnsafeArgumentError(f"too many arguments ({len(args)}); Asterisk keeps {MAX_ARGS}")
    words = [verb]
    for arg in args:
        if type(arg) is str:
            # Bare needs no check: the pattern admits no CR, LF or NUL (nor any
            # control character, space, quote or backslash); a lone surrogate
            # is caught by the encoding below.
            words.append(arg if _BARE.fullmatch(arg) else quote(arg))
        elif type(arg) is int:
            words.append(str(arg))  # digits and '-' only
        elif isinstance(arg, Quoted):
            words.append(quote(arg))
        else:
            words.append(token(arg))
    try:
        line = (" ".join(words) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        for arg in args:
            _check(str(arg))  # raises, naming the value
        raise UnsafeArgumentError("command is not valid Unicode") from None
    if len(line) > MAX_COMMAND_BYTES:
        raise UnsafeArgumentError(
            f"command is {len(line)} bytes; Asterisk runs anything past {MAX_COMMAND_BYTES} "
            "as another command. Shorten the value."
        )
    if not args and len(_BARE_LINES) < 256:
        _BARE_LINES[verb] = line
    return line


_APP_SPECIAL = re.compile(r'([\\",()\[\]])')


def escape_app_arg(value: str) -> str:
    """Escape ``value`` so a dialplan application reads it as exactly one argument.

    ``__ast_app_separate_args`` (main/app.c) splits on ``,`` outside
    ``()``, ``[]`` and quotes, drops ``"`` and takes the character after a
    backslash literally; a backslash before each of ``\\ " , ( ) [ ]`` keeps
    any string whole. (``&`` still separates Dial destinations and Playback
    files: the application splits on it itself.)
    """
    _check(value)
    if _APP_SPECIAL.search(value) is None:
        return value
    return _APP_SPECIAL.sub(r"\\\1", value)


def split_command_line(line: str) -> list[str]:
    """Split a command line exactly as Asterisk's ``parse_args`` does (res_agi.c).

    Spaces and tabs separate; ``"`` toggles quoting and is dropped; ``\\``
    makes the next character literal; at most :data:`MAX_ARGS` - 1 words.
    """
    words: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and current is None:
                current = []
            continue
        if char in " \t" and not quoted and not escaped:
            if current is not None:
                words.append("".join(current))
                current = None
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        if current is None:
            if len(words) >= MAX_ARGS - 1:
                continue
            current = []
        current.append(char)
        escaped = False
    if current is not None:
        words.append("".join(current))
    return words
