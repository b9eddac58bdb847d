"""What each node type does on a call. A handler returns the next node's name,
or ``None`` when the call has left the flow (hung up, transferred, in voicemail).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import math
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from ivr.agi.channel import Channel
from ivr.errors import AgiError, ChannelHangup, PlaybackError
from ivr.flows import model as m
from ivr.flows.expr import parse
from ivr.flows.interpreter import Run
from ivr.numbers import EXTENSION, NUMBER, callback_dial
from ivr.speech_input import Heard, Listen, SpeechInput
from routing.config import QueueConfig
from routing.errors import RoutingError
from speech.faq import FaqEntry, FaqMatcher

__all__ = ["HANDLERS"]

Handler = Callable[[Run, Any], Awaitable[str | None]]
KEYS = "0123456789*#"


async def _play(run: Run, files: list[str], escape: str = "") -> str | None:
    """Play files in order; return the key that stopped them, if any."""
    for name in files:
        try:
            result = await run.channel.stream_file(name, escape)
        except PlaybackError as exc:
            run.event("prompt_failed", sound=name, error=str(exc))
            continue
        if result.digit:
            return result.digit
    return None


async def _ask(run: Run, files: list[str], keys: str, timeout: float) -> str | None:
    """Play a prompt any of ``keys`` interrupts, then wait for one key."""
    digit = await _play(run, files, keys)
    if digit is None:
        digit = await run.channel.wait_for_digit(int(timeout * 1000))
    return digit


async def play(run: Run, node: m.Play) -> str | None:
    await _play(run, await run.sound(node.say, node.file), KEYS if node.interruptible else "")
    return node.next


async def say(run: Run, node: m.Say) -> str | None:
    value = run.render(node.value)
    channel = run.channel
    hidden = channel.sensitive() if run.uses_sensitive(node.value) else contextlib.nullcontext()
    if node.as_ == "digits":
        with hidden:
            await channel.say_digits(re.sub(r"[^0-9*#]", "", value))
    elif node.as_ == "number":
        number = re.match(r"\s*(-?\d+)", value)
        with hidden:
            await channel.say_number(int(number.group(1)) if number else 0)
    else:
        phrase = _spoken(node.as_, value, node.currency)
        await _play(run, await run.sound(phrase))
    return node.next


def _spoken(kind: str, value: str, currency: str) -> str:
    if kind == "currency":
        return f"{value} {currency}"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.strftime("%A %d %B %Y" if kind == "date" else "%H:%M")


#: A menu answer is a word or two: half a second of silence ends it.
_MENU_END_SILENCE = 0.5
#: ... and five seconds of talk is more than any option's name.
_MENU_LONGEST = 5.0
_KEYPAD = {"en": "Please use your keypad.", "ko": "번호를 눌러 주세요."}
_SORRY = {"en": "Sorry, I did not get that.", "ko": "죄송합니다. 잘 알아듣지 못했습니다."}


def _speech_for(run: Run, phrases: list[str]) -> SpeechInput | None:
    """The speech service when it can hear this call's language, else None (keys only)."""
    port = run.engine.speech
    if port is None or not phrases or not port.speaks(run.language):
        return None
    return port


async def menu(run: Run, node: m.Menu) -> str | None:
    defaults = run.defaults
    timeout = node.timeout or defaults.timeout
    retries = defaults.retries if node.retries is None else node.retries
    phrases = [phrase for option in node.options for phrase in option.phrases]
    port = _speech_for(run, phrases)
    if port is not None:
        return await _menu_by_voice(run, node, port, phrases, timeout=timeout, retries=retries)
    files = await run.sound(node.prompt, node.file)
    pending: str | None = None
    for attempt in range(retries + 1):
        # Any key stops the prompt: a wrong one is answered at once, not ignored.
        digit = pending or await _ask(run, files, KEYS, timeout)
        pending = None
        chosen = next((o for o in node.options if o.digit and o.digit == digit), None)
        if chosen is not None:
            run.event("menu_choice", digit=digit, goto=chosen.goto)
            return chosen.goto
        retry = node.no_input if digit is None else node.no_match
        run.event("no_input" if digit is None else "no_match", attempt=attempt + 1)
        if retry is not None and retry.goto:
            return retry.goto
        if retry is not None and retry.prompt and attempt < retries:
            # A key during the apology is the caller's next try.
            pending = await _play(run, await run.sound(retry.prompt), KEYS)
    return node.on_failure


