"""Dialplan applications the emulated Asterisk runs for ``EXEC``.

Each returns what the application returns in Asterisk (the AGI result):
``Dial`` sets ``DIALSTATUS`` and returns -1 when an answered call ends
without the ``g`` option (transcript ``dial``), ``AudioSocket`` connects to
the engine and streams frames, unknown applications are absent (-2).
When the emulator runs an AMI server (``pbx`` set), ``Dial`` also shows on
the AMI as Asterisk shows it: the agent leg's Newchannel and DialBegin, its
DialEnd with the DIALSTATUS, BridgeEnter on answer, its Hangup at the end.
``MixMonitor`` writes real WAV files of an answered Dial: what the caller said
(their ``Talk`` actions) as the read leg ``r()``, what the agent said
(``DialOutcome.says``) as the write leg ``t()``, and their mix.
"""

from __future__ import annotations

import array
import asyncio
import itertools
import sys
import wave
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ivr.emulator.audiosocket import audiosocket_app
from ivr.emulator.caller import DialOutcome, Scheduled

if TYPE_CHECKING:
    from ivr.emulator.agi import AgiSession
    from ivr.emulator.ami import EmuChannel, Pbx

__all__ = ["Applications"]

App = Callable[["AgiSession", str], Awaitable[int]]


def split_app_args(data: str) -> list[str]:
    """Split application data as ``__ast_app_separate_args`` (main/app.c) does.

    ``,`` separates outside ``()``, ``[]`` and quotes; parentheses and
    brackets count even inside quotes and are kept; ``"`` is removed; a
    backslash is removed and the next character taken literally.
    """
    args: list[str] = []
    current: list[str] = []
    paren = bracket = 0
    quoted = escaped = False
    for char in data:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if char == "\\":
            escaped = True
            continue
        if char == '"':
            quoted = not quoted
            continue
        if char == "," and not (paren or bracket or quoted):
            args.append("".join(current))
            current = []
            continue
        if char == "(":
            paren += 1
        elif char == ")" and paren:
            paren -= 1
        elif char == "[":
            bracket += 1
        elif char == "]" and bracket:
            bracket -= 1
        current.append(char)
    args.append("".join(current))
    return args


