"""A million caller-controlled values through every AGI and AMI encoder (issue 12).

Each value is something a caller controls: their caller ID number and name, what
they typed or said (recognised text), what a lookup service answered (HTTP
results), kept in flow variables. It goes through every encoder and every place
such a value reaches an AGI or AMI command:

- the AGI wire: ``token``, ``quote``, ``encode_command``, ``escape_app_arg``;
- :class:`~ivr.agi.channel.Channel` (on a transport that answers ``200``):
  ``SET VARIABLE`` (``__IVR_CONTEXT``, ``CHANNEL(language)``), ``EXEC VoiceMail``
  (a mailbox from a variable), ``EXEC Dial`` (a destination), ``VERBOSE``,
  ``NOOP``, ``SAY DIGITS``;
- the queue node's hand-over: the caller's number, name, a recognised phrase and
  an HTTP result in :func:`~ivr.flows.queueing.context_of`, sent with ``SET
  VARIABLE`` and, for a callback, as AMI ``Originate`` variables;
- AMI: ``Originate`` through :class:`~ivr.ami.client.AmiClient` (caller ID, the
  callback's dial string, variables) and ``Setvar``;
- the AGI environment block (``agi_callerid``, ``agi_calleridname``, ``agi_dnid``)
  as Asterisk writes it raw, read back by the engine's parser.

For each value either the encoder refuses it with the project's error
(:class:`~ivr.errors.UnsafeArgumentError`, :class:`~ivr.ami.errors.AmiInjectionError`)
or what it produced is well-formed: an AGI command is exactly one LF-terminated
line that fits Asterisk's buffer, and splits back (with the engine's own
``split_command_line`` and with a line-for-line port of ``parse_args`` from
res/res_agi.c 22.9.0; application data further with ``__ast_app_separate_args``
of main/app.c) to exactly the value; an AMI action is CRLF lines of at most
1,022 bytes each (manager.c ``get_input``: a 1,025-byte buffer, a longer line
discards the whole action), parses back with the engine's ``AmiParser`` to the
same headers, and a ``Variable`` to the same value through ``man_do_variable_value``.

    .venv/bin/python bench/fuzz.py              # 1,000,000 values
    .venv/bin/python bench/fuzz.py --values 50000 --seed 7

Prints, per place, the values refused and those that came out malformed (with
the first few), the total of malformed lines (must be 0) and values per second.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.agi.channel import Channel  # noqa: E402
from ivr.agi.protocol import (  # noqa: E402
    CALLER_KEYS,
    MAX_COMMAND_BYTES,
    EnvironmentParser,
    Quoted,
    encode_command,
    encode_environment,
    escape_app_arg,
    split_command_line,
    token,
)
from ivr.ami.client import AmiClient, _sendable  # noqa: E402
from ivr.ami.config import AmiConfig  # noqa: E402
from ivr.ami.errors import AmiInjectionError  # noqa: E402
from ivr.ami.protocol import AmiParser, HeaderValue, Message, encode_action  # noqa: E402
from ivr.centre.callbacks import _CALLER_ID, _handed  # noqa: E402
from ivr.errors import UnsafeArgumentError  # noqa: E402
from ivr.flows.queueing import context_of  # noqa: E402
from ivr.numbers import NUMBER, callback_dial  # noqa: E402
from ivr.testing import AsteriskEmulator  # noqa: E402
from routing.types import Assignment, Ticket  # noqa: E402

#: Refusals that are the project's own: the value cannot be sent safely.
REFUSED = (UnsafeArgumentError, AmiInjectionError)
#: manager.c get_input: inbuf[1025], maxlen 1024, CRLF included.
AMI_LINE_MAX = 1022
AGI_MAX_ARGS = 128
LF = b"\n"

# ---------------------------------------------------------------- generators

_SPECIAL = list("\r\n\0\"\\;|,()[]&=: \t$%{}'`?*#<>/@!~^")
_ASCII = [chr(c) for c in range(0x20, 0x7F)]
_CONTROL = [*(chr(c) for c in range(0x20)), "\x7f"]
_UNICODE = [
    *"가나다라마바사한국어é ñ ü ß ø 日本語中文 العربية עברית Ω ≈ ∑ … — “ ” \u2018 \u2019 ",
    "\u0301",  # combining acute
    "\u200b",  # zero width space
    "\u202e",  # right-to-left override
    "\ufeff",  # BOM
    "\u2028",  # line separator (not LF, but a line break to Python's splitlines)
    "\u0085",  # NEL
    "\U0001f600",
    "\U0001f4de",
    "\udc80",  # a lone surrogate: not valid Unicode (decode errors='surrogateescape')
]


#: Every character, weighted so that a value is about 30 % specials, 35 % printable
#: ASCII, 10 % control characters and 25 % other Unicode.
_ALPHABET = [*_SPECIAL, *_ASCII, *_CONTROL, *_UNICODE]
_CUMULATIVE = list(
    itertools.accumulate(
        [0.30 / len(_SPECIAL)] * len(_SPECIAL)
        + [0.35 / len(_ASCII)] * len(_ASCII)
        + [0.10 / len(_CONTROL)] * len(_CONTROL)
        + [0.25 / len(_UNICODE)] * len(_UNICODE)
    )
)


def _text(rng: random.Random, size: int) -> str:
    return "".join(rng.choices(_ALPHABET, cum_weights=_CUMULATIVE, k=size))


def _piece(rng: random.Random) -> str:
    return _text(rng, 1)


def _shaped(rng: random.Random) -> str:
    """Values shaped like real caller data, with a hostile twist now and then."""
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 22)))
    twist = _piece(rng) if rng.random() < 0.5 else ""
    shapes = [
        f"+{digits}",
        digits + twist,
        f'"{digits}" <{digits}>',
        f"Kim{twist}Minji",
        json.dumps({"balance": digits + twist, "note": twist * 3}),
        f"PJSIP/{digits}{twist}",
        f"{digits}@default{twist}",
        "\\" * rng.randint(1, 9) + '"' * rng.randint(0, 3),
        f"a,b(c)[d]{twist}",
        f"${{CALLERID(num)}}{twist}",
        f"{digits}\n{digits}",
        f"failure {twist}",
    ]
    return rng.choice(shapes)


def values(rng: random.Random, count: int) -> Iterator[str]:
    for _ in range(count):
        roll = rng.random()
        if roll < 0.55:
            yield _text(rng, rng.choice((0, 1, 2, 3, 5, 8, 13, 21, 40)))
        elif roll < 0.85:
            yield _shaped(rng)
        elif roll < 0.97:
            yield _text(rng, rng.randint(100, 900))
        else:  # very long: past AGI's 2,047-byte line and AMI's 1,024-byte one
            yield _text(rng, rng.randint(1000, 6000))


# ------------------------------------------------- Asterisk's parsers, ported


def parse_args(line: str) -> list[str]:
    """res/res_agi.c (22.9.0) parse_args, line for line (on characters: every byte it
    tests is ASCII, and UTF-8 puts no ASCII byte inside a multi-byte character)."""
    out: list[list[str]] = []
    x = 0
    quoted = escaped = False
    whitespace = True
    for char in line:
        normal = False
        if char == '"':
            if escaped:
                normal = True
            else:
                quoted = not quoted
                if quoted and whitespace:
                    out.append([])  # argv[x++] = cur (no MAX_ARGS check here)
                    x += 1
                    whitespace = False
                escaped = False
        elif char in " \t":
            if not quoted and not escaped:
                whitespace = True
            else:
                normal = True
        elif char == "\\":
            if escaped:
                normal = True
            else:
                escaped = True
        else:
            normal = True
        if normal:
            if whitespace:
                if x >= AGI_MAX_ARGS - 1:
                    continue  # "Too many arguments, truncating" (escaped stays set)
                out.append([])
                x += 1
                whitespace = False
            out[-1].append(char)
            escaped = False
    return ["".join(word) for word in out]


def app_separate_args(data: str, delim: str = ",", arraylen: int = 128) -> list[str]:
    """main/app.c __ast_app_separate_args with remove_chars=1 (AST_STANDARD_APP_ARGS)."""
    buf = list(data)
    args: list[str] = []
    scan = 0
    paren = quote = bracket = 0
    was_delim = -1
    current: list[str] = []
    while scan < len(buf) and len(args) < arraylen - 1:
        current = []
        while scan < len(buf):
            char = buf[scan]
            if char == "(":
                paren += 1
            elif char == ")":
                paren = max(0, paren - 1)
            elif char == "[":
                bracket += 1
            elif char == "]":
                bracket = max(0, bracket - 1)
            elif char == '"' and delim != '"':
                quote = 0 if quote else 1
                scan += 1
                continue  # removed
            elif char == "\\":
                scan += 1  # the backslash is removed, the next character kept as is
                if scan < len(buf):
                    current.append(buf[scan])
                scan += 1
                continue
            elif char == delim and not paren and not quote and not bracket:
                was_delim = scan
                scan += 1
                break
            current.append(char)
            scan += 1
        else:
            args.append("".join(current))
            current = []
            break
        args.append("".join(current))
    else:
        if scan < len(buf) or (scan > 0 and scan - 1 == was_delim):
            args.append("".join(buf[scan:]))
    return args


def man_do_variable_value(header_value: str) -> dict[str, str]:
    """main/manager.c man_do_variable_value: name=value pairs of one Variable header."""
    found: dict[str, str] = {}
    for item in app_separate_args(header_value.lstrip(" \t"), ",", 64):
        name, sep, value = item.partition("=")
        if sep and name:
            found[name] = value
    return found


# ------------------------------------------------------------------- checks


class Tally:
    """Per place: values taken, refused (the project's error), malformed, crashed."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.examples: dict[str, list[str]] = defaultdict(list)

    def bad(self, place: str, kind: str, value: str, why: str) -> None:
        self.counts[place][kind] += 1
        if len(self.examples[place]) < 3:
            self.examples[place].append(f"{kind}: {why}; value {value[:80]!r}")

    def run(self, place: str, value: str, attempt: Callable[[], str | None]) -> None:
        try:
            problem = attempt()
        except REFUSED:
            self.counts[place]["refused"] += 1
            return
        except Exception as exc:  # not the project's refusal: a bug of its own
            self.bad(place, "crashed", value, repr(exc)[:160])
            return
        if problem is None:
            self.counts[place]["ok"] += 1
        else:
            self.bad(place, "malformed", value, problem)

    @property
    def malformed(self) -> int:
        return sum(c["malformed"] for c in self.counts.values())

    @property
    def crashed(self) -> int:
        return sum(c["crashed"] for c in self.counts.values())


def agi_line(line: bytes, expected: list[str]) -> str | None:
    """Why ``line`` is not one well-formed command splitting back to ``expected``."""
    if not line.endswith(b"\n") or line.count(b"\n") != 1:
        return f"{line.count(LF)} LF in the line, or none at its end"
    if b"\r" in line or b"\0" in line:
        return "CR or NUL in the line"
    if len(line) > MAX_COMMAND_BYTES:
        return f"{len(line)} bytes: Asterisk runs the rest as another command"
    text = line[:-1].decode("utf-8")
    if text[:7].lower() == "failure":
        return "starts with 'failure': ends the session"
    theirs = parse_args(text)
    if theirs != expected:
        return f"res_agi parse_args reads {theirs!r:.160}"
    ours = split_command_line(text)
    if ours != theirs:
        return f"split_command_line reads {ours!r:.160}"
    return None


def ami_action(wire: bytes, headers: list[tuple[str, str]]) -> str | None:
    """Why ``wire`` is not one action of ``headers``, in lines Asterisk reads whole."""
    if not wire.endswith(b"\r\n\r\n") or wire.count(b"\r\n\r\n") != 1:
        return "not exactly one message"
    lines = wire[:-4].split(b"\r\n")
    for raw in lines:
        if b"\n" in raw or b"\r" in raw or b"\0" in raw:
            return "a bare CR, LF or NUL inside a line"
        if len(raw) > AMI_LINE_MAX:
            return f"a {len(raw)}-byte line: manager.c discards the whole action"
    parsed = AmiParser(expect_banner=False).feed(wire)
    if len(parsed) != 1 or list(parsed[0].headers) != headers:
        return f"AmiParser reads {parsed!r:.160}"
    return None


# ------------------------------------------------------------------ AGI side


class Loopback:
    """A transport whose Asterisk answers every command ``200 result=0``."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self._pending = False

    async def write(self, data: bytes) -> None:
        self.sent.append(data)
        self._pending = True

    async def read(self) -> bytes:
        if self._pending:
            self._pending = False
            return b"200 result=0\n"
        await asyncio.sleep(3600)
        return b""


def _channel() -> tuple[Channel, Loopback]:
    parser = EnvironmentParser()
    env = parser.feed(
        encode_environment(
            {"agi_network": "yes", "agi_channel": "PJSIP/fuzz-1", "agi_uniqueid": "1.1"}
        )
    )
    assert env is not None
    transport = Loopback()
    return Channel(env, transport, swept=True), transport


class _Run:
    """What ``context_of`` reads of a call: its variables and their sensitivity."""

    def __init__(self, variables: dict[str, Any]) -> None:
        self.variables = variables
        self.sensitive: set[str] = set()


class Fuzz:
    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.channel, self.transport = _channel()
        self.ami = _CapturingAmi()
        self.emulator = AsteriskEmulator()

    def _last(self) -> bytes:
        sent = self.transport.sent
        assert len(sent) == 1, sent
        return sent.pop()

    async def channel_call(self, place: str, value: str, call: Any, expected: list[str]) -> None:
        try:
            await call
        except REFUSED:
            self.tally.counts[place]["refused"] += 1
            return
        except Exception as exc:
            self.tally.bad(place, "crashed", value, repr(exc)[:160])
            return
        problem = agi_line(self._last(), expected)
        if problem is None:
            self.tally.counts[place]["ok"] += 1
        else:
            self.tally.bad(place, "malformed", value, problem)

    async def exec_call(self, place: str, value: str, app: str, args: list[str]) -> None:
        """EXEC: one line of three words, and the data splits back into ``args``."""
        try:
            await self.channel.exec(app, *args)
        except REFUSED:
            self.tally.counts[place]["refused"] += 1
            return
        except Exception as exc:
            self.tally.bad(place, "crashed", value, repr(exc)[:160])
            return
        line = self._last()
        text = line[:-1].decode("utf-8", "replace")
        words = parse_args(text)
        problem = agi_line(line, ["EXEC", app, words[2] if len(words) > 2 else ""])
        if problem is None and app_separate_args(words[2]) != args:
            problem = f"the application reads {app_separate_args(words[2])!r:.160}"
        if problem is None:
            self.tally.counts[place]["ok"] += 1
        else:
            self.tally.bad(place, "malformed", value, problem)

    async def one(self, value: str, caller: str) -> None:
        t = self.tally

        def one_token() -> str | None:
            # A word alone (no line length to keep): it must split back to the value.
            words = parse_args("NOOP " + token(value))
            return None if words == ["NOOP", value] else f"parse_args reads {words!r:.160}"

        t.run("agi token", value, one_token)
        t.run(
            "agi SET VARIABLE",
            value,
            lambda: agi_line(
                encode_command("SET VARIABLE", "X", value), ["SET", "VARIABLE", "X", value]
            ),
        )
        t.run(
            "agi Quoted",
            value,
            lambda: agi_line(encode_command("VERBOSE", Quoted(value), 1), ["VERBOSE", value, "1"]),
        )

        def app_arg() -> str | None:
            data = escape_app_arg(value) + ",30,g"
            problem = agi_line(encode_command("EXEC", "Dial", data), ["EXEC", "Dial", data])
            if problem is None and app_separate_args(data) != [value, "30", "g"]:
                return f"Dial reads {app_separate_args(data)!r:.160}"
            return problem

        t.run("agi escape_app_arg", value, app_arg)
        ch = self.channel
        await self.channel_call(
            "channel set_variable", value, ch.set_variable("__IVR_CONTEXT", value),
            ["SET", "VARIABLE", "__IVR_CONTEXT", value],
        )  # fmt: skip
        await self.channel_call(
            "channel language", value, ch.set_variable("CHANNEL(language)", value),
            ["SET", "VARIABLE", "CHANNEL(language)", value],
        )  # fmt: skip
        await self.channel_call(
            "channel verbose", value, ch.verbose(value), ["VERBOSE", value, "1"]
        )
        await self.channel_call(
            "channel noop", value, ch.noop(value), ["NOOP", value] if value else ["NOOP"]
        )
        await self.channel_call(
            "channel say_digits", value, ch.say_digits(value), ["SAY", "DIGITS", value, ""]
        )
        await self.exec_call("channel exec VoiceMail", value, "VoiceMail", [value, "u"])
        await self.exec_call("channel exec Dial", value, "Dial", [value, "30", "g"])
        await self.hand_over(value, caller)
        await self.ami_side(value, caller)
        self.environment(value)

    async def hand_over(self, value: str, caller: str) -> None:
        """The queue node's hand-over: caller data, a phrase heard and an HTTP result."""
        variables = {
            "caller": {"number": caller, "name": value},
            "call": {"dnid": value},
            "topic": value[::-1],
            "balance": value[:40],
        }
        try:
            context = context_of(_Run(variables))  # type: ignore[arg-type]
        except Exception as exc:
            self.tally.bad("queue context_of", "crashed", value, repr(exc)[:160])
            return
        await self.channel_call(
            "queue hand-over SET VARIABLE", value,
            self.channel.set_variable("__IVR_CONTEXT", context),
            ["SET", "VARIABLE", "__IVR_CONTEXT", context],
        )  # fmt: skip
        # The same context, kept with a callback, reaches the agent's leg by AMI.
        ticket = Ticket(1, "c1", "billing", (), 0)
        assignment = Assignment(
            ticket, "ann", "PJSIP/1001", caller,
            json.dumps({"flow": "main", "context": context}),
        )  # fmt: skip
        variables_out = _handed(assignment)
        await self.originate("callback Originate", value, variables_out, caller)

    async def originate(
        self,
        place: str,
        value: str,
        variables: dict[str, str],
        number: str,
        data: str = "PJSIP/2001,45",
    ) -> None:
        self.ami.captured.clear()
        try:
            await self.ami.originate(
                "PJSIP/1001",
                application="Dial",
                data=data,
                caller_id=f'"Callback" <{number}>',
                variables=variables,
            )
        except REFUSED:
            self.tally.counts[place]["refused"] += 1
            return
        except Exception as exc:
            self.tally.bad(place, "crashed", value, repr(exc)[:160])
            return
        name, headers, wire = self.ami.captured[-1]
        expected = [("Action", name), ("ActionID", "fuzz-1"), *_flat(headers)]
        problem = ami_action(wire, expected)
        if problem is None:
            got: dict[str, str] = {}
            for header in Message(tuple(expected)).get_all("Variable"):
                got.update(man_do_variable_value(header))
            if got != variables:
                problem = f"Asterisk sets {got!r:.160}"
        if problem is None:
            self.tally.counts[place]["ok"] += 1
        else:
            self.tally.bad(place, "malformed", value, problem)

    async def ami_side(self, value: str, caller: str) -> None:
        await self.originate("ami Originate variable", value, {"IVR_NOTE": value}, "5551234")
        # The callback number (the caller ID) through the allow-list and the worker's
        # own check, then the Originate it would place.
        dialled = callback_dial(caller, ("*",), internal="PJSIP/{to}", external="PJSIP/{to}@t")
        if dialled is not None and not NUMBER.fullmatch(caller):
            self.tally.counts["numbers.callback_dial"]["accepts a non-number"] += 1
        if dialled is None or not _CALLER_ID.fullmatch(caller):
            self.tally.counts["callback number Originate"]["refused"] += 1
        else:
            await self.originate(
                "callback number Originate", caller, {}, caller, data=f"{dialled},45"
            )

        def setvar() -> str | None:
            headers = [("Action", "Setvar"), ("Variable", "IVR_NOTE"), ("Value", value)]
            return ami_action(encode_action("Setvar", headers[1:]), headers)

        self.tally.run("ami encode_action Setvar", value, setvar)
        self.ami.captured.clear()
        place = "ami client Setvar"
        try:
            await self.ami.setvar("IVR_NOTE", value, "PJSIP/1001-00000001")
        except REFUSED:
            self.tally.counts[place]["refused"] += 1
        except Exception as exc:
            self.tally.bad(place, "crashed", value, repr(exc)[:160])
        else:
            name, headers, wire = self.ami.captured[-1]
            expected = [("Action", name), ("ActionID", "fuzz-1"), *_flat(headers)]
            problem = ami_action(wire, expected)
            if problem is None and Message(tuple(expected)).get("Value") != value:
                problem = "Asterisk reads another value"
            if problem is None:
                self.tally.counts[place]["ok"] += 1
            else:
                self.tally.bad(place, "malformed", value, problem)

    def environment(self, value: str) -> None:
        """The environment block as Asterisk writes it (raw bytes, in setup_env's order)
        and the engine reads it: a caller's value never ends the block early nor forges
        or changes another key."""
        raw_value = value.replace("\0", "")  # a C string ends at NUL
        sent = self.emulator.environment(
            "chaos", callerid=raw_value, calleridname=raw_value, dnid=raw_value
        )

        def parse() -> str | None:
            raw = b"".join(
                f"{k}: {v}\n".encode("utf-8", "surrogateescape") for k, v in sent.items()
            )
            env = EnvironmentParser().feed(raw + b"\n")
            if env is None:
                return "the block never ended"
            if set(env.variables) != set(sent):
                return f"keys {sorted(set(env.variables) ^ set(sent))}"
            changed = [k for k in sent if k not in CALLER_KEYS and env.variables[k] != sent[k]]
            if changed:
                return f"other keys changed: {changed}"
            if any(env.variables[k] != sent[k] for k in CALLER_KEYS if k in sent):
                self.tally.counts["agi environment"]["caller value read differently"] += 1
            return None

        self.tally.run("agi environment", value, parse)


def _flat(headers: dict[str, HeaderValue]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in headers.items():
        if isinstance(value, str):
            out.append((name, value))
        else:
            out.extend((name, item) for item in value)
    return out


class _CapturingAmi(AmiClient):
    """The engine's AMI client; what it would send is encoded and kept, not sent."""

    def __init__(self) -> None:
        super().__init__(AmiConfig(username="fuzz", secret="fuzz"))
        self.captured: list[tuple[str, dict[str, HeaderValue], bytes]] = []

    async def _send(
        self,
        name: str,
        headers: Any = None,
        *,
        timeout: float | None = None,
        check: bool = True,
    ) -> Any:
        headers = dict(headers or {})
        wire = _sendable(name, headers, "fuzz-1")  # what _send writes, its checks included
        self.captured.append((name, headers, wire))
        done = Message((("Event", "OriginateResponse"), ("Response", "Success"), ("Reason", "4")))
        return [Message((("Response", "Success"),)), done]


Share = tuple[dict[str, dict[str, int]], dict[str, list[str]]]


async def _share(seed: int, count: int, report: bool) -> Share:
    """``count`` values from ``seed`` through every place: the tally's counts and examples."""
    rng = random.Random(seed)
    tally = Tally()
    fuzz = Fuzz(tally)
    callers = values(random.Random(seed + 1_000_003), count)
    started = time.perf_counter()
    for done, value in enumerate(values(rng, count), start=1):
        await fuzz.one(value, next(callers))
        if report and done % 50_000 == 0:
            rate = done / (time.perf_counter() - started)
            print(f"  {done:>9,} values, {rate:,.0f}/s, malformed so far {tally.malformed}")
    counts = {place: dict(found) for place, found in tally.counts.items()}
    return counts, dict(tally.examples)


def _run_share(seed: int, count: int, report: bool) -> Share:
    return asyncio.run(_share(seed, count, report))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=1, help="processes (each its own seed)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"# {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    started = time.perf_counter()
    sizes = [args.values // args.jobs + (i < args.values % args.jobs) for i in range(args.jobs)]
    if args.jobs == 1:
        shares = [_run_share(args.seed, args.values, True)]
    else:
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [
                pool.submit(_run_share, args.seed + i, size, i == 0) for i, size in enumerate(sizes)
            ]
            shares = [future.result() for future in futures]
    took = time.perf_counter() - started
    tally = Tally()
    for share_counts, examples in shares:
        for place, found in share_counts.items():
            tally.counts[place].update(found)
        for place, lines in examples.items():
            tally.examples[place] = (tally.examples[place] + lines)[:3]
    print(f"{'place':30} {'ok':>9} {'refused':>9} {'malformed':>9} {'crashed':>8}")
    for place, counts in tally.counts.items():
        print(
            f"{place:30} {counts['ok']:>9} {counts['refused']:>9} "
            f"{counts['malformed']:>9} {counts['crashed']:>8}"
        )
        for kind, count in counts.items():
            if kind not in ("ok", "refused", "malformed", "crashed"):
                print(f"    {kind}: {count}")
        for example in tally.examples.get(place, []):
            print(f"    {example}")
    rate = args.values / took
    print(f"values: {args.values:,} in {took:.1f} s = {rate:,.0f} values/s ({args.jobs} jobs)")
    print(f"malformed lines: {tally.malformed}")
    print(f"crashes (an error other than the project's refusal): {tally.crashed}")
    return 0 if tally.malformed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