async def _menu_by_voice(
    run: Run,
    node: m.Menu,
    port: SpeechInput,
    phrases: list[str],
    *,
    timeout: float,
    retries: int,
) -> str | None:
    """The caller says an option or presses its key, and may interrupt the prompt.

    A misheard answer (below the confidence threshold, or outside the menu)
    is asked again; the last try after a mishearing takes keys only.
    """
    intro: m.Text | None = None
    misheard = False
    for attempt in range(retries + 1):
        if misheard and attempt == retries and retries > 0:
            keypad = _KEYPAD.get(run.language, _KEYPAD["en"])
            files = [*await run.sound(keypad), *await run.sound(node.prompt, node.file)]
            digit = await _ask(run, files, KEYS, timeout)
            heard = Heard("key", digit=digit) if digit else Heard("noinput")
        else:
            said, voice = run.spoken(_joined(run, intro, node.prompt))
            heard = await port.listen(
                run.channel,
                Listen(
                    language=run.language,
                    text=said,
                    voice=voice,
                    files=(node.file,) if node.file else (),
                    phrases=phrases,
                    keys=KEYS,
                    no_input=timeout,
                    end_silence=_MENU_END_SILENCE,
                    max_utterance=_MENU_LONGEST,
                ),
            )
        chosen = None
        if heard.kind == "key":
            chosen = next((o for o in node.options if o.digit and o.digit == heard.digit), None)
        elif heard.kind == "speech":
            chosen = next((o for o in node.options if heard.phrase in o.phrases), None)
        run.event(
            "heard",
            kind=heard.kind,
            digit=heard.digit,
            phrase=heard.phrase,
            text=heard.text,
            confidence=round(heard.confidence, 2),
            via=heard.via,
        )
        if chosen is not None:
            run.event("menu_choice", digit=heard.digit, phrase=heard.phrase, goto=chosen.goto)
            return chosen.goto
        silent = heard.kind == "noinput"
        misheard = misheard or heard.kind == "nomatch"
        retry = node.no_input if silent else node.no_match
        run.event("no_input" if silent else "no_match", attempt=attempt + 1)
        if retry is not None and retry.goto:
            return retry.goto
        intro = retry.prompt if retry is not None and retry.prompt else None
    return node.on_failure


def _joined(run: Run, first: m.Text | None, second: m.Text | None) -> m.Text | None:
    """Two texts said as one prompt (an apology, then the question)."""
    if first is None:
        return second
    if second is None:
        return first
    return f"{run.text(first)} {run.text(second)}"


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return bool(digits) and total % 10 == 0


async def gather(run: Run, node: m.Gather) -> str | None:
    defaults = run.defaults
    retries = defaults.retries if node.retries is None else node.retries
    timeout = node.timeout or defaults.timeout
    files = await run.sound(node.prompt, node.file)
    for attempt in range(retries + 1):
        digits = await _collect(run.channel, files, node, timeout, defaults.digit_timeout)
        valid = node.min_length <= len(digits) <= node.max_length
        if valid and node.validate_ is not None:
            rule = node.validate_
            valid = (rule.regex is None or re.fullmatch(rule.regex, digits) is not None) and (
                not rule.luhn or luhn(digits)
            )
        if valid:
            run.set(node.variable, digits, sensitive=node.sensitive)
            shown = "***" if run.uses_sensitive("${" + node.variable + "}") else digits
            run.event("gathered", variable=node.variable, value=shown)
            return node.next
        run.event("invalid_input", attempt=attempt + 1, length=len(digits))
        if node.invalid is not None and node.invalid.goto:
            return node.invalid.goto
        if node.invalid is not None and node.invalid.prompt and attempt < retries:
            await _play(run, await run.sound(node.invalid.prompt))
    return node.on_failure


async def _collect(
    channel: Channel, files: list[str], node: m.Gather, timeout: float, between: float
) -> str:
    """Digits up to max_length or the terminator, with the first-key and between-key waits."""
    with channel.sensitive() if node.sensitive else contextlib.nullcontext():
        first = await _first_key(channel, files, timeout)
        if first is None or first == node.terminator:
            return ""
        collected = first
        while len(collected) < node.max_length:
            key = await channel.wait_for_digit(int(between * 1000))
            if key is None or (node.terminator and key == node.terminator):
                return collected
            collected += key
        if node.terminator:
            # Full: callers often press the terminator anyway; take it here so it
            # does not answer the next prompt. Another key is not expected now.
            await channel.wait_for_digit(700)
        return collected


