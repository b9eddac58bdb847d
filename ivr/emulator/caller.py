"""What the emulated caller does, and when: keys, talk, hang-up, Dial outcomes.

A caller script is a list of actions. Each happens at an absolute time from
the start of the call (``at=``), or ``after`` seconds into the ``nth``
command whose line starts with ``on`` (``Press("2", on="STREAM FILE",
after=1.7)``). The :class:`Timeline` runs them on a clock that either skips
the waits of blocking commands (fast, for tests and load) or runs in real
time (for ``ivr call``). Its caller's phone uses silence suppression by
default (``dtx``): audio frames only while a ``Talk`` sounds, none in
silence, as a phone with DTX or an Asterisk Local channel sends them.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import functools
import heapq
import io
import itertools
import re
import shutil
import subprocess
import sys
import time
import wave
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Action",
    "DialOutcome",
    "Hangup",
    "Keys",
    "Press",
    "Talk",
    "Timeline",
    "Trigger",
    "say",
    "synthesize",
]


@dataclass(frozen=True, slots=True)
class Trigger:
    """When an action happens: ``at`` seconds into the call, or relative to a command."""

    at: float | None = None
    on: str | None = None
    nth: int = 1
    after: float = 0.0

    def matches(self, line: str) -> bool:
        assert self.on is not None
        return line.upper().startswith(self.on.upper()) or bool(
            re.fullmatch(self.on, line, flags=re.IGNORECASE)
        )


@dataclass(frozen=True, slots=True)
class Press:
    """The caller presses ``digits`` (one every ``gap`` seconds)."""

    digits: str
    at: float | None = None
    on: str | None = None
    nth: int = 1
    after: float = 0.0
    gap: float = 0.25

    @property
    def trigger(self) -> Trigger:
        return Trigger(self.at, self.on, self.nth, self.after)


@dataclass(frozen=True, slots=True)
class Hangup:
    """The caller hangs up."""

    at: float | None = None
    on: str | None = None
    nth: int = 1
    after: float = 0.0

    @property
    def trigger(self) -> Trigger:
        return Trigger(self.at, self.on, self.nth, self.after)


@dataclass(frozen=True, slots=True)
class Talk:
    """The caller speaks for ``seconds`` (``audio``: signed linear 8 kHz, optional).

    Over AudioSocket the talk is sent as 20 ms frames from its first frame
    boundary on: ``audio`` (silence once it runs out), or a voiced tone
    when there is none. :func:`say` makes one from text.
    """

    seconds: float
    at: float | None = None
    on: str | None = None
    nth: int = 1
    after: float = 0.0
    audio: bytes = b""

    @property
    def trigger(self) -> Trigger:
        return Trigger(self.at, self.on, self.nth, self.after)


@dataclass(frozen=True, slots=True)
class Keys:
    """The caller presses ``digits`` the next time the call asks for input.

    Input means a prompt that keys can stop (``STREAM FILE`` with escape
    digits), ``WAIT FOR DIGIT`` of a second or more (a shorter wait, like
    the one that takes a stray ``#``, is not asking), ``GET DATA`` or
    ``GET OPTION``. ``Keys``
    steps are played in order, each once the previous one's keys are all
    pressed: a script of what the caller answers, whatever the timing.
    """

    digits: str
    after: float = 0.3
    gap: float = 0.25
    hangup: bool = False
    #: Or the caller speaks this (signed linear 8 kHz): a flow test's ``say`` step.
    audio: bytes = b""


Action = Press | Hangup | Talk | Keys
_INPUT = re.compile(
    r'^(?:STREAM FILE \S+ "?[0-9*#A-D]|WAIT FOR DIGIT (?:-1|\d{4,})'
    r"|GET DATA|GET OPTION|CONTROL STREAM FILE|EXEC AUDIOSOCKET )",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class DialOutcome:
    """What happens when the engine dials an agent's endpoint.

    ``status`` is the DIALSTATUS Asterisk sets; ``ring`` the seconds before
    the outcome; ``talk`` how long an answered call lasts before the agent
    hangs up.
    """

    status: Literal["ANSWER", "NOANSWER", "BUSY", "CHANUNAVAIL", "CONGESTION"] = "ANSWER"
    ring: float = 1.0
    talk: float = 5.0
    #: What the agent says from ``says_at`` seconds after the answer (signed linear
    #: 8 kHz, e.g. :func:`synthesize`): what a MixMonitor on the call records as sent.
    says: bytes = b""
    says_at: float = 0.5


@dataclass(order=True, slots=True)
class Scheduled:
    at: float
    seq: int
    kind: Literal["dtmf", "hangup", "talk"] = field(compare=False)
    digit: str = field(default="", compare=False)
    seconds: float = field(default=0.0, compare=False)
    audio: bytes = field(default=b"", compare=False)


class Timeline:
    """The call's clock and the caller's pending events.

    In fast mode (``speed=None``) a wait for a blocking command jumps ahead
    instead of sleeping, so a 6 s ``WAIT FOR DIGIT`` costs nothing; time
    spent by the engine between commands still passes as on a real call.

    ``dtx`` is the caller's phone: True (the default, the worst real case)
    sends audio frames only while a ``Talk`` sounds (silence suppression; an
    Asterisk Local channel in ``Wait()`` does the same), False sends a frame
    every 20 ms, silence included.
    """

    def __init__(
        self, actions: list[Action], *, speed: float | None = None, dtx: bool = True
    ) -> None:
        self.speed = speed
        self.dtx = dtx
        self._t0 = time.monotonic()
        self._skipped = 0.0
        self._queue: list[Scheduled] = []
        self._seq = itertools.count()
        self._relative: list[tuple[Action, int]] = []
        self._seen: dict[int, int] = {}
        self._woken = asyncio.Event()
        self.talks: list[Scheduled] = []
        self._keys = [a for a in actions if isinstance(a, Keys)]
        self._keys_due = 0.0
        for action in actions:
            if isinstance(action, Keys):
                continue
            trig = action.trigger
            if trig.on is None:
                self._schedule(action, trig.at or 0.0)
            else:
                self._relative.append((action, 0))

    def now(self) -> float:
        scale = self.speed or 1.0
        return (time.monotonic() - self._t0) * scale + self._skipped

    def _push(self, at: float, kind: Literal["dtmf", "hangup", "talk"], **extra: object) -> None:
        item = Scheduled(at, next(self._seq), kind, **extra)  # type: ignore[arg-type]
        if kind == "talk":
            self.talks.append(item)
            return
        heapq.heappush(self._queue, item)
        self._woken.set()

    @property
    def keys_left(self) -> int:
        """``Keys`` steps the call never asked for."""
        return len(self._keys)

    def _schedule(self, action: Action, at: float) -> None:
        if isinstance(action, Keys):
            return
        if isinstance(action, Press):
            for i, digit in enumerate(action.digits):
                self._push(at + i * action.gap, "dtmf", digit=digit)
        elif isinstance(action, Hangup):
            self._push(at, "hangup")
        else:
            self._push(at, "talk", seconds=action.seconds, audio=action.audio)

    def command_started(self, line: str) -> None:
        """Arm the actions tied to this command line."""
        if self._keys and _INPUT.match(line) and self.now() >= self._keys_due:
            step = self._keys.pop(0)
            at = self.now() + step.after
            for i, digit in enumerate(step.digits):
                self._push(at + i * step.gap, "dtmf", digit=digit)
            self._keys_due = at + max(len(step.digits) - 1, 0) * step.gap
            if step.audio:
                seconds = len(step.audio) / 16000
                self._push(at, "talk", seconds=seconds, audio=step.audio)
                self._keys_due = at + seconds
            if step.hangup:
                self._push(self._keys_due, "hangup")
        for index, (action, seen) in enumerate(self._relative):
            if isinstance(action, Keys):
                continue
            trig = action.trigger
            if seen < trig.nth and trig.matches(line):
                self._relative[index] = (action, seen + 1)
                if seen + 1 == trig.nth:
                    self._schedule(action, self.now() + trig.after)

    def inject(self, kind: Literal["dtmf", "hangup"], digit: str = "", delay: float = 0.0) -> None:
        """A live event (``ivr call``: a key typed now, or ``delay`` seconds from now)."""
        self._push(self.now() + delay, kind, digit=digit)

    def inject_talk(self, audio: bytes, delay: float = 0.0) -> None:
        """The caller speaks now (``ivr call``: a line typed as ``say ...``)."""
        self._push(self.now() + delay, "talk", seconds=len(audio) / 16000, audio=audio)

    def advance_to(self, moment: float) -> None:
        """Fast mode: move the clock on to ``moment`` (an audio stream's own time)."""
        if self.speed is None:
            self._skipped += max(0.0, moment - self.now())

    def pop_due(self, moment: float) -> Scheduled | None:
        """The next key or hang-up due by ``moment``, without waiting (AudioSocket frames)."""
        if self._queue and self._queue[0].at <= moment:
            return heapq.heappop(self._queue)
        return None

    def next_hangup(self) -> float | None:
        times = [e.at for e in self._queue if e.kind == "hangup"]
        return min(times) if times else None

    def drop_until(self, moment: float) -> None:
        """Frames that arrive while no command reads the channel are lost (res_agi.c loop)."""
        while self._queue and self._queue[0].at <= moment and self._queue[0].kind == "dtmf":
            heapq.heappop(self._queue)

    async def wait(self, seconds: float | None, wants_dtmf: bool = True) -> Scheduled | None:
        """Let up to ``seconds`` pass (``None``: forever); stop early on a hang-up or DTMF.

        Returns the event that stopped the wait, or ``None`` when the time ran
        out. With ``wants_dtmf`` false, digits in the window are consumed
        unheard (a prompt that is not interruptible).
        """
        start = self.now()
        deadline = None if seconds is None else start + seconds
        while True:
            while self._queue and (deadline is None or self._queue[0].at <= deadline):
                due = self._queue[0]
                if due.at > self.now():
                    break
                heapq.heappop(self._queue)
                if due.kind == "hangup" or wants_dtmf:
                    return due
            head = self._queue[0] if self._queue else None
            target = (
                deadline
                if head is None
                else (head.at if deadline is None else min(head.at, deadline))
            )
            if target is None:
                self._woken.clear()
                await self._woken.wait()
                continue
            remaining = target - self.now()
            if remaining <= 0:
                if head is None or (deadline is not None and head.at > deadline):
                    return None
                continue
            if self.speed is None:
                self._skipped += remaining
                continue
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), remaining / self.speed)


