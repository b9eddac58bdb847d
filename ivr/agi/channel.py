"""``Channel``: typed async AGI commands on one call.

A ``Channel`` owns one FastAGI connection. It keeps exactly one command
outstanding (anything sent while a command runs would silently abort it,
PROTOCOL.md §2), turns every way Asterisk shows a hang-up into
:class:`~ivr.errors.ChannelHangup`, and tells a real failure on a live
channel (a missing sound file) apart from a hang-up.
"""

from __future__ import annotations

import asyncio

try:
    import _asyncio as _c_asyncio
except ImportError:  # pragma: no cover - CPython always has it
    _c_asyncio = None  # type: ignore[assignment]
import collections
import contextlib
import enum
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from random import getrandbits as _getrandbits
from time import monotonic as _monotonic
from typing import Any, Final, NamedTuple, NoReturn, Protocol

import structlog

from ivr import log as _log
from ivr.agi import timings as _timings
from ivr.agi.protocol import (
    Environment,
    HangupNotice,
    Quoted,
    Reply,
    ReplyParser,
    encode_command,
    escape_app_arg,
)
from ivr.agi.timings import START_BITS, TIMINGS
from ivr.errors import (
    AgiError,
    ApplicationNotFoundError,
    ChannelHangup,
    CommandTimeout,
    PlaybackError,
    UnknownCommandError,
    UnsafeArgumentError,
    UsageError,
)
from ivr.log import debug_enabled

__all__ = [
    "ENGINE_HANGUP",
    "Channel",
    "ChannelState",
    "DigitsResult",
    "PlaybackResult",
    "RecordResult",
    "Transport",
]

log = structlog.get_logger("ivr.agi")

#: Commands Asterisk still runs on a dead channel (res_agi.c command table,
#: ``dead`` column); every other command gets 511 there, so we do not send it.
DEAD_OK: Final = frozenset(
    {
        "ASYNCAGI BREAK",
        "DATABASE DEL",
        "DATABASE DELTREE",
        "DATABASE GET",
        "DATABASE PUT",
        "EXEC",
        "GET FULL VARIABLE",
        "GET VARIABLE",
        "NOOP",
        "SET VARIABLE",
        "SPEECH DESTROY",
        "SPEECH UNLOAD GRAMMAR",
        "VERBOSE",
    }
)
#: ``hangup_how`` when the engine itself hung the call up (HANGUP), not the caller.
ENGINE_HANGUP: Final = "hung up by the engine"
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(?:\([A-Za-z0-9_,\-]*\))?")
_DIGITS = re.compile(r"[0-9*#A-Da-d]*")
_APPLICATION = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: What no plain application argument holds (escape_app_arg escapes the first
#: six; CR, LF and NUL are refused). A comma is counted apart: the join adds them.
_APP_PLAIN_BAD = re.compile(r'[\\"()\[\]\r\n\x00]')


class ChannelState(enum.IntEnum):
    """``CHANNEL STATUS`` results (Asterisk's ``ast_channel_state``)."""

    DOWN = 0
    RESERVED = 1
    OFFHOOK = 2
    DIALING = 3
    RING = 4
    RINGING = 5
    UP = 6
    BUSY = 7
    DIALING_OFFHOOK = 8
    PRERING = 9


# The results are named tuples, as replies are: immutable, and made on every
# command in the hot path (several times faster than a frozen dataclass). The
# commonest are built by tuple.__new__, without the Python frame of a named
# tuple's __new__ (1,500 instructions of 3,000).
_new_result: Final = tuple.__new__


class PlaybackResult(NamedTuple):
    """How a prompt ended: the digit that stopped it (if any) and the sample offset."""

    digit: str | None
    endpos: int


class DigitsResult(NamedTuple):
    """Digits collected by ``GET DATA``; ``timed_out`` when input stopped on the timeout."""

    digits: str
    timed_out: bool


class RecordResult(NamedTuple):
    """How a recording ended: ``dtmf``, ``timeout`` (also on silence) or ``maxlength``."""

    ended_by: str
    digit: str | None
    endpos: int


class Transport(Protocol):
    """The byte pipe under a channel (the server's :class:`AgiConnection`).

    A transport may also have ``write_now(data)``: :meth:`write` without a
    coroutine, returning ``None`` or a future to await, and ``read_now()`` with
    ``stop_waiting()``: :meth:`read` without a coroutine, returning the bytes or
    a future to await before asking again (the channel uses them when they are
    there: two coroutines less per command; :class:`AgiConnection` has them)."""

    async def read(self) -> bytes:
        """Bytes received since the last read; ``b""`` when the peer is gone."""

    async def write(self, data: bytes) -> None:
        """Send ``data``; raises ``ConnectionError`` when the peer is gone."""


#: The running task of a loop, without asyncio.current_task's Python frame: the
#: C module's live mapping (CPython 3.11-3.13). From 3.14 the running task is
#: kept per thread and asyncio.tasks._current_tasks is a dict nothing fills:
#: only the same object as _asyncio's is trusted, else asyncio.current_task.
def _task_getter(tasks: Any, c_tasks: Any) -> Callable[[asyncio.AbstractEventLoop], Any]:
    """``tasks.get`` when ``tasks`` is the C module's live mapping, else the function."""
    if isinstance(tasks, dict) and tasks is c_tasks:
        return tasks.get
    return asyncio.current_task


_current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None] = _task_getter(
    getattr(asyncio.tasks, "_current_tasks", None),
    getattr(_c_asyncio, "_current_tasks", None) if _c_asyncio else None,
)