async def _first_key(channel: Channel, files: list[str], timeout: float) -> str | None:
    for name in files:
        try:
            result = await channel.stream_file(name, KEYS)
        except PlaybackError:
            continue
        if result.digit:
            return result.digit
    return await channel.wait_for_digit(int(timeout * 1000))


_CONFIRM = {
    "en": ("I heard {value}. If that is right, say yes or press 1; if not, say no or press 2.",
           ["yes", "no"]),
    "ko": ("{value}(이)라고 하셨나요? 맞으면 좋아요 또는 1번, "
           "아니면 아니요 또는 2번을 눌러 주세요.", ["좋아요", "아니요"]),
}  # fmt: skip


async def speech(run: Run, node: m.Speech) -> str | None:
    """Free-form or grammar speech into a variable, with an optional confirmation."""
    port = run.engine.speech
    if port is None or not port.speaks(run.language):
        run.event("speech_unavailable", language=run.language)
        return node.on_failure
    retries = run.defaults.retries if node.retries is None else node.retries
    timeout = node.timeout or run.defaults.timeout
    intro: m.Text | None = None
    for attempt in range(retries + 1):
        heard = await _hear(
            run, port, node, intro, phrases=node.grammar, keys="", threshold=node.confidence
        )
        value = heard.phrase if heard.kind == "speech" else None
        if node.grammar is None and heard.text and heard.confidence >= node.confidence:
            value = heard.text  # free-form: the words themselves
        run.event("heard", kind=heard.kind, phrase=heard.phrase, text=heard.text,
                  confidence=round(heard.confidence, 2), via=heard.via)  # fmt: skip
        if value and (not node.confirm or await _confirmed(run, port, value, timeout)):
            run.set(node.variable, value)
            run.event("recognised", variable=node.variable, value=value)
            return node.next
        run.event("no_input" if heard.kind == "noinput" else "no_match", attempt=attempt + 1)
        intro = _SORRY
    return node.on_failure


async def _hear(
    run: Run,
    port: SpeechInput,
    node: m.Speech | m.Faq,
    intro: m.Text | None,
    *,
    phrases: list[str] | None,
    keys: str,
    threshold: float,
) -> Heard:
    """Say ``intro`` (an apology) and the node's prompt, and hear the answer."""
    said, voice = run.spoken(_joined(run, intro, node.prompt))
    return await port.listen(
        run.channel,
        Listen(
            language=run.language,
            text=said,
            voice=voice,
            files=(node.file,) if node.file else (),
            phrases=phrases,
            keys=keys,
            no_input=node.timeout or run.defaults.timeout,
            end_silence=node.end_silence,
            max_utterance=node.max_utterance,
            threshold=threshold,
        ),
    )


async def _confirmed(run: Run, port: SpeechInput, value: str, timeout: float) -> bool:
    question, (yes, no) = _CONFIRM.get(run.language, _CONFIRM["en"])
    said, voice = run.spoken(question.format(value=value))
    heard = await port.listen(
        run.channel,
        Listen(language=run.language, text=said, voice=voice, phrases=[yes, no], keys="12",
               no_input=timeout),
    )  # fmt: skip
    agreed = heard.digit == "1" or heard.phrase == yes
    run.event("confirmed" if agreed else "not_confirmed", value=value)
    return agreed


async def faq(run: Run, node: m.Faq) -> str | None:
    """The caller asks; the closest question's answer is said, or a person takes over."""
    port = run.engine.speech
    if port is None or not port.speaks(run.language):
        run.event("speech_unavailable", language=run.language)
        return node.handoff
    matcher = FaqMatcher(
        [FaqEntry(e.question, run.text(e.answer), str(i)) for i, e in enumerate(node.entries)],
        threshold=node.threshold,
        handoff=node.handoff_phrases,
    )
    # Any sequence of the questions' words (and the hand-off words) can be heard;
    # the words then find the closest question.
    words = sorted(
        {w for e in node.entries for w in e.question.split()} | set(node.handoff_phrases)
    )
    retries = run.defaults.retries if node.retries is None else node.retries
    intro: m.Text | None = None
    for attempt in range(retries + 1):
        heard = await _hear(run, port, node, intro, phrases=words, keys="0", threshold=0.0)
        text = heard.text or (heard.phrase or "")
        run.event("heard", kind=heard.kind, text=text, via=heard.via)
        if heard.digit == "0" or (text and matcher.is_handoff(text)):
            run.event("faq_handoff", asked=text or "0")
            return node.handoff
        found = matcher.match(text) if text else None
        if found is not None:
            entry, score = found
            run.event("faq_answer", question=node.entries[int(entry.key)].question,
                      score=round(score, 2))  # fmt: skip
            await _play(run, await run.sound(entry.answer))
            return node.next
        run.event("no_input" if not text else "no_match", attempt=attempt + 1)
        intro = _SORRY
    run.event("faq_handoff", asked="unanswered")
    return node.handoff


