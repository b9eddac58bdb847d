"""What each node type does on a call. A handler returns the next node's name,
or ``None`` when the call has left the flow (hung up, transferred, in voicemail).

Nodes that hear the caller mask what was heard when the flow says
``sensitive: true`` (events, traces and every log line of the call meanwhile,
see :func:`ivr.log.masking`); prompts made from what a caller said or typed
are private to the call (``Run.sound``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import math
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import structlog

from ivr.agi.channel import Channel
from ivr.errors import ChannelHangup, PlaybackError
from ivr.flows import model as m
from ivr.flows import services
from ivr.flows.announcements import Notice
from ivr.flows.expr import parse
from ivr.flows.playing import KEYS, ask, play_files
from ivr.flows.ports import ReplyTooLargeError
from ivr.flows.queueing import dial, queue
from ivr.flows.run import Rendered, Run
from ivr.log import masking
from ivr.numbers import EXTENSION, NUMBER
from ivr.speech_input import Heard, Listen, SpeechInput
from routing.errors import RoutingError
from speech.faq import FaqEntry, FaqMatcher

__all__ = ["HANDLERS", "says_numbers"]

log = structlog.get_logger("ivr.flows")

Handler = Callable[[Run, Any], Awaitable[str | None]]
_T = TypeVar("_T")

#: Keys of events that carry what a caller said: masked in the trace and the
#: engine's hook too while a sensitive speech or FAQ node runs (log lines never
#: carry them: ``Run.event`` and ``speech.result`` leave them out).
_HEARD = ("phrase", "text", "value", "asked", "question", "candidate", "words")


async def play(run: Run, node: m.Play) -> str | None:
    await play_files(run, await run.sound(node.say, node.file), KEYS if node.interruptible else "")
    return node.next


#: Languages whose number words Asterisk's say.c knows (``say_number_full``, 22.9.0).
#: Any other language would hear its numbers with English grammar: TTS says them.
_NUMBER_LANGUAGES = frozenset(
    {"en", "cs", "da", "de", "es", "fr", "gr", "ja", "he", "hu", "is", "it", "ka"}
    | {"nl", "no", "pl", "pt", "ru", "se", "th", "zh", "ur", "vi", "dr", "ps"}
)
#: SAY NUMBER reads an int (sscanf "%30d"): larger values are spoken by TTS.
_INT_MAX = 2**31 - 1
_KEY_SOUNDS = {"*": "digits/star", "#": "digits/pound"}


def says_numbers(language: str) -> bool:
    """True when Asterisk's SAY NUMBER knows ``language``'s number words."""
    return language[:2].lower() in _NUMBER_LANGUAGES


async def say(run: Run, node: m.Say) -> str | None:
    """Digits and whole numbers by Asterisk (no prompt file at all); the rest by TTS,
    rendered for this call only when the value comes from a variable."""
    value = run.render(node.value)
    sensitive = run.uses_sensitive(node.value)
    channel = run.channel
    number = _whole(value) if node.as_ == "number" else None
    try:
        with channel.sensitive() if sensitive else contextlib.nullcontext():
            if node.as_ == "digits":
                await _say_digits(run, re.sub(r"[^0-9*#]", "", value))
                return node.next
            if number is not None and says_numbers(run.language):
                await channel.say_number(number)
                return node.next
    except PlaybackError as exc:
        run.event("prompt_failed", sound=f"say {node.as_}", error=str(exc))
        return node.next
    phrase = value.strip() if node.as_ == "number" else _spoken(node.as_, value, node.currency)
    private = "${" in node.value
    files = await run.sound(Rendered(phrase), private=private, sensitive=sensitive)
    await play_files(run, files)
    return node.next


async def _say_digits(run: Run, digits: str) -> None:
    """SAY DIGITS; leading * or # as sound files (Asterisk reads the argument with
    sscanf "%d" first and refuses one that does not start with a digit)."""
    lead = len(digits) - len(digits.lstrip("*#"))
    for key in digits[:lead]:
        await run.channel.stream_file(_KEY_SOUNDS[key], "")
    if digits[lead:]:
        await run.channel.say_digits(digits[lead:])


def _whole(value: str) -> int | None:
    """The value as a whole number SAY NUMBER can say, or None."""
    match = re.fullmatch(r"\s*(-?\d{1,10})\s*", value)
    if match is None or abs(int(match.group(1))) > _INT_MAX:
        return None
    return int(match.group(1))


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
        digit = pending or await ask(run, files, KEYS, timeout)
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
            pending = await play_files(run, await run.sound(retry.prompt), KEYS)
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
            digit = await ask(run, files, KEYS, timeout)
            heard = Heard("key", digit=digit) if digit else Heard("noinput")
        else:
            spoken = run.spoken(intro, node.prompt)
            heard = await port.listen(
                run.channel,
                Listen(
                    language=run.language,
                    text=spoken.text,
                    voice=spoken.voice,
                    private=run.call_folder() if spoken.private else None,
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
            await play_files(run, await run.sound(node.invalid.prompt))
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
    with masking(*_HEARD) if node.sensitive else contextlib.nullcontext():
        for attempt in range(retries + 1):
            heard = await _hear(
                run, port, node, intro, phrases=node.grammar, keys="", threshold=node.confidence
            )
            value = heard.phrase if heard.kind == "speech" else None
            if node.grammar is None and heard.text and heard.confidence >= node.confidence:
                value = heard.text  # free-form: the words themselves
            run.event("heard", kind=heard.kind, phrase=heard.phrase, text=heard.text,
                      confidence=round(heard.confidence, 2), via=heard.via)  # fmt: skip
            if value and (
                not node.confirm
                or await _confirmed(run, port, value, timeout, sensitive=node.sensitive)
            ):
                run.set(node.variable, value, sensitive=node.sensitive)
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
    spoken = run.spoken(intro, node.prompt)
    return await port.listen(
        run.channel,
        Listen(
            language=run.language,
            text=spoken.text,
            voice=spoken.voice,
            private=run.call_folder() if spoken.private else None,
            files=(node.file,) if node.file else (),
            phrases=phrases,
            keys=keys,
            no_input=node.timeout or run.defaults.timeout,
            end_silence=node.end_silence,
            max_utterance=node.max_utterance,
            threshold=threshold,
        ),
    )


async def _confirmed(
    run: Run, port: SpeechInput, value: str, timeout: float, *, sensitive: bool
) -> bool:
    """Read the answer back (a prompt for this call only) and ask if it is right."""
    question, (yes, no) = _CONFIRM.get(run.language, _CONFIRM["en"])
    spoken = run.spoken(Rendered(question.format(value=value)), private=True, sensitive=sensitive)
    heard = await port.listen(
        run.channel,
        Listen(language=run.language, text=spoken.text, voice=spoken.voice,
               private=run.call_folder(), phrases=[yes, no], keys="12", no_input=timeout),
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
    with masking(*_HEARD) if node.sensitive else contextlib.nullcontext():
        following = await _ask_faq(run, port, node, matcher, words)
    if following is None:
        run.event("faq_handoff", asked="unanswered")
        return node.handoff
    return following


async def _ask_faq(
    run: Run, port: SpeechInput, node: m.Faq, matcher: FaqMatcher, words: list[str]
) -> str | None:
    """The FAQ's tries: the node to go to, or None when no try was answered."""
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
            item = node.entries[int(entry.key)]
            run.event("faq_answer", question=item.question, score=round(score, 2))
            # The flow's own text (a template, private if it uses a variable); which
            # answer it was says what the caller asked, so a sensitive node hides it.
            files = await run.sound(item.answer, sensitive=node.sensitive)
            await play_files(run, files)
            return node.next
        run.event("no_input" if not text else "no_match", attempt=attempt + 1)
        intro = _SORRY
    return None


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
        digit = await ask(run, files, KEYS, node.timeout or run.defaults.timeout)
        chosen = next((o for o in node.options if o.digit == digit), None)
        if chosen is not None:
            run.language = chosen.language
            run.set("language", chosen.language)
            await run.channel.set_variable("CHANNEL(language)", chosen.language)
            return node.next
    return node.next


