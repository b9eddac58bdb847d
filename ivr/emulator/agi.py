"""One emulated FastAGI session: Asterisk 22's side of a call.

It sends the environment block, reads one command line at a time, and
answers each as ``res/res_agi.c`` does: the reply shapes, the ``HANGUP``
notice, 511 on a dead channel, 510 and the 520 usage block. Blocking
commands (prompts, digit waits, recordings, Dial) take their time on the
call's :class:`~ivr.emulator.caller.Timeline`, where the caller's keys and
hang-up land.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import wave
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ivr.agi.protocol import encode_environment, split_command_line
from ivr.emulator.apps import Applications
from ivr.emulator.caller import Scheduled, Timeline
from ivr.emulator.sounds import SAMPLE_RATE, SoundCatalog
from ivr.emulator.usage import usage_reply

if TYPE_CHECKING:
    from ivr.emulator.audiosocket import AudioSocketRecord

__all__ = ["AgiSession", "Exchange", "SessionResult"]

DEAD_REPLY = b"511 Command Not Permitted on a dead channel or intercept routine\n"
UNKNOWN_REPLY = b"510 Invalid or unknown command\n"
FRAME = 160  # samples in 20 ms: Asterisk reports positions in whole frames
#: res_agi.c's command buffer: 8192 from Asterisk 22.6 / 21.11 / 20.16 on, 2048 before.
AGI_BUF_LEN = 8192
#: Asterisk 22.9 wrote the HANGUP notice about 40 ms after the reply of the command
#: the hang-up ended (run_agi() first reads the channel's queue dry), and answered
#: the next command no sooner than that after the notice (§8.1; measured again on
#: a 22.9.0 build: ``200 result=-1``, 40 ms, ``HANGUP`` with no command sent).
NOTICE_DELAY = 0.04
#: When the notice of a hang-up during a command is written: ``timed`` (as Asterisk
#: 22.9 does: NOTICE_DELAY after the reply, or as soon as the next command is read
#: if it comes first), ``next_command`` (only when the next command is read: an
#: engine that waits for the notice after a -1 waits for ever) or ``after_reply``
#: (at once, right behind the reply).
NOTICE_MODES = ("timed", "next_command", "after_reply")
#: Commands whose wait also watches the AGI socket (``agi->ctrl`` passed to
#: ast_waitstream_full, ast_waitfordigit_full, ast_say_*_full, ast_app_getdata_full
#: in res_agi.c): the engine closing it ends them at once. EXEC, RECORD FILE and
#: CONTROL STREAM FILE do not watch it and run to their end.
CTRL_WATCHED = (
    ("WAIT", "FOR", "DIGIT"),
    ("STREAM", "FILE"),
    ("GET", "OPTION"),
    ("GET", "DATA"),
    ("SAY", "NUMBER"),
    ("SAY", "DIGITS"),
    ("SAY", "ALPHA"),
    ("SAY", "PHONETIC"),
)


class ShowUsage(Exception):  # noqa: N818 - mirrors res_agi.c's RESULT_SHOWUSAGE
    """The handler's arguments are wrong: answer with the 520 usage block."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One command as sent by the engine and the bytes the emulator sent back."""

    sent: bytes
    received: bytes


@dataclass(slots=True)
class SessionResult:
    """What happened on the emulated call."""

    agistatus: str = "SUCCESS"
    exchanges: list[Exchange] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    played: list[str] = field(default_factory=list)
    dialled: list[str] = field(default_factory=list)
    hung_up: bool = False
    duration: float = 0.0
    #: Every AudioSocket session of the call: frames each way, with times.
    audiosockets: list[AudioSocketRecord] = field(default_factory=list)
    #: The command a closed AGI socket cut short (§8.6), if any.
    closed_mid_command: str | None = None
    #: False when the engine could not be reached at all (AGISTATUS=FAILURE at once).
    connected: bool = True

    @property
    def commands(self) -> list[str]:
        return [e.sent.decode("utf-8", "replace").rstrip("\n") for e in self.exchanges]


Handler = Callable[[list[str]], Awaitable[bytes]]