@functools.lru_cache(maxsize=64)
def synthesize(text: str, language: str = "ko", voice: str | None = None, rate: int = 165) -> bytes:
    """``text`` spoken by espeak-ng, as 8 kHz signed linear (little-endian) bytes.

    Blocking (a subprocess), for building caller scripts before a call;
    cached, so a script that says the same words twice pays once.
    """
    from speech.tts import SAMPLE_RATE, TtsError, resample

    executable = shutil.which("espeak-ng")
    if executable is None:
        raise TtsError("espeak-ng is not installed; install it (Debian: apt-get install espeak-ng)")
    done = subprocess.run(  # noqa: S603 - fixed program, text on stdin
        [executable, "-v", voice or language, "-s", str(rate), "--stdout", "--stdin"],
        input=text.encode("utf-8"),
        capture_output=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        raise TtsError(f"espeak-ng could not speak with voice {voice or language!r}: {message}")
    with wave.open(io.BytesIO(done.stdout)) as wav:
        # --stdout cannot seek back: the header's length is a placeholder.
        pcm, source_rate = wav.readframes(wav.getnframes()), wav.getframerate()
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    out = resample(samples, source_rate, SAMPLE_RATE)
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def say(
    text: str,
    language: str = "ko",
    *,
    at: float | None = None,
    on: str | None = None,
    nth: int = 1,
    after: float = 0.0,
    voice: str | None = None,
    rate: int = 165,
) -> Talk:
    """A :class:`Talk` of ``text`` spoken by espeak-ng: ``say("일번", on="EXEC AudioSocket")``."""
    audio = synthesize(text, language, voice, rate)
    return Talk(len(audio) / 16000, at=at, on=on, nth=nth, after=after, audio=audio)
