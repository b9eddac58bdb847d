"""What each node type does on a call. A handler returns the next node's name,
or ``None`` when the call has left the flow (hung up, transferred, in voicemail).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from ivr.agi.channel import Channel
from ivr.errors import PlaybackError
from ivr.flows import model as m
from ivr.flows.expr import parse
from ivr.flows.interpreter import FlowRuntimeError, Run
from routing.errors import RoutingError

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
    if node.as_ == "digits":
        await channel.say_digits(re.sub(r"[^0-9*#]", "", value))
    elif node.as_ == "number":
        digits = re.sub(r"[^0-9-]", "", value.split(".")[0]) or "0"
        await channel.say_number(int(digits))
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


async def menu(run: Run, node: m.Menu) -> str | None:
    defaults = run.flow.defaults
    timeout = node.timeout or defaults.timeout
    retries = defaults.retries if node.retries is None else node.retries
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


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return bool(digits) and total % 10 == 0


async def gather(run: Run, node: m.Gather) -> str | None:
    defaults = run.flow.defaults
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
            run.event("gathered", **{node.variable: digits})
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
                break
            collected += key
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


async def speech(run: Run, node: m.Speech) -> str | None:
    raise FlowRuntimeError(
        "speech nodes need the Vosk recognizer, which this engine does not have yet; "
        "use a menu with digits meanwhile"
    )


async def branch(run: Run, node: m.Branch) -> str | None:
    for condition in node.conditions:
        if parse(condition.if_).test(run.variables):
            return condition.goto
    return node.else_


async def set_(run: Run, node: m.Set) -> str | None:
    for name, value in node.variables.items():
        run.set(name, run.render(value) if isinstance(value, str) else value)
    return node.next


def is_open(node: m.Hours, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(node.timezone))
    if local.date() in node.holidays:
        return False
    spans = node.schedule.get(m.DAYS[local.weekday()], [])  # type: ignore[call-overload]
    moment = local.time()
    for span in spans:
        start, end = span.split("-")
        opens = time.fromisoformat(start)
        closes = time(23, 59, 59, 999999) if end == "24:00" else time.fromisoformat(end)
        if opens <= moment < closes:
            return True
    return False


async def hours(run: Run, node: m.Hours) -> str | None:
    opened = is_open(node, run.engine.clock())
    run.event("hours", open=opened)
    return node.open if opened else node.closed


async def language(run: Run, node: m.Language) -> str | None:
    files = await run.sound(node.prompt, node.file)
    retries = run.flow.defaults.retries if node.retries is None else node.retries
    for _ in range(retries + 1):
        digit = await _ask(run, files, KEYS, node.timeout or run.flow.defaults.timeout)
        chosen = next((o for o in node.options if o.digit == digit), None)
        if chosen is not None:
            run.language = chosen.language
            run.set("language", chosen.language)
            await run.channel.set_variable("CHANNEL(language)", chosen.language)
            return node.next
    return node.next


async def http(run: Run, node: m.Http) -> str | None:
    url = run.render(node.url, url=True)
    headers = {k: run.render(v) for k, v in node.headers.items()}
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
    channel = run.channel
    try:
        ticket = await router.enqueue(channel.uniqueid, node.queue, node.skills, node.priority)
    except RoutingError as exc:
        run.event("routing_unavailable", queue=node.queue, error=str(exc))
        return node.on_failure
    run.event("queued", queue=node.queue, skills=node.skills, priority=node.priority)
    while True:
        await channel.set_music(True)
        hangup = asyncio.ensure_future(channel.wait_for_hangup())
        waiting = asyncio.ensure_future(router.wait(ticket))
        try:
            await asyncio.wait({hangup, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hangup.cancel()
        if not waiting.done():
            waiting.cancel()
            await router.abandon(ticket)
            run.event("abandoned", queue=node.queue)
            return None
        assignment = waiting.result()
        await channel.set_music(False)
        await channel.exec("Dial", assignment.endpoint, str(run.engine.ring_timeout), "g")
        status = await channel.get_variable("DIALSTATUS")
        run.event("dialled", agent=assignment.agent_id, status=status)
        if status == "ANSWER":
            await router.connected(assignment)
            await router.completed(assignment)
            return node.next
        await router.missed(assignment)


async def transfer(run: Run, node: m.Transfer) -> str | None:
    target = run.render(node.to)
    external = target.startswith("+") or (target.isdigit() and len(target) > 6)
    if external and not any(fnmatch.fnmatchcase(target, p) for p in run.engine.transfer_allow):
        run.event("transfer_refused", to=target)
        return node.on_failure
    template = run.engine.external_dial if external else run.engine.internal_dial
    await run.channel.exec("Dial", template.format(to=target), str(node.timeout))
    status = await run.channel.get_variable("DIALSTATUS")
    run.event("transferred", to=target, status=status)
    return None if status == "ANSWER" else node.on_failure


async def voicemail(run: Run, node: m.Voicemail) -> str | None:
    await run.channel.exec("VoiceMail", run.render(node.mailbox), "u")
    run.event("voicemail", mailbox=node.mailbox)
    await run.channel.hangup()
    return None


async def record(run: Run, node: m.Record) -> str | None:
    await _play(run, await run.sound(node.prompt, node.file))
    path = f"{run.engine.spool}/{run.channel.uniqueid}-{node.variable}"
    result = await run.channel.record_file(
        path,
        "wav",
        "#",
        node.max_seconds * 1000,
        beep=node.beep,
        silence_s=node.silence_seconds,
    )
    run.set(node.variable, f"{path}.wav")
    run.event("recorded", file=f"{path}.wav", samples=result.endpos)
    return node.next


async def survey(run: Run, node: m.Survey) -> str | None:
    for question in node.questions:
        files = await run.sound(question.prompt)
        digit = await _ask(run, files, "12345", run.flow.defaults.timeout)
        score = int(digit) if digit and digit in "12345" else None
        run.set(f"survey_{question.id}", score)
        run.event("survey_answer", question=question.id, score=score)
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