async def branch(run: Run, node: m.Branch) -> str | None:
    for condition in node.conditions:
        if parse(condition.if_).test(run.variables):
            return condition.goto
    return node.else_


async def set_(run: Run, node: m.Set) -> str | None:
    for name, value in node.variables.items():
        if isinstance(value, str):
            run.set(name, run.render(value), sensitive=run.uses_sensitive(value))
        else:
            run.set(name, value)
    return node.next


def _spans(node: m.Hours, day: int) -> list[tuple[time, time | None]]:
    """(opens, closes) of a weekday; ``None`` closes at midnight."""
    out: list[tuple[time, time | None]] = []
    for span in node.schedule.get(m.DAYS[day], []):  # type: ignore[call-overload]
        start, end = span.split("-")
        out.append((time.fromisoformat(start), None if end == "24:00" else time.fromisoformat(end)))
    return out


def is_open(node: m.Hours, now: datetime) -> bool:
    """Open at ``now`` in the node's timezone; a span past midnight counts for its start day."""
    local = now.astimezone(ZoneInfo(node.timezone))
    moment, day = local.time(), local.weekday()
    if local.date() in node.holidays:
        return False
    for opens, closes in _spans(node, day):
        if closes is None or closes <= opens:  # runs to midnight, or past it
            if moment >= opens:
                return True
        elif opens <= moment < closes:
            return True
    yesterday = (local - timedelta(days=1)).date()
    if yesterday in node.holidays:
        return False
    return any(
        closes is not None and closes <= opens and moment < closes
        for opens, closes in _spans(node, (day - 1) % 7)
    )


async def hours(run: Run, node: m.Hours) -> str | None:
    opened = is_open(node, run.engine.clock())
    run.event("hours", open=opened)
    return node.open if opened else node.closed


async def language(run: Run, node: m.Language) -> str | None:
    files = await run.sound(node.prompt, node.file)
    retries = run.defaults.retries if node.retries is None else node.retries
    for _ in range(retries + 1):
        digit = await _ask(run, files, KEYS, node.timeout or run.defaults.timeout)
        chosen = next((o for o in node.options if o.digit == digit), None)
        if chosen is not None:
            run.language = chosen.language
            run.set("language", chosen.language)
            await run.channel.set_variable("CHANNEL(language)", chosen.language)
            return node.next
    return node.next


async def http(run: Run, node: m.Http) -> str | None:
    url = run.render(node.url, url=True)
    headers = {k: run.render(v, env=True) for k, v in node.headers.items()}
    body = None
    if node.body is not None:
        body = {k: run.render(v) if isinstance(v, str) else v for k, v in node.body.items()}
    try:
        reply = await asyncio.wait_for(
            run.engine.http.request(node.method, url, headers, body, node.timeout),
            node.timeout + 1,
        )
    except (OSError, TimeoutError) as exc:
        run.event("http_failed", url=node.url, error=str(exc) or type(exc).__name__)
        return node.on_error
    if not 200 <= reply.status < 300:
        run.event("http_failed", url=node.url, status=reply.status)
        return node.on_error
    for variable, path in node.map.items():
        value: Any = reply.body
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        run.set(variable, value)
    run.event("http_ok", url=node.url, status=reply.status)
    return node.next


async def goto(run: Run, node: m.Goto) -> str | None:
    return node.target


async def announcement(run: Run, node: m.Announcement) -> str | None:
    if await run.engine.announcements.active(node.name):
        run.event("announcement", name=node.name)
        await _play(run, await run.sound(node.say, node.file))
    return node.next