async def http(run: Run, node: m.Http) -> str | None:
    """A lookup on the engine's pooled client, with one deadline for the whole request;
    a caller who hangs up meanwhile ends it at once (nothing goes on in a thread)."""
    url = _url(run, node)
    if url is None:
        return node.on_error
    headers = {k: run.render(v, env=True) for k, v in node.headers.items()}
    body = None
    if node.body is not None:
        body = {k: run.render(v) if isinstance(v, str) else v for k, v in node.body.items()}
    try:
        reply = await _until_hangup(
            run, run.engine.http.request(node.method, url, headers, body, node.timeout)
        )
    except ReplyTooLargeError as exc:
        # The service is misbehaving, not the call: an operator must hear of it.
        log.error("flow.http_reply_too_large", flow=run.current.id, node=run.node,  # noqa: TRY400
                  url=node.url, error=str(exc))  # fmt: skip
        run.event("http_failed", url=node.url, error=str(exc))
        return node.on_error
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


def _url(run: Run, node: m.Http) -> str | None:
    """The node's url for this call: its service's base URL, then the rest rendered
    (variables URL-encoded); None, told and logged, when the service is unknown."""
    found = services.leading(node.url)
    if found is None:
        return run.render(node.url, url=True)
    name, rest = found
    base = run.engine.services.get(name)
    if base is None:
        # The flow was loaded without the engine's services (their names are checked
        # at load otherwise): an operator must hear of it.
        reason = services.unknown(name, run.engine.services)
        log.error("flow.http_unknown_service", flow=run.current.id, node=run.node,
                  service=name, error=reason)  # fmt: skip
        run.event("http_failed", url=node.url, error=reason)
        return None
    return base + run.render(rest, url=True)