class AgiSession:
    """Plays Asterisk on one FastAGI connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        timeline: Timeline,
        env: Mapping[str, str],
        *,
        sounds: SoundCatalog,
        apps: Applications,
        variables: Mapping[str, str] | None = None,
        database: dict[tuple[str, str], str] | None = None,
        record_dir: Path | None = None,
        buffer_size: int = AGI_BUF_LEN,
        notice_delay: float = NOTICE_DELAY,
        notice: str = "timed",
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        #: Told of every command and its reply as it happens (``ivr call --engine``).
        self.on_exchange = on_exchange
        if notice not in NOTICE_MODES:
            raise ValueError(f"notice is one of {', '.join(NOTICE_MODES)}, not {notice!r}")
        #: When a hang-up during a command is told (NOTICE_MODES).
        self.notice = notice
        #: Loop time of the last notice: the next reply comes no sooner than
        #: ``notice_delay`` after it.
        self._noticed_at: float | None = None
        if buffer_size < 2:
            raise ValueError("buffer_size is AGI_BUF_LEN: 8192 (22.6+), 2048 before")
        self.reader = reader
        #: res_agi.c's AGI_BUF_LEN: fgets() takes at most this minus one byte.
        self.buffer_size = buffer_size
        #: How much later than usual the reply after a HANGUP notice comes (§8.1).
        self.notice_delay = notice_delay
        self.writer = writer
        self.timeline = timeline
        self.env = dict(env)
        self.sounds = sounds
        self.apps = apps
        self.result = SessionResult()
        self.vars = self.result.variables
        self.vars.update(variables or {})
        self.db = database if database is not None else {}
        #: Where RECORD FILE may write the caller's audio (None: nowhere).
        self.record_dir = record_dir
        self.dead = False
        self.state = 6 if self.env.get("agi_type") == "Local" else 4
        self._notice_owed = False
        self._pending = bytearray()
        self._eof = False
        #: A command failed on a live channel: AGISTATUS ends FAILURE (sticky).
        self._failed = False
        self._table: dict[tuple[str, ...], tuple[Handler, bool]] = {
            ("ANSWER",): (self._answer, False),
            ("HANGUP",): (self._hangup, False),
            ("STREAM", "FILE"): (self._stream_file, False),
            ("CONTROL", "STREAM", "FILE"): (self._control_stream_file, False),
            ("GET", "OPTION"): (self._get_option, False),
            ("GET", "DATA"): (self._get_data, False),
            ("WAIT", "FOR", "DIGIT"): (self._wait_for_digit, False),
            ("SAY", "DIGITS"): (self._say_digits, False),
            ("SAY", "NUMBER"): (self._say_number, False),
            ("SAY", "ALPHA"): (self._say_alpha, False),
            ("RECORD", "FILE"): (self._record_file, False),
            ("EXEC",): (self._exec, True),
            ("SET", "VARIABLE"): (self._set_variable, True),
            ("GET", "VARIABLE"): (self._get_variable, True),
            ("GET", "FULL", "VARIABLE"): (self._get_full_variable, True),
            ("CHANNEL", "STATUS"): (self._channel_status, False),
            ("VERBOSE",): (self._verbose, True),
            ("SET", "MUSIC"): (self._set_music, False),
            ("NOOP",): (self._noop, True),
            ("SET", "CONTEXT"): (self._set_dialplan("agi_context"), False),
            ("SET", "EXTENSION"): (self._set_dialplan("agi_extension"), False),
            ("SET", "PRIORITY"): (self._set_dialplan("agi_priority"), False),
            ("SET", "CALLERID"): (self._set_callerid, False),
            ("DATABASE", "GET"): (self._db_get, True),
            ("DATABASE", "PUT"): (self._db_put, True),
            ("DATABASE", "DEL"): (self._db_del, True),
            ("DATABASE", "DELTREE"): (self._db_deltree, True),
        }

    # ---------------------------------------------------------------- driver

    async def run(self) -> SessionResult:
        start = self.timeline.now()
        pbx = self.apps.pbx  # the emulated AMI, if any: the call's channel shows there
        if pbx is not None:
            pbx.agi_channel(self.env)
        self.writer.write(encode_environment(self.env))
        await self.writer.drain()
        try:
            while True:
                line = await self._read_command()
                if line is None:
                    break
                text = line.decode("utf-8", "replace")
                if text[:7].lower() == "failure":
                    self.result.agistatus = "FAILURE"
                    break
                if self._notice_owed:
                    # A hang-up during the last command, told with this command:
                    # the notice in a write of its own, then this command's reply
                    # (dead mode) some 40 ms later (§8.1: HANGUP, then
                    # ``200 result=1 (ANSWER)`` to GET VARIABLE DIALSTATUS).
                    await self._write_notice()
                if self._noticed_at is not None:
                    due = self._noticed_at + self.notice_delay
                    await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
                    self._noticed_at = None
                reply = await self._run_command(text.removesuffix("\n"))
                if reply is None:  # the engine closed the socket mid-command
                    break
                exchange = Exchange(line, reply)
                self.result.exchanges.append(exchange)
                if self.on_exchange is not None:
                    self.on_exchange(exchange)
                self.writer.write(reply)
                await self.writer.drain()
                if self._notice_owed and self.notice == "after_reply":
                    await self._write_notice()
        except (ConnectionError, OSError):
            pass
        finally:
            self.result.hung_up = self.dead
            if self._failed:
                self.result.agistatus = "FAILURE"
            elif self.dead and self.result.agistatus == "SUCCESS":
                self.result.agistatus = "HANGUP"
            self.result.duration = self.timeline.now() - start
            if pbx is not None:  # the emulated call ends with its AGI session
                chan = pbx.channels.get(self.env.get("agi_channel", ""))
                if chan is not None:
                    pbx.end_call(chan)
            with contextlib.suppress(ConnectionError, OSError):
                # run_agi() always writes a last HANGUP when the session ends.
                self.writer.write(b"HANGUP\n")
                self.writer.close()
                await self.writer.wait_closed()
        return self.result

    async def _write_notice(self) -> None:
        """The HANGUP notice, in a write of its own."""
        self._notice_owed = False
        self.writer.write(b"HANGUP\n")
        await self.writer.drain()
        self._noticed_at = asyncio.get_running_loop().time()

    async def _read_command(self) -> bytes | None:
        """Wait for the next line; a hang-up while idle sends ``HANGUP`` at once, and
        one during the last command NOTICE_DELAY after its reply (``timed``)."""
        reading = asyncio.ensure_future(self._fgets())
        try:
            if self._notice_owed and self.notice == "timed":
                # Whichever comes first: the delay, or the engine's next command.
                await asyncio.wait({reading}, timeout=self.notice_delay)
                await self._write_notice()
            while True:
                due = None if self.dead else self.timeline.next_hangup()
                wait = None
                if due is not None:
                    wait = max(0.0, (due - self.timeline.now()) / (self.timeline.speed or 1.0))
                done, _ = await asyncio.wait({reading}, timeout=wait)
                if done:
                    break
                event = await self.timeline.wait(0, wants_dtmf=False)
                if event is not None and event.kind == "hangup":
                    self._go_dead()
                    self._notice_owed = False
                    self.writer.write(b"HANGUP\n")
                    if self.result.agistatus == "SUCCESS":
                        self.result.agistatus = "HANGUP"
                    await self.writer.drain()
        except BaseException:
            reading.cancel()
            raise
        self.timeline.drop_until(self.timeline.now())
        line = reading.result()
        return line or None

    async def _run_command(self, line: str) -> bytes | None:
        """Run one command; ``None`` when the engine closed the socket meanwhile.

        A running STREAM FILE or WAIT FOR DIGIT also watches the AGI socket
        (``ast_waitstream_full`` / ``ast_waitfordigit_full`` get ``agi->ctrl``):
        when the engine goes away the command ends at once (§8.6), and the
        dialplan goes on with AGISTATUS=SUCCESS.
        """
        words = tuple(w.upper() for w in line.split()[:3])
        if not any(words[: len(verb)] == verb for verb in CTRL_WATCHED):
            return await self._dispatch(line)
        command = asyncio.ensure_future(self._dispatch(line))
        watcher = asyncio.ensure_future(self._watch_eof())
        try:
            await asyncio.wait({command, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            command.cancel()
            watcher.cancel()
            raise
        if command.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            return command.result()
        command.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await command
        self.result.closed_mid_command = line
        return None

    async def _watch_eof(self) -> None:
        """Return when the engine closes its end; bytes sent meanwhile wait as the
        next command (the engine keeps one command outstanding)."""
        while True:
            data = await self.reader.read(4096)
            if not data:
                self._eof = True
                return
            self._pending += data

    async def _fgets(self) -> bytes:
        """One command as run_agi() reads it: up to LF, or ``buffer_size - 1`` bytes.

        What does not fit is the next command: a longer line runs as two
        (AGI_BUF_LEN is 8192 from 22.6 / 21.11 / 20.16 on, 2048 before; §8.4).
        """
        buffer = self._pending
        limit = self.buffer_size - 1
        while True:
            end = buffer.find(b"\n", 0, limit)
            if end >= 0 or len(buffer) >= limit:
                size = end + 1 if end >= 0 else limit
                line = bytes(buffer[:size])
                del buffer[:size]
                return line
            if self._eof:
                data = b""
            else:
                data = await self.reader.read(4096)
            if not data:  # EOF: a partial line still runs first
                line = bytes(buffer)
                buffer.clear()
                return line
            buffer += data

    def _go_dead(self) -> None:
        if not self.dead:
            self.dead = True
            self.state = 0
            self._notice_owed = True

    async def _dispatch(self, line: str) -> bytes:
        argv = split_command_line(line)
        words = tuple(w.upper() for w in argv)
        for size in (3, 2, 1):
            entry = self._table.get(words[:size])
            if entry is not None:
                handler, dead_ok = entry
                break
        else:
            return UNKNOWN_REPLY
        if self.dead and not dead_ok:
            return DEAD_REPLY
        self.timeline.command_started(line)
        try:
            return await handler(argv)
        except ShowUsage:
            return usage_reply(" ".join(words[:size]))

    # ------------------------------------------------------------- waiting

    async def _play(self, name: str, escape: str, offset: int = 0) -> tuple[int, int]:
        """Play one file; return (result, endpos): digit code, 0 at the end, -1 on hang-up."""
        samples = self.sounds.samples(name, self.env.get("agi_language", "en"))
        if samples is None:
            return -1, 0
        self.result.played.append(name)
        started = self.timeline.now() - min(offset, samples) / SAMPLE_RATE
        while True:
            left = samples / SAMPLE_RATE - (self.timeline.now() - started)
            event = await self.timeline.wait(max(left, 0.0))
            endpos = min(samples, round((self.timeline.now() - started) * 50) * FRAME)
            if event is None:
                return 0, samples
            if event.kind == "hangup":
                self._go_dead()
                return -1, endpos
            self._keyed(event)
            if event.digit in escape:
                return ord(event.digit), endpos

    async def _digit(self, seconds: float | None) -> Scheduled | None:
        event = await self.timeline.wait(seconds)
        if event is not None and event.kind == "hangup":
            self._go_dead()
        elif event is not None:
            self._keyed(event)
        return event

    def _keyed(self, event: Scheduled) -> None:
        """A key the caller pressed shows on the AMI too (DTMFBegin/End, class dtmf)."""
        pbx = self.apps.pbx
        chan = pbx.channels.get(self.env.get("agi_channel", "")) if pbx is not None else None
        if pbx is not None and chan is not None and event.digit:
            pbx.dtmf(chan, event.digit)

    # ------------------------------------------------------------- commands

    async def _answer(self, argv: list[str]) -> bytes:
        self.state = 6  # handle_answer ignores extra arguments
        return b"200 result=0\n"

    async def _hangup(self, argv: list[str]) -> bytes:
        if len(argv) > 2:
            raise ShowUsage
        if len(argv) == 2 and argv[1] != self.env.get("agi_channel"):
            return b"200 result=-1\n"
        self._go_dead()
        return b"200 result=1\n"

    async def _stream_file(self, argv: list[str]) -> bytes:
        if len(argv) not in (4, 5) or (len(argv) == 5 and _int(argv[4]) is None):
            raise ShowUsage
        offset = (_int(argv[4]) or 0) if len(argv) == 5 else 0
        result, endpos = await self._play(argv[2], argv[3], offset)
        if result == -1 and not self.dead:
            self._failed = True  # a missing file is RESULT_FAILURE on a live channel
            endpos = offset
        self.vars["PLAYBACKSTATUS"] = "FAILED" if result else "SUCCESS"
        return f"200 result={result} endpos={endpos}\n".encode()

    async def _control_stream_file(self, argv: list[str]) -> bytes:
        if len(argv) < 5 or len(argv) > 10:
            raise ShowUsage
        name, stop = argv[3], argv[4]
        result, endpos = await self._play(name, stop)
        if result > 0:
            self.vars.update(CPLAYBACKSTATUS="USERSTOPPED", CPLAYBACKSTOPKEY=chr(result))
        else:
            self.vars["CPLAYBACKSTATUS"] = "ERROR" if result < 0 else "SUCCESS"
        # endpos is in ms here; -1 means the file played to its end (main/app.c).
        ms = endpos * 1000 // SAMPLE_RATE if result > 0 or self.dead else -1
        self.vars["CPLAYBACKOFFSET"] = str(ms)
        return f"200 result={result} endpos={ms}\n".encode()

    async def _get_option(self, argv: list[str]) -> bytes:
        if len(argv) not in (4, 5):
            raise ShowUsage
        escape = argv[3]
        result, endpos = await self._play(argv[2], escape)
        if result == -1 and not self.dead:
            self._failed = True
            endpos = 0
        elif result == 0:
            timeout = (_int(argv[4]) or 0) if len(argv) == 5 else 5000
            event = await self._digit(None if timeout < 0 else timeout / 1000)
            # Only a digit in the escape set counts; a hang-up here reads 0.
            if event is not None and event.kind == "dtmf" and event.digit in escape:
                result = ord(event.digit)
        return f"200 result={result} endpos={endpos}\n".encode()

    async def _get_data(self, argv: list[str]) -> bytes:
        if len(argv) < 3:
            raise ShowUsage
        timeout = (_int(argv[3]) or 0) if len(argv) > 3 else 0
        limit = (_int(argv[4]) or 0) if len(argv) > 4 else 1024
        # ast_app_getdata_full: 6 s for the first digit, 2 s between digits,
        # both replaced by the timeout when one is given; negative: forever.
        first: float | None = 6.0 if timeout == 0 else timeout / 1000
        between: float | None = 2.0 if timeout == 0 else timeout / 1000
        if timeout < 0:
            first = between = None
        if limit <= 0:
            return b"200 result=-1\n"
        result, _ = await self._play(argv[2], "0123456789*#ABCD")
        if result == -1:
            return b"200 result=-1\n"
        digits = chr(result) if result > 0 else ""
        while True:
            if digits == "#":
                return b"200 result=\n"
            if digits.endswith("#"):
                return f"200 result={digits[:-1]}\n".encode()
            if len(digits) >= limit:
                return f"200 result={digits}\n".encode()
            event = await self._digit(between if digits else first)
            if event is None:
                return f"200 result={digits} (timeout)\n".encode()
            if event.kind == "hangup":
                return b"200 result=-1\n"
            digits += event.digit

    async def _wait_for_digit(self, argv: list[str]) -> bytes:
        timeout = _int(argv[3]) if len(argv) == 4 else None
        if timeout is None:
            raise ShowUsage
        if timeout == 0:
            return b"200 result=0\n"
        event = await self._digit(None if timeout < 0 else timeout / 1000)
        if event is None:
            return b"200 result=0\n"
        if event.kind == "hangup":
            return b"200 result=-1\n"
        return f"200 result={ord(event.digit)}\n".encode()

    async def _say_files(self, files: list[str], escape: str) -> bytes:
        for name in files:
            result, _ = await self._play(name, escape)
            if result == -1 and not self.dead:
                self._failed = True
            if result != 0:
                return f"200 result={result}\n".encode()
        return b"200 result=0\n"

    async def _say_digits(self, argv: list[str]) -> bytes:
        if len(argv) != 4 or _int(argv[2]) is None:
            raise ShowUsage
        names = {"*": "digits/star", "#": "digits/pound", "-": "digits/minus"}
        files = [names.get(c, f"digits/{c}") for c in argv[2] if c.isdigit() or c in names]
        return await self._say_files(files, argv[3])

    async def _say_number(self, argv: list[str]) -> bytes:
        number = _int(argv[2]) if len(argv) in (4, 5) else None
        if number is None:
            raise ShowUsage
        return await self._say_files(_number_files(number), argv[3])

    async def _say_alpha(self, argv: list[str]) -> bytes:
        if len(argv) not in (4, 5) or (len(argv) == 5 and argv[4][:1] not in "aAlLnNuU"):
            raise ShowUsage
        files = [f"letters/{c.lower()}" if c.isalpha() else f"digits/{c}" for c in argv[2]]
        return await self._say_files(files, argv[3])

    async def _record_file(self, argv: list[str]) -> bytes:
        """RECORD FILE as handle_recordfile does it, on the caller's scripted audio."""
        limit_ms = _int(argv[5]) if len(argv) >= 6 else None
        if limit_ms is None:
            raise ShowUsage
        escape, options = argv[4], argv[6:9]
        offset = _int(argv[6]) if len(argv) > 6 else None
        silence_ms = next(
            ((_int(o[2:]) or 0) * 1000 for o in options if o.startswith("s=") and len(o) > 2), 0
        )
        beep = (len(argv) > 6 and offset is None and not argv[6].startswith("s=")) or (
            len(argv) > 7 and not argv[7].startswith("s=")
        )
        if beep:
            result, _ = await self._play("beep", escape)
            if result != 0:
                return f"200 result={result} (randomerror) endpos={offset or 0}\n".encode()
        take = Recording(self.timeline, limit_ms, silence_ms, offset or 0)
        try:
            while True:
                event = await self.timeline.wait(take.time_left())
                if event is None:
                    return (
                        f"200 result={take.ms_left()} (timeout) endpos={take.endpos()}\n".encode()
                    )
                if event.kind == "hangup":
                    self._go_dead()
                    return f"200 result=-1 (hangup) endpos={take.endpos()}\n".encode()
                self._keyed(event)
                if event.digit in escape:
                    # A stop key rewinds the last 200 ms (the key's own sound).
                    endpos = take.endpos(rewind_ms=200)
                    return f"200 result={ord(event.digit)} (dtmf) endpos={endpos}\n".encode()
        finally:
            if self.record_dir is not None and argv[3].lower() == "wav":
                take.write(self.record_dir, argv[2])

    async def _exec(self, argv: list[str]) -> bytes:
        if len(argv) < 2:
            raise ShowUsage
        app = self.apps.get(argv[1])
        if app is None:
            return b"200 result=-2\n"
        result = await app(self, argv[2] if len(argv) > 2 else "")
        reply = f"200 result={result}\n".encode()
        if result == 1:  # handle_exec passes 1 on as RESULT_SHOWUSAGE
            reply += usage_reply("EXEC")
        elif result == 2:
            self._failed = True
        return reply

    async def _set_variable(self, argv: list[str]) -> bytes:
        if len(argv) != 4:
            raise ShowUsage
        self.vars[argv[2]] = argv[3]
        pbx = self.apps.pbx
        if pbx is not None:
            # pbx_builtin_setvar_helper raises VarSet (class dialplan) for every set.
            chan = pbx.channels.get(self.env.get("agi_channel", ""))
            if chan is not None:
                pbx.varset(chan, argv[2], argv[3])
        return b"200 result=1\n"

    async def _get_variable(self, argv: list[str]) -> bytes:
        if len(argv) != 3:
            raise ShowUsage
        value = self.lookup(argv[2])
        if value is None:
            return b"200 result=0\n"
        value = value.encode()[:1023].decode(errors="ignore")  # a 1024-byte buffer
        return f"200 result=1 ({value})\n".encode()

    async def _get_full_variable(self, argv: list[str]) -> bytes:
        if len(argv) not in (4, 5):
            raise ShowUsage
        if len(argv) == 5 and argv[4] != self.env.get("agi_channel"):
            return b"200 result=0\n"
        value = re.sub(r"\$\{([^}]*)\}", lambda m: self.lookup(m.group(1)) or "", argv[3])
        return f"200 result=1 ({value})\n".encode()

    async def _channel_status(self, argv: list[str]) -> bytes:
        if len(argv) not in (2, 3):
            raise ShowUsage
        if len(argv) == 3 and argv[2] != self.env.get("agi_channel"):
            return b"200 result=-1\n"
        return f"200 result={self.state}\n".encode()

    async def _verbose(self, argv: list[str]) -> bytes:
        if len(argv) < 2:
            raise ShowUsage
        return b"200 result=1\n"

    async def _set_music(self, argv: list[str]) -> bytes:
        if len(argv) < 3:
            raise ShowUsage
        if argv[2][:2].lower() == "on":
            self.vars["__MUSIC"] = argv[3] if len(argv) > 3 else "default"
        elif argv[2][:3].lower() == "off":
            self.vars.pop("__MUSIC", None)
        return b"200 result=0\n"

    async def _noop(self, argv: list[str]) -> bytes:
        return b"200 result=0\n"

    def _set_dialplan(self, key: str) -> Handler:
        async def handler(argv: list[str]) -> bytes:
            if len(argv) != 3:
                raise ShowUsage
            self.env[key] = argv[2]
            return b"200 result=0\n"

        return handler

    async def _set_callerid(self, argv: list[str]) -> bytes:
        if len(argv) > 2:  # with no argument nothing is set, still result=1
            self.env["agi_callerid"] = argv[2]
        return b"200 result=1\n"

    async def _db_get(self, argv: list[str]) -> bytes:
        if len(argv) != 4:
            raise ShowUsage
        value = self.db.get((argv[2], argv[3]))
        return b"200 result=0\n" if value is None else f"200 result=1 ({value})\n".encode()

    async def _db_put(self, argv: list[str]) -> bytes:
        if len(argv) != 5:
            raise ShowUsage
        self.db[(argv[2], argv[3])] = argv[4]
        return b"200 result=1\n"

    async def _db_del(self, argv: list[str]) -> bytes:
        if len(argv) != 4:
            raise ShowUsage
        return b"200 result=1\n" if self.db.pop((argv[2], argv[3]), None) else b"200 result=0\n"

    async def _db_deltree(self, argv: list[str]) -> bytes:
        if len(argv) not in (3, 4):
            raise ShowUsage
        prefix = argv[3] if len(argv) == 4 else ""
        doomed = [k for k in self.db if k[0] == argv[2] and k[1].startswith(prefix)]
        for key in doomed:
            del self.db[key]
        # handle_dbdeltree answers '0' when something was deleted (inverted in res_agi.c).
        return b"200 result=0\n" if doomed else b"200 result=1\n"

    # ------------------------------------------------------------ variables

    def lookup(self, name: str) -> str | None:
        """A variable or one of the dialplan functions the emulator knows."""
        functions = {
            "CALLERID(num)": self.env.get("agi_callerid"),
            "CALLERID(name)": self.env.get("agi_calleridname"),
            "CALLERID(all)": (
                f'"{self.env.get("agi_calleridname")}" <{self.env.get("agi_callerid")}>'
            ),
            "CHANNEL": self.env.get("agi_channel"),
            "CHANNEL(name)": self.env.get("agi_channel"),
            "CHANNEL(language)": self.env.get("agi_language"),
            "UNIQUEID": self.env.get("agi_uniqueid"),
            "EXTEN": self.env.get("agi_extension"),
            "CONTEXT": self.env.get("agi_context"),
        }
        if name in self.vars:
            return self.vars[name]
        return functions.get(name)