class Applications:
    """The applications one emulated Asterisk knows; extend with :meth:`add`."""

    def __init__(
        self,
        dial: Mapping[str, DialOutcome] | None = None,
        default_dial: DialOutcome | None = None,
        pbx: Pbx | None = None,
    ) -> None:
        #: The emulated AMI's channels and endpoints, when there is an AMI server.
        self.pbx = pbx
        self.dial = dict(dial or {})
        self.default_dial = default_dial or DialOutcome()
        #: Running MixMonitors, by AGI session.
        self._monitors: dict[int, _Monitor] = {}
        self._apps: dict[str, App] = {
            "answer": _answer,
            "playback": _playback,
            "background": _playback,
            "wait": _wait,
            "noop": _zero,
            "verbose": _zero,
            "set": _set,
            "startmusiconhold": _zero,
            "stopmusiconhold": _zero,
            "musiconhold": _wait,
            "hangup": _hangup,
            "dial": self._dial,
            "audiosocket": audiosocket_app,
            "voicemail": _voicemail,
            "queue": _zero,
            "chanspy": _zero,
            "mixmonitor": self._mixmonitor,
            "stopmixmonitor": self._stop_mixmonitor,
            "senddtmf": _zero,
            "progress": _zero,
            "ringing": _zero,
        }

    def get(self, name: str) -> App | None:
        return self._apps.get(name.lower())

    def add(self, name: str, app: App) -> None:
        self._apps[name.lower()] = app

    async def _mixmonitor(self, session: AgiSession, data: str) -> int:
        """app_mixmonitor.c's mixmonitor_exec: ``file.ext,options``; -1 without a file
        or ``r()``/``t()``; ``MIXMONITOR_FILENAME`` set (empty without a mixed file),
        ``i(VAR)`` given the instance's id; the files created at once, each folder made."""
        args = split_app_args(data)
        options = _options(args[1] if len(args) > 1 else "")
        mix = _monitor_path(args[0])
        read, written = _monitor_path(options.get("r", "")), _monitor_path(options.get("t", ""))
        if not (mix or read or written):
            return -1
        session.vars["MIXMONITOR_FILENAME"] = str(mix or "")
        monitor = _Monitor(mix, read, written, "b" in options, session.timeline.now())
        if "i" in options:
            session.vars[options["i"]] = monitor.id
        monitor.write([], [], 0.0)
        self._monitors[id(session)] = monitor
        return 0

    async def _stop_mixmonitor(self, session: AgiSession, data: str) -> int:
        self._monitors.pop(id(session), None)
        return 0

    def _record(self, session: AgiSession, outcome: DialOutcome, answered: float) -> None:
        """The answered call's audio, into the session's MixMonitor files, if any."""
        monitor = self._monitors.get(id(session))
        if monitor is None:
            return
        begin = answered if monitor.bridged_only else monitor.started
        end = session.timeline.now()
        talks = [(t.at - begin, t.audio) for t in session.timeline.talks if begin <= t.at < end]
        agent = [(answered - begin + outcome.says_at, outcome.says)] if outcome.says else []
        monitor.write(talks, agent, end - begin)

    def outcome(self, endpoint: str) -> DialOutcome:
        return self.dial.get(endpoint, self.default_dial)

    async def _dial(self, session: AgiSession, data: str) -> int:
        args = split_app_args(data)
        targets = args[0].split("&")
        timeout = float(args[1]) if len(args) > 1 and args[1].strip() else None
        options = args[2] if len(args) > 2 else ""
        session.result.dialled.append(args[0])
        outcome = self.outcome(targets[0])
        pbx = self.pbx
        if pbx is not None and pbx.unreachable(targets[0]):
            outcome = DialOutcome("CHANUNAVAIL", ring=0.0)
        ring = outcome.ring if outcome.status != "NOANSWER" else (timeout or 60.0)
        if outcome.status == "ANSWER" and timeout is not None and outcome.ring > timeout:
            outcome, ring = DialOutcome("NOANSWER"), timeout
        caller = leg = None
        if pbx is not None:
            caller = pbx.agi_channel(session.env)
            leg = pbx.begin_dial(
                caller, targets[0], args[0], ringing=outcome.status != "CHANUNAVAIL"
            )
        event, taken_back = await _ring(session, ring, leg)
        if taken_back and leg is not None:
            # The ringing leg was hung up (AMI Hangup: a forced logout): app_dial's
            # handle_cause counts nothing for NORMAL_CLEARING, so "No one is available
            # to answer": DialEnd and DIALSTATUS NOANSWER, and Dial returns 0.
            if pbx is not None:
                pbx.dial_end(caller, leg, "NOANSWER")
            session.vars["DIALSTATUS"] = "NOANSWER"
            return 0
        if event is not None:  # the caller hung up while it rang
            if pbx is not None and leg is not None:
                pbx.finish_dial(caller, leg, "CANCEL")
            session._go_dead()
            session.vars["DIALSTATUS"] = "CANCEL"
            return -1
        session.vars["DIALSTATUS"] = outcome.status
        answered = pbx.finish_dial(caller, leg, outcome.status) if pbx and leg else None
        if outcome.status != "ANSWER":
            return 0
        session.vars["ANSWEREDTIME"] = str(int(outcome.talk))
        answered_at = session.timeline.now()
        event = await session.timeline.wait(outcome.talk, wants_dtmf=False)
        self._record(session, outcome, answered_at)
        if event is not None:
            if pbx is not None and caller is not None:
                pbx.end_call(caller)  # the caller leaves the bridge first
            if pbx is not None and answered is not None:
                pbx.end_call(answered)
            session._go_dead()
            return -1
        if pbx is not None and answered is not None:
            pbx.end_call(answered)  # the agent hangs up
            if caller is not None:
                pbx.unbridge(caller)
        # app_dial returns -1 after a bridged call unless 'g' asks to go on.
        return 0 if "g" in options else -1


_MONITOR_IDS = itertools.count(1)
#: ast_config_AST_MONITOR_DIR: where a relative MixMonitor file name goes.
MONITOR_DIR = Path("/var/spool/asterisk/monitor")
_RATE = 8000


def _options(text: str) -> dict[str, str]:
    """ast_app_parse_options: letters, some with ``(argument)``."""
    found: dict[str, str] = {}
    index = 0
    while index < len(text):
        letter = text[index]
        index += 1
        argument = ""
        if index < len(text) and text[index] == "(":
            close = text.find(")", index)
            close = len(text) if close < 0 else close
            argument, index = text[index + 1 : close], close + 1
        found[letter] = argument
    return found


def _monitor_path(name: str) -> Path | None:
    """filename_parse: absolute as given, else under the monitor folder; .wav49 is .WAV."""
    if not name:
        return None
    path = Path(name) if name.startswith("/") else MONITOR_DIR / name
    return path.with_suffix(".WAV") if path.suffix == ".wav49" else path