async def _until_hangup(run: Run, work: Awaitable[_T]) -> _T:
    """``work``'s result, or :class:`ChannelHangup` as soon as the caller hangs up
    (``work`` is cancelled then, and has ended when this returns)."""
    job = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(run.channel.wait_for_hangup())
    try:
        await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not job.done():
            job.cancel()
            await asyncio.wait({job})  # its connection is closed before the call goes on
    if job.cancelled() and gone.done() and not gone.cancelled():
        channel = run.channel
        raise ChannelHangup("the caller hung up during an HTTP request", how=channel.hangup_how)
    return job.result()


async def goto(run: Run, node: m.Goto) -> str | None:
    return node.target


async def announcement(run: Run, node: m.Announcement) -> str | None:
    # For the flow the call entered and the (sub)flow that holds the node.
    notice = await run.engine.announcements.notice(node.name, (run.flow.id, run.current.id))
    if notice is not None:
        run.event("announcement", name=node.name)
        await play_files(run, await _notice_sound(run, node, notice))
    return node.next


async def _notice_sound(run: Run, node: m.Announcement, notice: Notice) -> list[str]:
    """What a switched-on notice says: the admin's recording, else the admin's words
    (in their language, cached as any fixed prompt: never the call's data), else the
    node's own."""
    if notice.recording:
        return await run.sound(None, notice.recording)
    if notice.text:
        said = run.spoken(Rendered(notice.text))  # words as typed: no ${...} is read
        language = notice.language or run.language
        return [await run.engine.prompts.sound_for(said.text, language, None)]
    return await run.sound(node.say, node.file)


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
    status = await dial(run, template.format(to=target), node.timeout)
    run.event("transferred", to=target, status=status)
    return None if status == "ANSWER" else node.on_failure


async def voicemail(run: Run, node: m.Voicemail) -> str | None:
    channel = run.channel
    result = await channel.exec("VoiceMail", run.render(node.mailbox), "u")
    if channel.hung_up:  # a message is ended by hanging up: VoiceMail returns -1 then
        run.event("voicemail", mailbox=node.mailbox)
        return None
    status = await channel.get_variable("VMSTATUS")
    if result == -1 or status == "FAILED":
        # On a live channel: no greeting to play, a locked mailbox... The caller is
        # still there, so never hung up on: the node's way out, else the dialplan's
        # fallback (AGISTATUS=FAILURE).
        run.event("voicemail_failed", mailbox=node.mailbox, status=status or "")
        if node.on_failure is not None:
            return node.on_failure
        await channel.send_failure()
        run.trace.ended = "handed_back"
        return None
    run.event("voicemail", mailbox=node.mailbox, status=status or "")
    await channel.hangup()
    return None


#: A WAV file's header alone: Asterisk writes it for a recording that heard nothing.
_WAV_HEADER = 44


async def record(run: Run, node: m.Record) -> str | None:
    await play_files(run, await run.sound(node.prompt, node.file))
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
        digit = await ask(run, files, "12345", run.defaults.timeout)
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
        await play_files(run, await run.sound(node.say))
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