def _int(text: str) -> int | None:
    """sscanf("%30d"): the leading integer of ``text``, or None."""
    match = re.match(r"\s*[-+]?\d+", text)
    return int(match.group()) if match else None


class Recording:
    """The file RECORD FILE writes, measured on the caller's scripted audio.

    A caller whose script has ``Talk`` on a continuous phone (``dtx`` off)
    sends frames all the time, silence between words included; on a phone
    with silence suppression (``dtx``, the default) frames come only while a
    ``Talk`` sounds, so the file holds the talk alone, with no gaps, and
    silence detection (which counts silent *frames*) never fires. A caller
    without ``Talk`` sends none, like the Local channels of the transcripts.
    """

    def __init__(self, timeline: Timeline, limit_ms: int, silence_ms: int, offset: int) -> None:
        self.timeline = timeline
        self.start = timeline.now()
        self.limit_ms = limit_ms
        self.silence_ms = silence_ms
        self.offset = offset
        self.frames = bool(timeline.talks)
        #: Frames only while the caller talks (silence suppression).
        self.dtx = timeline.dtx
        self.stopped_by_silence = False

    def _talk_spans(self, end: float) -> list[tuple[float, float]]:
        """(start, end) of the caller's talk inside the recording's window, in order."""
        spans = []
        for talk in sorted(self.timeline.talks, key=lambda t: t.at):
            begin, stop = max(talk.at, self.start), min(talk.at + talk.seconds, end)
            if stop > begin:
                spans.append((begin, stop))
        return spans

    def _silence_stop(self) -> float | None:
        if not (self.frames and self.silence_ms) or self.dtx:
            return None
        # ast_dsp_silence counts silent 20 ms frames; the recording stops once
        # the run is longer than the limit, from the start or the last word.
        limit = self.silence_ms / 1000
        quiet_from = self.start
        for talk in sorted(self.timeline.talks, key=lambda t: t.at):
            begin, end = max(talk.at, self.start), talk.at + talk.seconds
            if end <= self.start:
                continue
            if begin - quiet_from > limit:
                break
            quiet_from = max(quiet_from, end)
        return quiet_from + limit + 0.02

    def time_left(self) -> float | None:
        ends = []
        if self.limit_ms >= 0:
            ends.append(self.start + self.limit_ms / 1000)
        stop = self._silence_stop()
        if stop is not None:
            ends.append(stop)
        if not ends:
            return None
        end = min(ends)
        self.stopped_by_silence = stop is not None and end == stop
        return max(0.0, end - self.timeline.now())

    def ms_left(self) -> int:
        """What the last ast_waitfor() returned: 0 when no frame came in the last wait."""
        if not self.stopped_by_silence or self.limit_ms < 0:
            return 0
        elapsed = round((self.timeline.now() - self.start) * 1000)
        return max(0, self.limit_ms - elapsed)

    def write(self, folder: Path, name: str) -> None:
        """Write what was heard, as Asterisk writes ``name.wav``: the caller's talk
        that fell in the window, silence around it (only under ``folder``).

        handle_recordfile opens the file (ast_writefile) before it reads a
        frame: a caller who sends none (a Local channel, a DTX phone that hangs
        up in silence) leaves a 44-byte header-only WAV behind."""
        # Absolute names are written where they say (inside ``folder`` only: the
        # emulator writes nowhere else); relative ones under it, like Asterisk's
        # recordings directory.
        target = Path(name) if name.startswith("/") else folder / name
        target = target.with_name(target.name + ".wav")
        if folder.resolve() not in target.resolve().parents:
            return
        end = self.timeline.now()
        pcm = self._talk_only(end) if self.dtx else self._continuous(end)
        target.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(target), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(bytes(pcm))

    def _talk_only(self, end: float) -> bytearray:
        """What a silence-suppressing phone sent: each talk's frames, back to back."""
        pcm = bytearray()
        for talk in sorted(self.timeline.talks, key=lambda t: t.at):
            begin, stop = max(talk.at, self.start), min(talk.at + talk.seconds, end)
            if stop <= begin:
                continue
            first = round((begin - talk.at) * SAMPLE_RATE) * 2
            size = round((stop - begin) * SAMPLE_RATE) * 2
            chunk = talk.audio[first : first + size]
            pcm += chunk + bytes(size - len(chunk))
        return pcm

    def _continuous(self, end: float) -> bytearray:
        """What a continuous phone sent: the whole window, the talk where it fell."""
        pcm = bytearray(round((end - self.start) * SAMPLE_RATE) * 2 if self.frames else 0)
        for talk in self.timeline.talks:
            if not talk.audio:
                continue
            begin = round((talk.at - self.start) * SAMPLE_RATE) * 2
            chunk = talk.audio[max(0, -begin) :]
            begin = max(0, begin)
            chunk = chunk[: max(0, len(pcm) - begin)]
            pcm[begin : begin + len(chunk)] = chunk
        return pcm

    def endpos(self, rewind_ms: int = 0) -> int:
        if not self.frames:
            return self.offset
        if self.dtx:
            spans = self._talk_spans(self.timeline.now())
            written = sum(round((stop - begin) * 50) * FRAME for begin, stop in spans)
            return self.offset + max(0, written - rewind_ms * SAMPLE_RATE // 1000)
        written = round((self.timeline.now() - self.start) * 50) * FRAME
        if self.stopped_by_silence:
            rewind_ms += self.silence_ms - 1000
        return self.offset + max(0, written - rewind_ms * SAMPLE_RATE // 1000)


def _number_files(number: int) -> list[str]:
    """The prompts ``SAY NUMBER`` plays: say.c's get_number_str_en (22.9.0), which every
    language without a syntax of its own also takes (Korean among them)."""
    if number == 0:
        return ["digits/0"]
    files: list[str] = []
    if number < 0:
        files.append("digits/minus")
        number = 0 if number == -(2**31) else -number
    for size, word in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if number >= size:
            if number >= 2**31 - 1:
                return files  # "Number is too big for me": what was built so far
            files += [*_number_files(number // size), f"digits/{word}"]
            number %= size
    if number >= 100:
        files += [f"digits/{number // 100}", "digits/hundred"]
        number %= 100
    if number >= 20:
        files.append(f"digits/{number - number % 10}")
        number %= 10
    if number:
        files.append(f"digits/{number}")
    return files