async def queue(run: Run, node: m.QueueNode) -> str | None:
    router = run.engine.router
    if router is None:
        run.event("routing_unavailable", queue=node.queue)
        return node.on_failure
    config = run.engine.queues.get(node.queue) or QueueConfig()
    skills = node.skills or dict(config.skills)
    priority = node.priority or config.priority
    channel = run.channel
    try:
        caller = channel.env.callerid if config.last_agent_first else ""
        ticket = await router.enqueue(
            channel.uniqueid,
            node.queue,
            skills,
            priority,
            strategy=config.strategy,
            customer="" if caller in ("", "unknown") else caller,
            any_skills=dict(config.any_skills) or None,
        )
    except RoutingError as exc:
        run.event("routing_unavailable", queue=node.queue, error=str(exc))
        return node.on_failure
    run.event("queued", queue=node.queue, skills=skills, priority=priority)
    run.last_queue = node.queue
    leg = _Leg()
    try:
        waiter = _Wait(run, config, ticket, node.callback_digit)
        while True:
            assignment = await waiter.next_agent()
            if assignment is None or assignment is _CALLBACK:
                # A callback keeps the call's place in the queue without the caller.
                leg.settled = assignment is _CALLBACK
                return await _left(run, node, waiter, called_back=leg.settled)
            leg.assignment = assignment
            await _hand_over(run, node, assignment)
            status = await _dial_agent(run, router, leg, config)
            run.event("dialled", agent=assignment.agent_id, status=status)
            if leg.connected or status == "ANSWER":
                # Answered: whoever hung up first, the agent's call is over now.
                await _settle(run, "completed", router.completed, assignment)
                leg.settled = True
                if channel.hung_up:
                    raise ChannelHangup("the caller hung up after the agent call", how="hangup")
                return node.next
            if channel.hung_up:  # hung up while the agent's phone rang
                run.event("abandoned", queue=node.queue)
                return None
            leg.assignment = None
            await router.missed(assignment)
    finally:
        if not leg.settled:
            if leg.assignment is not None and leg.connected:
                # Connected, then anything at all (an error, a cancellation)
                # ended the call: the agent's call is over, never left on_call.
                await _settle(run, "completed", router.completed, leg.assignment)
            else:
                # Whatever ended the wait (a hang-up anywhere, an overflow, an
                # error), the call leaves the queue and a reserved agent is freed.
                await _settle(run, "abandoned", router.abandon, ticket)


class _Leg:
    """Where one queued call stands with its agent, for whatever ends the node."""

    def __init__(self) -> None:
        self.assignment: Any = None
        #: The agent answered (AMI's DialEnd, or DIALSTATUS).
        self.connected = False
        #: completed / abandoned / a callback's hand-over is recorded.
        self.settled = False


#: Tries of a settling transition (a Redis blip must not leave an agent held).
_SETTLE_TRIES = 4


async def _settle(run: Run, what: str, action: Callable[[Any], Awaitable[None]], arg: Any) -> None:
    """Record how a queued call ended; retried, and never cut short by a cancellation
    (the server cancels a handler some time after the hang-up)."""

    async def attempt() -> None:
        delay = 0.05
        for tries in range(1, _SETTLE_TRIES + 1):
            try:
                await action(arg)
            except RoutingError as exc:
                if tries == _SETTLE_TRIES:
                    run.event("settle_failed", what=what, error=str(exc), tries=tries)
                    raise
                await asyncio.sleep(delay)
                delay *= 4
            else:
                return

    task = asyncio.ensure_future(attempt())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        # Cancelled from outside: the transition still runs to its end.
        with contextlib.suppress(RoutingError):
            await task  # reported above through settle_failed
        raise


async def _left(run: Run, node: m.QueueNode, waiter: _Wait, *, called_back: bool) -> str | None:
    """Where a call goes that leaves the hold without an agent."""
    if called_back:
        await _play(run, await run.sound(_callback_confirmed(run)))
        await run.channel.hangup()
        return None
    if run.channel.hung_up:
        run.event("abandoned", queue=node.queue)
        return None
    run.event("overflow", queue=node.queue, waited=round(waiter.waited()))
    return node.on_failure