@dataclass(slots=True)
class _Monitor:
    mix: Path | None
    read: Path | None
    written: Path | None
    bridged_only: bool
    started: float
    id: str = ""

    def __post_init__(self) -> None:
        self.id = f"0x{next(_MONITOR_IDS):012x}"

    def write(
        self, talks: list[tuple[float, bytes]], agent: list[tuple[float, bytes]], seconds: float
    ) -> None:
        """Each leg as 8 kHz 16-bit WAV, ``seconds`` long (the two legs kept in step, as
        without option ``n``), and their sum."""
        read, write = _track(talks, seconds), _track(agent, seconds)
        mixed = array.array(
            "h", (max(-32768, min(32767, a + b)) for a, b in zip(read, write, strict=True))
        )
        for path, samples in ((self.read, read), (self.written, write), (self.mix, mixed)):
            if path is not None:
                _write_wav(path, samples)


def _track(pieces: list[tuple[float, bytes]], seconds: float) -> array.array[int]:
    track = array.array("h", bytes(2 * max(0, round(seconds * _RATE))))
    for offset, audio in pieces:
        samples = array.array("h")
        samples.frombytes(audio[: len(audio) // 2 * 2])
        if sys.byteorder == "big":
            samples.byteswap()
        start = max(0, round(offset * _RATE))
        room = max(0, len(track) - start)
        track[start : start + min(room, len(samples))] = samples[:room]
    return track


def _write_wav(path: Path, samples: array.array[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = samples if sys.byteorder == "little" else array.array("h", samples)
    if sys.byteorder == "big":
        data.byteswap()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(_RATE)
        wav.writeframes(data.tobytes())


async def _ring(
    session: AgiSession, seconds: float, leg: EmuChannel | None
) -> tuple[Scheduled | None, bool]:
    """Let the agent's phone ring: (the caller's hang-up, if any; True when the ringing
    leg itself was hung up meanwhile, from the AMI)."""
    ringing = asyncio.ensure_future(session.timeline.wait(seconds, wants_dtmf=False))
    if leg is None:
        return await ringing, False
    gone = asyncio.ensure_future(leg.hungup.wait())
    try:
        await asyncio.wait({ringing, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (ringing, gone):
            if not task.done():
                task.cancel()
    if ringing.done() and not ringing.cancelled():
        return ringing.result(), False
    return None, True


async def _zero(session: AgiSession, data: str) -> int:
    return 0


#: VoiceMail's longest message (voicemail.conf ``maxmessage``, 300 s by default).
VOICEMAIL_MAX = 300.0


async def _voicemail(session: AgiSession, data: str) -> int:
    """The caller hears the greeting, leaves a message and hangs up: app_voicemail sets
    VMSTATUS=SUCCESS and returns -1 then, as on any hang-up. A greeting Asterisk cannot
    find (a system without its sound files: ``File vm-intro does not exist`` on a real
    22.9.0) fails it on a live channel: VMSTATUS=FAILED and -1 (so -1 alone never says
    whether the caller is still there)."""
    if session.sounds.samples("vm-intro", session.env.get("agi_language", "en")) is None:
        session.vars["VMSTATUS"] = "FAILED"
        return -1
    event = await session.timeline.wait(VOICEMAIL_MAX, wants_dtmf=False)
    session.vars["VMSTATUS"] = "SUCCESS"
    if event is not None:
        session._go_dead()
        return -1
    return 0


async def _answer(session: AgiSession, data: str) -> int:
    session.state = 6
    return 0


async def _hangup(session: AgiSession, data: str) -> int:
    session._go_dead()
    return -1


async def _set(session: AgiSession, data: str) -> int:
    name, _, value = data.partition("=")
    session.vars[name] = value
    return 0


async def _wait(session: AgiSession, data: str) -> int:
    seconds = (
        float(data.split(",", maxsplit=1)[0] or 0) if data.replace(".", "", 1).isdigit() else 0.0
    )
    event = await session.timeline.wait(seconds, wants_dtmf=False)
    if event is not None:
        session._go_dead()
        return -1
    return 0


async def _playback(session: AgiSession, data: str) -> int:
    files = split_app_args(data)[0].split("&")
    # Playback returns 0 even when a file is missing or the channel is gone
    # (app_playback.c; transcript 'dead'); PLAYBACKSTATUS tells what happened.
    status = "FAILED" if session.dead else "SUCCESS"
    for name in files if not session.dead else []:
        result, _ = await session._play(name, "")
        if result == -1:
            status = "FAILED"
            break
    session.vars["PLAYBACKSTATUS"] = status
    return 0