def _nothing() -> None:
    pass


def _dead_ok(verb: str) -> bool:
    """True for a command Asterisk still runs (and answers) on a dead channel."""
    return verb in DEAD_OK or verb.split(" ", maxsplit=1)[0] == "EXEC"


def _digit(value: int | None) -> str | None:
    return chr(value) if value is not None and value > 0 else None


def _check_digits(digits: str, what: str) -> str:
    if not _DIGITS.fullmatch(digits):
        raise UnsafeArgumentError(f"{what} {digits!r}: only 0-9, *, # and A-D are keypad digits")
    return digits


#: Escape-digit sets and variable names already checked: a flow's constants, a
#: handful (never what a caller typed: that is not kept). Bounded all the same.
_CHECKED_ESCAPES: set[str] = set()
_CHECKED_NAMES: set[str] = set()
_CHECKED_MAX: Final = 1024


def _check_escape(escape_digits: str) -> None:
    if escape_digits not in _CHECKED_ESCAPES:
        _check_digits(escape_digits, "escape digits")
        if len(_CHECKED_ESCAPES) < _CHECKED_MAX:
            _CHECKED_ESCAPES.add(escape_digits)


class Channel:
    """One call, seen through AGI. Methods map one-to-one onto AGI commands."""

    def __init__(
        self,
        env: Environment,
        transport: Transport,
        *,
        command_timeout: float = 10.0,
        initial: bytes = b"",
        swept: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.env = env
        self._transport = transport
        self._write_now: Callable[[bytes], Awaitable[None] | None] | None = getattr(
            transport, "write_now", None
        )
        self._read_now: Callable[[], bytes | Awaitable[None]] | None = getattr(
            transport, "read_now", None
        )
        self._stop_waiting: Callable[[], None] = getattr(transport, "stop_waiting", _nothing)
        self._parser = ReplyParser()
        self._events: list[Reply | HangupNotice] = []
        #: A command is outstanding; others wait in ``_waiters`` for their turn.
        self._busy = False
        self._waiters: collections.deque[asyncio.Future[None]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = loop
        self._exec_label = "EXEC"  # the next EXEC's label in ivr.agi.timings (exec() sets it)
        #: Counts this channel's commands for the metrics' sample, from a random start:
        #: every position of a flow's commands gets its turn over calls (a count
        #: shared by the process would alias with a flow's length: a 4-command flow
        #: run one call at a time would only ever time its 4th command).
        self._tick = _getrandbits(START_BITS)  # a sampling offset, no secret
        self._command_timeout = command_timeout
        self._broken: str | None = None
        self.hung_up = False
        self._hangup_raised = False
        self.hangup_how = ""
        self.commands_sent = 0
        self._mask = 0
        #: With ``swept``, the server's sweeper enforces :attr:`deadline`
        #: (no timer per command); otherwise each reply wait has its own.
        self._swept = swept
        self.deadline = 0.0
        self.expired = False
        #: The task waiting for a reply, for the sweeper to cancel on a deadline.
        self.waiting_task: asyncio.Task[Any] | None = None
        self._closed = False
        self._hangup_event: asyncio.Event | None = None
        #: Called once when the hang-up is first seen (the server arms a grace timer).
        self.on_hangup: Callable[[], object] | None = None
        if initial:
            self._events.extend(self._parser.feed(initial))

    # ------------------------------------------------------------------ core

    @property
    def uniqueid(self) -> str:
        return self.env.uniqueid

    @contextlib.contextmanager
    def sensitive(self) -> Iterator[None]:
        """Within this block, replies are masked in logs (PINs, card numbers)."""
        self._mask += 1
        try:
            yield
        finally:
            self._mask -= 1

    async def wait_for_hangup(self) -> None:
        """Return once the caller has hung up (for waits that send no command).

        The hang-up then counts as reported: later dead-channel commands
        (variables, NOOP, EXEC) run without raising :class:`ChannelHangup`.
        """
        if not self.hung_up:
            if self._hangup_event is None:
                self._hangup_event = asyncio.Event()
            await self._hangup_event.wait()
        self._hangup_raised = True

    def _mark_hangup(self, how: str, *, by_caller: bool = True) -> None:
        if not self.hung_up:
            self.hung_up = True
            self.hangup_how = how
            if self._hangup_event is not None:
                self._hangup_event.set()
            if debug_enabled():
                if _log.current_call.get() is self.env:
                    log.debug("agi.hangup", how=how)
                else:
                    # Seen where the connection reads, outside the call's task (an
                    # idle call's notice or close): the line names the call itself.
                    log.debug(
                        "agi.hangup", how=how, uniqueid=self.env.uniqueid, flow=self.env.script
                    )
            if by_caller and self.on_hangup is not None:
                self.on_hangup()

    def _raise_hangup(self, how: str) -> None:
        self._mark_hangup(how)
        self._hangup_raised = True
        raise ChannelHangup(f"the caller hung up ({self.hangup_how})", how=self.hangup_how)

    async def command(self, verb: str, *args: str | int, timeout: float | None = None) -> Reply:
        """Send one command and return its reply; the raw escape hatch under every method.

        ``timeout`` is the reply deadline in seconds: ``None`` for the
        per-command default, ``0`` for none (prompts and applications whose
        length the engine cannot know).

        Raises :class:`ChannelHangup` at the first sign of a hang-up (once);
        afterwards only commands Asterisk allows on a dead channel are sent.
        510 and 520 replies raise :class:`UnknownCommandError` and
        :class:`UsageError`.
        """
        return await self._send(verb.upper(), encode_command(verb, *args), timeout, ok=False)

    def _ok(
        self, verb: str, *args: str | int, timeout: float | None = None
    ) -> Coroutine[Any, Any, Reply]:
        """:meth:`command` for a reply that must be ``200``, else :class:`AgiError`.

        A plain function handing back :meth:`_send`'s coroutine: one frame
        less on every resumption of every command. The arguments are encoded
        (and refused) at once, before anything is awaited.
        """
        return self._send(verb, encode_command(verb, *args), timeout, ok=True)

    # One command at a time: a flag and a queue, not an asyncio.Lock (whose
    # ``async with`` costs two coroutines per command). The turn is handed
    # straight to the first waiter, first come first served.

    async def _wait_turn(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = collections.deque()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._next_turn()  # handed the turn as we were cancelled: pass it on
            raise

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Hold the turn for a block (the rare paths; commands take it inline)."""
        if self._busy:
            await self._wait_turn()
        else:
            self._busy = True
        try:
            yield
        finally:
            self._next_turn()

    def _next_turn(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the turn passes on; _busy stays set
                return
        self._busy = False

    def _check_usable(self, verb: str) -> None:
        if self._closed:
            # Every way the channel is gone reads the same, also on later commands.
            raise ChannelHangup(f"the caller hung up ({self.hangup_how})", how=self.hangup_how)
        if self._broken:
            raise AgiError(f"channel unusable: {self._broken}", command=verb)
        if self.hung_up and not _dead_ok(verb):
            self._raise_hangup(self.hangup_how)

    async def _send(  # noqa: PLR0912, PLR0915 - every command's path, kept in one frame
        self, verb: str, line: bytes, timeout: float | None, ok: bool
    ) -> Reply:
        """Send ``line`` (the encoded ``verb`` command) in turn and return its reply."""
        if self._busy:
            await self._wait_turn()  # returns holding the turn
        self._busy = True
        try:
            if self._closed or self._broken or self.hung_up:
                self._check_usable(verb)
            limit = self._command_timeout if timeout is None else timeout
            try:
                write_now = self._write_now
                drain = self._transport.write(line) if write_now is None else write_now(line)
                if drain is not None:
                    await self._drain(verb, drain)
            except (ConnectionError, OSError):
                self._raise_hangup("socket closed")
            self.commands_sent += 1
            # The event loop's clock, read without loop.time()'s frame (asyncio's and
            # uvloop's both read CLOCK_MONOTONIC): the server's sweeper compares with it.
            sent = _monotonic()
            try:
                if self._swept:
                    # The sweeper's view: this command's deadline and the task to cancel.
                    self.waiting_task = _current_task(self._loop or self._get_loop())
                    self.deadline = sent + limit if limit else 0.0
                    try:
                        read_now = self._read_now
                        if self._events or read_now is None:
                            reply = await self._next_reply(verb)
                        else:
                            # The usual wait, in this frame (no coroutine of its own):
                            # one read bringing one plain reply; anything else (a
                            # notice, 100 Trying, EXEC's usage, a close) is left to
                            # _next_reply, with what this read brought.
                            got = read_now()
                            while not isinstance(got, bytes):
                                try:
                                    await got
                                except BaseException:
                                    self._stop_waiting()
                                    raise
                                got = read_now()
                            events = self._parser.feed(got) if got else []
                            event = events[0] if len(events) == 1 else None
                            if (
                                isinstance(event, Reply)
                                and event.code == 200
                                and (verb != "EXEC" or event.value != 1)
                            ):
                                reply = event
                            else:
                                self._events += events
                                reply = await self._next_reply(verb, got)
                    finally:
                        self.deadline = 0.0
                        self.waiting_task = None
                else:
                    reply = await self._timed_reply(verb, limit)
            except asyncio.CancelledError:
                self._cancelled(verb, limit)
                raise
            except TimeoutError:
                self._timeout(verb, limit)
            tick = self._tick = self._tick + 1
            if not tick % _timings.SAMPLE:  # a sample for /metrics (ivr.agi.timings)
                TIMINGS.record(self._exec_label if verb == "EXEC" else verb, _monotonic() - sent)
            if self._events or self.hung_up or reply.code == 511 or _log.debug_on:
                self._check_reply(verb, line, reply)
        finally:
            if self._waiters:
                self._next_turn()
            else:
                self._busy = False
        code = reply.code
        if code != 200 and (ok or code in {510, 520}):
            raise self._fail(verb, reply)
        return reply

    async def _drain(self, verb: str, drain: Awaitable[None]) -> None:
        """Wait for the transport's buffer to take ``verb``'s line (only when it is full)."""
        try:
            await drain
        except asyncio.CancelledError:
            # The line is in the transport already: Asterisk will run the command and
            # answer it, and that reply would be taken as the next command's.
            self._broken = f"{verb} was cancelled while it was being sent"
            raise

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop = asyncio.get_running_loop()
        return loop

    async def _timed_reply(self, verb: str, limit: float) -> Reply:
        """The reply under a timer of its own (a channel no server sweeps)."""
        # asyncio.timeout, not wait_for: no extra task per command.
        async with asyncio.timeout(limit or None):
            return await self._next_reply(verb)

    def _cancelled(self, verb: str, limit: float) -> None:
        """A wait for a reply was cancelled: by the sweeper on its deadline (raise
        :class:`CommandTimeout`), or by someone else (the stream is out of step)."""
        task = asyncio.current_task()
        if self.expired and task is not None:
            self.expired = False
            task.uncancel()  # the sweeper's cancel: it means the deadline passed
            self._timeout(verb, limit)
        # Asterisk is still running the command: its reply (or none at all,
        # if the next command interrupts it) would be taken as the next
        # command's. The stream cannot be trusted any more.
        self._broken = f"{verb} was cancelled while Asterisk ran it"

    def _check_reply(self, verb: str, line: bytes, reply: Reply) -> None:
        """What a reply may bring besides its value: a second reply (the stream is out
        of step), the debug line, a dead channel, a hang-up seen on the way."""
        if self._events and any(isinstance(e, Reply) for e in self._events):
            # One command, one reply: a second one now means a value held a
            # line break (GET VARIABLE sends values raw) and forged a reply.
            self._broken = "Asterisk sent two replies to one command"
            raise AgiError(
                f"{self._broken} ({verb}); a variable value probably holds a line break",
                command=verb,
            )
        if debug_enabled():
            log.debug(
                "agi.reply",
                command=line[:-1].decode("utf-8", "replace") if not self._mask else verb,
                reply=reply.raw[:-1].decode("utf-8", "replace") if not self._mask else "***",
            )
        if reply.code == 511:
            self._raise_hangup(self.hangup_how or "511 dead channel")
        if self.hung_up and not self._hangup_raised and not _dead_ok(verb):
            self._raise_hangup(self.hangup_how)
        # A HANGUP notice before this reply is not the reply: Asterisk writes it
        # some 40 ms after the reply of the command the hang-up ended (with this
        # command if it came sooner), then runs this command in dead mode and
        # answers it for real (PROTOCOL.md §8.1: GET VARIABLE DIALSTATUS gave
        # HANGUP, then ``200 result=1 (ANSWER)``). The caller gets the reply;
        # the hang-up is raised by the next command a dead channel refuses.

    async def _exec_usage(self) -> None:
        # handle_exec passes an application's 1 on as RESULT_SHOWUSAGE: the
        # EXEC usage block follows the reply and belongs to it.
        usage = await self._next_reply("")
        if usage.code != 520:
            self._broken = "EXEC returned 1 without the usage block Asterisk sends"
            raise AgiError(self._broken, command="EXEC")

    def _timeout(self, verb: str, limit: float) -> NoReturn:
        self._broken = f"no reply to {verb} within {limit:g} s"
        raise CommandTimeout(f"Asterisk did not answer {verb} within {limit:g} s", command=verb)

    async def _next_reply(self, verb: str, read: bytes | None = None) -> Reply:
        """The reply to ``verb``'s command: notices and ``100 Trying`` are taken on the
        way, and the usage block an EXEC returning 1 brings is read with it. ``read``:
        the bytes the caller has just read and parsed into the events, if any (``b""``:
        the connection is closed)."""
        events = self._events
        if read == b"":
            self._closed = True
            self._raise_hangup("connection closed")
        while True:
            while events:
                event = events.pop(0)
                if isinstance(event, HangupNotice):
                    self._mark_hangup("HANGUP notice")
                    continue
                if event.code == 100:  # "100 result=0 Trying..." precedes the real reply
                    continue
                if verb == "EXEC" and event.code == 200 and event.value == 1:
                    await self._exec_usage()
                return event
            read_now = self._read_now
            try:
                if read_now is None:
                    data = await self._transport.read()
                else:
                    got = read_now()
                    while not isinstance(got, bytes):
                        try:
                            await got
                        except BaseException:
                            self._stop_waiting()
                            raise
                        got = read_now()
                    data = got
            except (ConnectionError, OSError):
                data = b""
            if not data:
                self._closed = True
                self._raise_hangup("connection closed")
            events += self._parser.feed(data)

    def _fail(self, verb: str, reply: Reply) -> AgiError:
        raw = reply.raw.decode("utf-8", "replace").strip()
        if reply.code == 510:
            return UnknownCommandError(f"Asterisk does not know {verb}", command=verb, reply=raw)
        if reply.code == 520:
            usage = " ".join(reply.usage)
            return UsageError(f"wrong arguments for {verb}: {usage}", command=verb, reply=raw)
        return AgiError(f"{verb} failed: {raw}", command=verb, reply=raw)

    async def _probe_hangup(self) -> None:
        """After a -1, learn whether the channel hung up or the command just failed;
        raise :class:`ChannelHangup` when it hung up.

        ``result=-1`` is not proof of a hang-up (``STREAM FILE`` of a missing
        file returns it on a live channel, transcript 1), nor is a -1 from
        ``EXEC`` proof that the caller is there. Asterisk writes the ``HANGUP``
        notice before it answers any later command, so it precedes the reply to
        this cheap NOOP (which a dead channel still answers) when, and only
        when, the channel is gone.
        """
        await self.probe()
        if self.hung_up:
            self._raise_hangup(self.hangup_how)

    async def probe(self) -> bool:
        """Ask Asterisk (a NOOP, safe on a dead channel) whether the caller is still
        there; True when they are. Never raises for a hang-up it learns of."""
        if not self.hung_up and not self._closed:
            await self.command("NOOP", "probe")
        return not self.hung_up

    def _timeout_for(self, ms: int | None) -> float:
        """The reply deadline of a command that itself waits ``ms`` (0: none)."""
        if ms is None or ms < 0:
            return 0
        return self._command_timeout + ms / 1000

    async def send_raw(self, line: bytes) -> bytes:
        """Send ``line`` as is and return the exact bytes of its reply.

        ``HANGUP`` notices before the reply are included and no hang-up is
        raised: this is for diagnostics and for replaying captured sessions.
        The line must be one LF-terminated command.
        """
        if not line.endswith(b"\n") or line.count(b"\n") != 1 or b"\x00" in line:
            raise UnsafeArgumentError("send_raw takes exactly one LF-terminated line")
        async with self._turn():
            await self._transport.write(line)
            out = bytearray()
            while True:
                while self._events:
                    event = self._events.pop(0)
                    out += event.raw
                    if isinstance(event, HangupNotice):
                        self._mark_hangup("HANGUP notice")
                    elif event.code != 100:
                        return bytes(out)
                data = await self._transport.read()
                if not data:
                    self._closed = True
                    self._raise_hangup("connection closed")
                self._events.extend(self._parser.feed(data))

    async def send_failure(self) -> None:
        """End the AGI with ``AGISTATUS=FAILURE``: the dialplan's fallback takes the call.

        res_agi.c treats a line starting with ``failure`` as the script's
        failure; the generated dialplan routes that to a queue or voicemail.
        """
        async with self._turn():
            self._broken = "handed back to the dialplan"
            await self._transport.write(b"failure\n")

    # -------------------------------------------------------------- commands

    async def answer(self) -> None:
        reply = await self._ok("ANSWER")
        if reply.value == -1:
            await self._probe_hangup()
            raise AgiError("ANSWER failed on a live channel", command="ANSWER")

    async def hangup(self, channel: str | None = None) -> None:
        """Hang up this call (or ``channel``). The handler should return afterwards."""
        args = (channel,) if channel else ()
        reply = await self._ok("HANGUP", *args)
        if reply.value == -1:
            raise AgiError(f"no channel named {channel!r}", command="HANGUP")
        if channel is None:
            self._mark_hangup(ENGINE_HANGUP, by_caller=False)
            self._hangup_raised = True

    async def stream_file(
        self, filename: str, escape_digits: str = "", offset: int | None = None
    ) -> PlaybackResult:
        """Play ``filename``; a digit in ``escape_digits`` stops it and is returned."""
        _check_escape(escape_digits)
        args: tuple[str | int, ...] = (filename, Quoted(escape_digits))
        if offset is not None:
            args += (offset,)
        reply = await self._ok("STREAM FILE", *args, timeout=0)
        value = reply.value
        if value == -1:
            await self._probe_hangup()
            raise PlaybackError(
                f"could not play {filename!r}: Asterisk returned -1 on a live channel; "
                "check that the sound file exists in the channel's language",
                command="STREAM FILE",
                reply=reply.raw.decode("utf-8", "replace").strip(),
            )
        return _new_result(PlaybackResult, (_digit(value), reply.endpos or 0))

    async def get_option(
        self, filename: str, escape_digits: str, timeout_ms: int | None = None
    ) -> PlaybackResult:
        """Play ``filename`` then wait ``timeout_ms`` for one of ``escape_digits``."""
        _check_escape(escape_digits)
        args: tuple[str | int, ...] = (filename, Quoted(escape_digits))
        if timeout_ms is not None:
            args += (timeout_ms,)
        reply = await self._ok("GET OPTION", *args, timeout=0)
        value = reply.value
        if value == -1:
            await self._probe_hangup()
            raise PlaybackError(f"could not play {filename!r}", command="GET OPTION")
        return PlaybackResult(_digit(value), reply.endpos or 0)

    async def get_data(
        self, filename: str, timeout_ms: int | None = None, max_digits: int | None = None
    ) -> DigitsResult:
        """Play ``filename`` and collect up to ``max_digits`` digits (``#`` ends input)."""
        args: tuple[str | int, ...] = (filename,)
        if timeout_ms is not None:
            args += (timeout_ms,)
            if max_digits is not None:
                args += (max_digits,)
        elif max_digits is not None:
            raise UnsafeArgumentError("GET DATA needs timeout_ms when max_digits is given")
        reply = await self._ok("GET DATA", *args, timeout=0)
        if reply.result == "-1":
            await self._probe_hangup()
            raise PlaybackError(f"GET DATA with {filename!r} failed", command="GET DATA")
        return _new_result(DigitsResult, (reply.result or "", reply.data == "timeout"))

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """Wait up to ``timeout_ms`` for one digit; ``None`` on timeout. -1 blocks forever."""
        reply = await self._ok(
            "WAIT FOR DIGIT", int(timeout_ms), timeout=self._timeout_for(timeout_ms)
        )
        value = reply.value
        if value == -1:
            await self._probe_hangup()
            raise AgiError("WAIT FOR DIGIT failed on a live channel", command="WAIT FOR DIGIT")
        return _digit(value)

    async def say_digits(self, digits: str, escape_digits: str = "") -> str | None:
        _check_digits(digits, "digits to say")
        _check_escape(escape_digits)
        reply = await self._ok("SAY DIGITS", digits, Quoted(escape_digits), timeout=0)
        value = reply.value
        if value == -1:
            await self._probe_hangup()
            raise PlaybackError("SAY DIGITS failed", command="SAY DIGITS")
        return _digit(value)

    async def say_number(
        self, number: int, escape_digits: str = "", gender: str | None = None
    ) -> str | None:
        _check_escape(escape_digits)
        args: tuple[str | int, ...] = (int(number), Quoted(escape_digits))
        if gender:
            args += (gender,)
        reply = await self._ok("SAY NUMBER", *args, timeout=0)
        value = reply.value
        if value == -1:
            await self._probe_hangup()
            raise PlaybackError("SAY NUMBER failed", command="SAY NUMBER")
        return _digit(value)

    async def record_file(
        self,
        filename: str,
        fmt: str = "wav",
        escape_digits: str = "#",
        timeout_ms: int = 60000,
        *,
        offset: int | None = None,
        beep: bool = False,
        silence_s: int | None = None,
    ) -> RecordResult:
        """Record the caller into ``filename.fmt`` until a digit, silence or the timeout."""
        _check_escape(escape_digits)
        args: list[str | int] = [filename, fmt, Quoted(escape_digits), int(timeout_ms)]
        if offset is not None or beep or silence_s is not None:
            args.append(offset or 0)
        if beep:
            args.append("BEEP")
        if silence_s is not None:
            args.append(f"s={int(silence_s)}")
        reply = await self._ok("RECORD FILE", *args, timeout=self._timeout_for(timeout_ms))
        endpos = reply.endpos or 0
        if reply.value == -1:
            await self._probe_hangup()
            raise AgiError(f"recording failed ({reply.data or 'error'})", command="RECORD FILE")
        if reply.data in ("dtmf", "randomerror") and (reply.value or 0) > 0:
            # 'randomerror' with a digit: the key was pressed during the beep.
            return RecordResult("dtmf", _digit(reply.value), endpos)
        # '(timeout)' covers both the time limit and silence detection; its
        # result is the milliseconds left, not a digit (handle_recordfile).
        return RecordResult("timeout", None, endpos)

    async def exec(self, application: str, *args: str, timeout: float | None = 0) -> int:
        """Run a dialplan application with ``args`` and return its result.

        Each element of ``args`` reaches the application as exactly one
        argument whatever it holds (commas, quotes and parentheses are
        escaped). ``timeout`` defaults to none: applications such as Dial
        run as long as the call they make.
        """
        if not _APPLICATION.fullmatch(application):
            raise UnsafeArgumentError(f"application name {application!r} is not a name")
        if self.hung_up:
            # An application on a dead channel returns -1 at once: never a dial,
            # a voicemail or a stream for a caller who has gone.
            self._raise_hangup(self.hangup_how)
        data = ",".join(args)
        if not (
            data.isascii()
            and data.count(",") == len(args) - 1
            and _APP_PLAIN_BAD.search(data) is None
        ):
            # Some argument needs escaping (or checking): each on its own.
            data = ",".join([escape_app_arg(arg) for arg in args])
        words: tuple[str, ...] = (application, data) if data else (application,)
        self._exec_label = f"EXEC {application}"  # its round trip's label (ivr.agi.timings)
        reply = await self._ok("EXEC", *words, timeout=timeout)
        value = reply.value
        if value == -2:
            raise ApplicationNotFoundError(
                f"Asterisk has no application {application!r}; load its module in modules.conf",
                command="EXEC",
            )
        if value == -1:
            # -1 says nothing about the caller (Dial returns it when the caller
            # hangs up, AudioSocket when its socket times out on a live call):
            # learn which before anything a dead channel refuses is sent.
            await self.probe()
        return value if value is not None else 0

    async def set_variable(self, name: str, value: str) -> None:
        await self._ok("SET VARIABLE", self._name(name), value)

    async def get_variable(self, name: str) -> str | None:
        """The variable's value, or ``None`` when it is not set."""
        reply = await self._ok("GET VARIABLE", self._name(name))
        return reply.data if reply.value == 1 else None

    async def get_full_variable(self, expression: str, channel: str | None = None) -> str | None:
        """Expand ``expression`` (``${CALLERID(num)}``) on this channel or ``channel``.

        Never put caller-controlled text in ``expression``: Asterisk evaluates it.
        """
        args = (expression, channel) if channel else (expression,)
        reply = await self._ok("GET FULL VARIABLE", *args)
        return reply.data if reply.value == 1 else None

    async def verbose(self, message: str, level: int = 1) -> None:
        await self._ok("VERBOSE", Quoted(message), int(level))

    async def set_music(self, on: bool, music_class: str | None = None) -> None:
        args = ("on" if on else "off",) + ((music_class,) if music_class else ())
        await self._ok("SET MUSIC", *args)

    async def channel_status(self, channel: str | None = None) -> ChannelState:
        args = (channel,) if channel else ()
        reply = await self._ok("CHANNEL STATUS", *args)
        if reply.value is None or reply.value < 0:
            raise AgiError(f"no channel named {channel!r}", command="CHANNEL STATUS")
        return ChannelState(reply.value)

    async def noop(self, text: str = "") -> None:
        await self._ok("NOOP", *((text,) if text else ()))

    @staticmethod
    def _name(name: str) -> str:
        if name in _CHECKED_NAMES:
            return name
        if not _VARIABLE_NAME.fullmatch(name):
            raise UnsafeArgumentError(
                f"variable name {name!r}: use letters, digits, '_' and '.', or FUNC(args)"
            )
        if len(_CHECKED_NAMES) < _CHECKED_MAX:
            _CHECKED_NAMES.add(name)
        return name