class _Wait:
    """A call on hold: music, escalation steps over its wait, position notices."""

    def __init__(
        self, run: Run, config: QueueConfig, ticket: Any, callback_digit: str | None = None
    ) -> None:
        self.run = run
        self.config = config
        self.ticket = ticket
        #: The key that asks for a callback, offered when the caller's number can be called.
        number = run.channel.env.callerid
        engine = run.engine
        callable_back = engine.callbacks and callback_dial(
            number or "",
            engine.transfer_allow,
            internal=engine.internal_dial,
            external=engine.external_dial,
        )
        # Offered only when this engine places callbacks (AMI) and would dial the number:
        # never a promise that cannot be kept.
        self.callback_digit = callback_digit if callable_back else None
        self.clock = run.engine.hold_clock
        self.started = self.clock.now()
        self.steps = list(config.steps)
        self.announced = self.started
        #: The requirement now (escalation steps change it), for the wait estimate.
        self.skills: dict[str, int] = dict(ticket.skills)
        self.any_skills: dict[str, int] = dict(config.any_skills)

    def waited(self) -> float:
        return self.clock.now() - self.started

    def _deadline(self) -> float | None:
        times = [self.started + step.after for step in self.steps[:1]]
        if self.config.announce_every:
            times.append(self.announced + self.config.announce_every)
        return min(times) if times else None

    async def next_agent(self) -> Any:
        """The assignment, or None when the caller hung up or a step overflowed."""
        router = self.run.engine.router
        assert router is not None
        while True:
            deadline = self._deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock.now())
            assignment = await _hold(self.run, router, self.ticket, timeout, self.callback_digit)
            if assignment is _CALLBACK:
                number = self.run.channel.env.callerid
                if await router.request_callback(self.ticket, number):
                    self.run.event("callback_requested", queue=self.ticket.queue)
                    return _CALLBACK
                continue  # an agent was reserved meanwhile: the next hold returns them
            if assignment is not None or self.run.channel.hung_up:
                return assignment
            # Whichever fell due first happens first (a clock can jump past both).
            step_at = self.started + self.steps[0].after if self.steps else math.inf
            every = self.config.announce_every
            notice_at = self.announced + every if every else math.inf
            if min(step_at, notice_at) > self.clock.now():
                continue
            if step_at <= notice_at:
                step = self.steps.pop(0)
                if step.overflow:
                    return None
                skills = step.skills if step.skills is not None else self.skills
                await router.requalify(self.ticket, skills, step.priority, step.any_skills)
                self.skills = dict(skills)
                if step.any_skills is not None:
                    self.any_skills = dict(step.any_skills)
                self.run.event("escalated", after=step.after, skills=skills)
            else:
                self.announced = notice_at  # keep the cadence even after a late wake-up
                await self._announce()

    async def _announce(self) -> None:
        router = self.run.engine.router
        assert router is not None
        place = await router.position(self.ticket)
        if place is None:
            return
        # Each of the agents able to take the call frees up once per handle
        # time (recent handle times when the queue has them, the configured
        # one before): the calls ahead are shared among them.
        measured = await router.handle_time(self.ticket.queue)
        serving = await router.staffed(self.skills, self.any_skills or None)
        if serving:
            minutes = max(1, math.ceil(place * (measured or self.config.aht) / serving / 60))
            text = {
                "en": f"You are number {place} in the queue. The wait is about {minutes} minutes.",
                "ko": f"대기 순서는 {place}번째입니다. 약 {minutes}분 기다리셔야 합니다.",
            }
        else:
            minutes = None
            text = {
                "en": f"You are number {place} in the queue.",
                "ko": f"대기 순서는 {place}번째입니다.",
            }
        if self.callback_digit:
            key = self.callback_digit
            text = {
                "en": text["en"] + f" To be called back without losing your place, press {key}.",
                "ko": text["ko"] + f" 순서를 유지한 채 전화를 다시 받으시려면 {key}번을 누르세요.",
            }
        self.run.event("position", place=place, minutes=minutes, agents=serving)
        await self.run.channel.set_music(False)
        await _play(self.run, await self.run.sound(text))


#: What the hold returns when the caller pressed the callback key.
_CALLBACK: Final = object()


def _callback_confirmed(run: Run) -> dict[str, str]:
    spoken = " ".join(run.channel.env.callerid.lstrip("+"))
    return {
        "en": f"We will call you back at {spoken} when an agent is free. Goodbye.",
        "ko": f"상담원이 연결되면 {spoken} 번호로 전화 드리겠습니다. 감사합니다.",
    }


async def _hold(
    run: Run, router: Any, ticket: Any, timeout: float | None = None, key: str | None = None
) -> Any:
    """Music on hold until an agent is reserved, the caller hangs up, ``timeout``, or
    (when ``key`` is offered) the caller presses it: then :data:`_CALLBACK`.

    Keys are only heard while an AGI command reads them, so with a callback key
    the hold listens in slices of WAIT FOR DIGIT (music goes on meanwhile); a
    reservation waits for the slice to end (at most a second) before the dial.
    """
    channel = run.channel
    await channel.set_music(True)
    hangup = asyncio.ensure_future(channel.wait_for_hangup())
    waiting = asyncio.ensure_future(router.wait(ticket))
    stop = asyncio.Event()
    listening = asyncio.ensure_future(_listen_for(channel, key, stop)) if key else None
    watched = {hangup, waiting} if listening is None else {waiting, listening}
    try:
        await run.engine.hold_clock.wait(watched, timeout)
    finally:
        hangup.cancel()
        stop.set()
        if listening is not None:
            # A command in flight is never cancelled (its reply would be lost):
            # the slice ends by itself.
            with contextlib.suppress(ChannelHangup, AgiError):
                await listening
        if not waiting.done():
            waiting.cancel()
    pressed = (
        listening is not None
        and listening.done()
        and not listening.cancelled()
        and listening.exception() is None
        and listening.result()
    )
    if pressed and not waiting.done():  # an agent reserved meanwhile wins
        await channel.set_music(False)
        return _CALLBACK
    if channel.hung_up or not waiting.done() or waiting.cancelled():
        return None
    await channel.set_music(False)
    return waiting.result()


async def _listen_for(channel: Any, key: str, stop: asyncio.Event) -> bool:
    """WAIT FOR DIGIT in one-second slices until ``key`` comes (True) or ``stop`` is set."""
    while not stop.is_set():
        if await channel.wait_for_digit(1000) == key:
            return True
    return False


async def _dial_agent(run: Run, router: Any, leg: _Leg, config: QueueConfig) -> str | None:
    """Ring the reserved agent; they are ``on_call`` from the answer when AMI tells it
    (the tracker), else from DIALSTATUS. ``g``: the caller comes back to the flow
    (the survey) when the agent hangs up. ``leg.connected`` says whether they answered,
    whatever the order in which Asterisk reports the end of the call."""
    assignment = leg.assignment
    ring, options = config.ring_timeout, "g" + config.dial_options
    tracker = run.engine.answers
    if tracker is None:
        status = await _dial(run, assignment.endpoint, ring, options)
        if status == "ANSWER":
            leg.connected = True
            await router.connected(assignment)
        return status

    async def on_answer(answered: asyncio.Future[str]) -> None:
        if await answered == "ANSWER":
            leg.connected = True
            await router.connected(assignment)

    with tracker.expect(run.channel.env.channel, assignment.endpoint) as answered:
        watcher = asyncio.ensure_future(on_answer(answered))
        try:
            status = await _dial(run, assignment.endpoint, ring, options)
        finally:
            if not answered.done():
                watcher.cancel()  # no answer heard: nothing is in flight
            # else the connection is being recorded: let it finish, never cut it.
            with contextlib.suppress(asyncio.CancelledError, RoutingError):
                await watcher
    if status == "ANSWER" and not leg.connected:
        leg.connected = True
        await router.connected(assignment)
    return status


#: Variables handed to the agent's channel; caller-entered values, never sensitive ones.
_HANDOFF_BYTES = 900


async def _hand_over(run: Run, node: m.QueueNode, assignment: Any) -> None:
    """What the caller chose, said and entered goes to the agent: channel variables
    inherited by the agent's leg (``__`` prefix) and an event for the console."""
    shown = {
        name: value
        for name, value in run.variables.items()
        if name not in run.sensitive and name not in ("call",) and not name.startswith("_")
    }
    context = json.dumps(shown, ensure_ascii=False, separators=(",", ":"), default=str)
    if len(context.encode()) > _HANDOFF_BYTES:
        context = json.dumps({"caller": shown.get("caller")}, ensure_ascii=False, default=str)
    channel = run.channel
    with contextlib.suppress(AgiError):
        await channel.set_variable("__IVR_FLOW", run.flow.id)
        await channel.set_variable("__IVR_QUEUE", node.queue)
        await channel.set_variable("__IVR_CONTEXT", context)
    run.event("handed_over", agent=assignment.agent_id, context=shown)
    router = run.engine.router
    if router is not None:  # for the console: what the agent is about to hear about
        with contextlib.suppress(RoutingError):
            await router.note(
                "handoff",
                call=run.channel.uniqueid,
                agent=assignment.agent_id,
                queue=node.queue,
                context=context,
            )


async def _dial(run: Run, destination: str, timeout: int, *options: str) -> str | None:
    """Dial; DIALSTATUS even when the caller hangs up during the call."""
    with contextlib.suppress(ChannelHangup):  # GET VARIABLE still works on a dead channel
        await run.channel.exec("Dial", destination, str(timeout), *options)
    try:
        return await run.channel.get_variable("DIALSTATUS")
    except (ChannelHangup, AgiError):
        return None




async def transfer(run: Run, node: m.Transfer) -> str | None:
    target = run.render(node.to)
    # An extension is 2-6 digits; anything else must be a plain number on the
    # allow-list. Nothing else is dialled: no '@', '&', '/' or letters.
    internal = bool(EXTENSION.match(target))
    allowed = internal or (
        NUMBER.match(target) is not None
        and any(fnmatch.fnmatchcase(target, p) for p in run.engine.transfer_allow)
    )
    if not allowed:
        run.event("transfer_refused", to=target)
        return node.on_failure
    template = run.engine.internal_dial if internal else run.engine.external_dial
    status = await _dial(run, template.format(to=target), node.timeout)
    run.event("transferred", to=target, status=status)
    return None if status == "ANSWER" else node.on_failure


async def voicemail(run: Run, node: m.Voicemail) -> str | None:
    await run.channel.exec("VoiceMail", run.render(node.mailbox), "u")
    run.event("voicemail", mailbox=node.mailbox)
    await run.channel.hangup()
    return None


#: A WAV file's header alone: Asterisk writes it for a recording that heard nothing.
_WAV_HEADER = 44


async def record(run: Run, node: m.Record) -> str | None:
    await _play(run, await run.sound(node.prompt, node.file))
    path = f"{run.engine.spool}/{run.channel.uniqueid}-{node.variable}"
    # Asterisk counts s= silence from the start of the recording (PROTOCOL.md
    # §8.3): a smaller s= than the time the caller is given to begin would cut
    # them off before their first word.
    starts = math.ceil(node.timeout or run.defaults.timeout)
    file = Path(f"{path}.wav")
    try:
        result = await run.channel.record_file(
            path,
            "wav",
            "#",
            node.max_seconds * 1000,
            beep=node.beep,
            silence_s=max(node.silence_seconds, starts),
        )
    except ChannelHangup:
        # Callers end a message by hanging up: what they said is kept (and told);
        # a recording of nothing is not.
        _recorded(run, node, file, None)
        raise
    _recorded(run, node, file, result.endpos)
    return node.next


def _recorded(run: Run, node: m.Record, file: Path, samples: int | None) -> None:
    """Set the node's variable to the file, or to None (and remove it) when it is empty."""
    try:
        empty = samples == 0 or file.stat().st_size <= _WAV_HEADER
    except OSError:  # a spool Asterisk does not share with the engine
        empty = samples == 0
    if empty:
        file.unlink(missing_ok=True)
        run.set(node.variable, None)
        run.event("recorded", file=None, samples=0)
        return
    run.set(node.variable, str(file))
    run.event("recorded", file=str(file), samples=samples)


async def survey(run: Run, node: m.Survey) -> str | None:
    for question in node.questions:
        files = await run.sound(question.prompt)
        digit = await _ask(run, files, "12345", run.defaults.timeout)
        score = int(digit) if digit and digit in "12345" else None
        run.set(f"survey_{question.id}", score)
        run.event("survey_answer", question=question.id, score=score)
        router = run.engine.router
        if router is not None and run.last_queue and question.id == "csat":
            with contextlib.suppress(RoutingError):  # KPIs may miss it; the call goes on
                await router.note(
                    "survey",
                    call=run.channel.uniqueid,
                    queue=run.last_queue,
                    question=question.id,
                    score="" if score is None else str(score),
                )
    return node.next


async def hangup(run: Run, node: m.HangupNode) -> str | None:
    if node.say is not None:
        await _play(run, await run.sound(node.say))
    await run.channel.hangup()
    return None


HANDLERS: dict[str, Handler] = {
    "play": play,
    "say": say,
    "menu": menu,
    "gather": gather,
    "speech": speech,
    "faq": faq,
    "branch": branch,
    "set": set_,
    "hours": hours,
    "language": language,
    "http": http,
    "goto": goto,
    "announcement": announcement,
    "queue": queue,
    "transfer": transfer,
    "voicemail": voicemail,
    "record": record,
    "survey": survey,
    "hangup": hangup,
}
