"""Hearing the caller: speech and keys at once, with barge-in, over AudioSocket.

For a menu, speech or FAQ node the engine registers an AudioSocket session
and sends ``EXEC AudioSocket <uuid>,<engine host:port>`` on the call's AGI
channel; Asterisk connects and streams the caller's audio (20 ms frames) and
keys, the engine streams the prompt back paced in real time and silence
after it (Asterisk ends a session with no frame either way for 2 s, and a
phone with silence suppression sends nothing while its caller is quiet),
feeds the caller's audio to Vosk as it comes (decoding in worker threads),
stops the prompt the moment the caller starts to speak, and ends the session
with the hang-up frame on a key, a final result or a timeout. End of speech
and the no-input timeout are decided in audio time (a phone that sends
silence) and on the wall clock (one that sends nothing: no frame for
``end_silence`` seconds after speech ends the answer), and a session that
ends early keeps what was heard. Where AudioSocket is not available the
prompt is played with ``STREAM FILE`` (keys stop it) and the answer recorded
with ``RECORD FILE`` into the spool folder shared with Asterisk, in takes: a
first one of the no-input time (``s=`` counts silence from the start, so it
must not end sooner), then short ones while the caller speaks, each
recognised as it comes and deleted at once.

``on_latency`` (the engine's ``/metrics``) gets each recognition's latency: from
the moment the engine knows the caller has finished speaking (the end-silence
heard or timed out on the wall clock, the session ended, or the recording take
that ended on silence returned) to the recogniser's result. The end silence
itself is the node's setting, not latency, so it is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from ivr.agi.channel import Channel
from ivr.audiosocket.server import AudioSocketServer
from ivr.audiosocket.session import AudioSocketSession, Dtmf
from ivr.errors import AgiError, ApplicationNotFoundError, ChannelHangup
from speech.audio import SAMPLE_RATE, read_wav, to_pcm
from speech.errors import ModelNotFoundError, SpeechError
from speech.private import CallFolder
from speech.recognizer import Final, Recognizer, Result, SpeechStarted, Utterance
from speech.tts import Synthesizer

__all__ = ["Heard", "Listen", "SpeechInput"]

log = structlog.get_logger("ivr.speech")

#: Bytes per second of 8 kHz signed linear.
_BYTES_PER_SECOND = SAMPLE_RATE * 2
#: A recording take after the first, while the caller speaks (seconds).
_TAKE = 1.5
#: Recorded audio this much shorter than the take's time was not sent (silence suppression).
_MISSING = 0.1


@dataclass(frozen=True, slots=True)
class Listen:
    """What a node asks for."""

    language: str
    #: The prompt: (text, voice) spoken by the engine, and/or Asterisk sound files
    #: played first (files cannot be streamed over AudioSocket: no barge-in then).
    text: str = ""
    voice: str | None = None
    #: The text is made from the call's data (a value read back): never cached, but
    #: streamed from memory over AudioSocket, or for RECORD FILE written into this
    #: call's own folder (removed when the call ends).
    private: CallFolder | None = None
    files: tuple[str, ...] = ()
    #: Phrases the grammar allows (options and synonyms); None: free-form.
    phrases: Sequence[str] | None = None
    #: Keys that answer (a menu's digits); '' refuses keys.
    keys: str = "0123456789*#"
    no_input: float = 5.0
    end_silence: float = 0.8
    max_utterance: float = 15.0
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class Heard:
    """What the caller did: said a phrase, pressed a key, said something else, nothing."""

    kind: Literal["speech", "key", "nomatch", "noinput"]
    phrase: str | None = None
    text: str = ""
    digit: str | None = None
    confidence: float = 0.0
    via: Literal["audiosocket", "record"] = "audiosocket"


#: Told (language, seconds) for each recognition: end of speech to the result.
LatencyObserver = Callable[[str, float], None]


def _heard(result: Result, via: Literal["audiosocket", "record"]) -> Heard:
    if result.status == "match":
        return Heard("speech", result.phrase, result.text, None, result.confidence, via)
    if result.status == "nomatch":
        return Heard("nomatch", None, result.text, None, result.confidence, via)
    return Heard("noinput", via=via)


class SpeechInput:
    """The engine's ears: Vosk over AudioSocket, or over a recorded file."""

    def __init__(
        self,
        recognizer: Recognizer,
        synthesizer: Synthesizer,
        *,
        server: AudioSocketServer | None,
        advertise: str = "",
        spool: Path | None = None,
        connect_timeout: float = 3.0,
        languages: frozenset[str] = frozenset(),
        on_latency: LatencyObserver | None = None,
    ) -> None:
        self.recognizer = recognizer
        #: Each recognition's latency, end of speech to result (``observe_asr``).
        self.on_latency = on_latency
        #: The languages whose models may load (``IVR_SPEECH_LANGUAGES``); empty: all.
        self.languages = languages
        self.synthesizer = synthesizer
        self.server = server
        #: host:port Asterisk connects to (the server's own address by default).
        self.advertise = advertise
        self.spool = spool
        self.connect_timeout = connect_timeout
        self._missing: set[str] = set()

    def speaks(self, language: str) -> bool:
        """True when a model for ``language`` is installed and allowed to load (else
        menus take keys only)."""
        if language in self._missing or (self.languages and language not in self.languages):
            return False
        try:
            self.recognizer.registry.path_for(language)
        except ModelNotFoundError as exc:
            self._missing.add(language)
            log.warning("speech.no_model", language=language, hint=str(exc))
            return False
        return True

    async def listen(self, channel: Channel, request: Listen) -> Heard:
        """Play the prompt and hear the answer; keys work throughout."""
        for name in request.files:
            result = await channel.stream_file(name, request.keys)
            if result.digit:
                return Heard("key", digit=result.digit)
        if self.server is not None:
            heard = await self._over_audiosocket(channel, request)
            if heard is not None:
                return heard
        return await self._over_recording(channel, request)

    # ---------------------------------------------------------------- streaming

    async def _over_audiosocket(self, channel: Channel, request: Listen) -> Heard | None:
        assert self.server is not None
        pcm = b""
        if request.text and request.private is not None:
            pcm = await self.synthesizer.pcm_private(request.text, request.language, request.voice)
        elif request.text:
            pcm = await self.synthesizer.pcm(request.text, request.language, request.voice)
        prompt = len(pcm) / _BYTES_PER_SECOND
        utterance = await self.recognizer.start(
            request.language,
            request.phrases,
            # The caller may answer during the prompt (barge-in) or after it.
            no_input=prompt + request.no_input,
            end_silence=request.end_silence,
            max_utterance=request.max_utterance,
            threshold=request.threshold,
        )
        call_id = uuid.uuid4()
        session = self.server.expect(call_id, timeout=self.connect_timeout)
        address = self.advertise or self.server.address
        app = asyncio.ensure_future(channel.exec("AudioSocket", str(call_id), address))
        connected = asyncio.ensure_future(session.wait_connected(self.connect_timeout))
        # Whichever comes first: Asterisk connects, or EXEC returns (the module is
        # missing, the engine unreachable): then no need to wait the whole timeout.
        await asyncio.wait({connected, app}, return_when=asyncio.FIRST_COMPLETED)
        if not connected.done() or connected.exception() is not None:
            connected.cancel()
            utterance.cancel()
            await session.hangup()
            await self._end_app(app, channel)
            log.warning("speech.audiosocket_unavailable", address=address, then="RECORD FILE")
            return None
        player = asyncio.ensure_future(session.play(pcm)) if pcm else None
        heard: Heard | None = None
        try:
            heard = await self._hear(session, utterance, request, prompt)
        finally:
            session.stop_playback()
            if player is not None:
                with contextlib.suppress(Exception):
                    await player
            if not utterance.done:
                utterance.cancel()
            await session.hangup()
            await self._end_app(app, channel)
        if heard is None:
            if channel.hung_up:
                raise ChannelHangup("the caller hung up while speaking", how="audiosocket")
            # The session ended before the caller said anything (bad frames, Asterisk
            # closed it): hear the caller through a recording rather than drop them.
            log.warning("speech.audiosocket_ended", reason=str(session.end_reason))
        return heard

    def _recognised(self, result: Result, language: str, ended: float) -> Result:
        """``result``, its latency told to ``on_latency`` (from ``ended``, loop time)
        when something was said (a no-input result recognised nothing)."""
        if self.on_latency is not None and result.status != "noinput":
            seconds = asyncio.get_running_loop().time() - ended
            self.on_latency(language, max(0.0, seconds))
        return result

    async def _hear(
        self, session: AudioSocketSession, utterance: Utterance, request: Listen, prompt: float
    ) -> Heard | None:
        """The caller's answer from the session's events; None when it ends without one.

        The utterance decides in audio time; the wall clock decides too, for a
        phone that sends no frame while its caller is silent: no speech
        ``prompt + no_input`` seconds after the start is no input, and no frame
        for ``end_silence`` seconds after speech (less the silence the last
        frames held; or ``max_utterance`` of speech) ends the answer. If the
        session ends early after the caller spoke, what was heard is the
        answer.
        """
        loop = asyncio.get_running_loop()
        opened = loop.time()
        spoke: float | None = None  # when the caller started to speak (loop time)
        events = aiter(session)
        while True:
            if spoke is None:
                deadline = opened + prompt + request.no_input
            else:
                # Silence already heard at the end of the last frames counts too.
                last = max(spoke, session.last_audio or spoke)
                rest = max(0.0, request.end_silence - utterance.quiet)
                deadline = min(last + rest, spoke + request.max_utterance)
            try:
                async with asyncio.timeout_at(deadline):
                    event = await anext(events)
            except TimeoutError:
                if spoke is None:
                    return Heard("noinput")
                # The caller finished at the deadline (the wall clock's end silence).
                longest = loop.time() >= spoke + request.max_utterance
                result = await utterance.finish("max_utterance" if longest else "end_silence")
                return _heard(self._recognised(result, request.language, deadline), "audiosocket")
            except StopAsyncIteration:
                if spoke is not None:
                    # Asterisk ended the session (EXEC gave -1) after the caller
                    # spoke: recognise what was heard rather than ask again.
                    ended = loop.time()
                    result = await utterance.finish("ended")
                    return _heard(self._recognised(result, request.language, ended), "audiosocket")
                return None
            arrived = loop.time()  # this frame may hold the end of the caller's speech
            if isinstance(event, Dtmf):
                if event.digit in request.keys:
                    return Heard("key", digit=event.digit)
                continue
            for found in await utterance.feed(event.pcm):
                if isinstance(found, SpeechStarted):
                    spoke = loop.time()
                    session.stop_playback()  # barge-in
                elif isinstance(found, Final):
                    result = self._recognised(found.result, request.language, arrived)
                    return _heard(result, "audiosocket")

    async def _end_app(self, app: asyncio.Future[int], channel: Channel) -> None:
        """Let EXEC AudioSocket return (never cancel a command in flight)."""
        try:
            result = await app
        except ChannelHangup:
            raise
        except ApplicationNotFoundError:
            # Asterisk has no app_audiosocket: every later call would fail the same
            # way, so stop asking and use RECORD FILE from now on.
            log.error(  # noqa: TRY400 - what to do, not a traceback
                "speech.audiosocket_missing",
                hint="load app_audiosocket and res_audiosocket in modules.conf",
                then="RECORD FILE for every call",
            )
            self.server = None
            return
        except AgiError as exc:
            log.warning("speech.audiosocket_failed", error=str(exc))
            return
        if result == -1 and channel.hung_up:
            raise ChannelHangup("the caller hung up", how="audiosocket")

    # ---------------------------------------------------------------- fallback

    async def _over_recording(self, channel: Channel, request: Listen) -> Heard:
        if request.text:
            if request.private is not None:
                path = await self.synthesizer.render_private(
                    request.text, request.language, request.voice, request.private.new_file()
                )
            else:
                path = await self.synthesizer.render(request.text, request.language, request.voice)
            played = await channel.stream_file(str(path.resolve().with_suffix("")), request.keys)
            if played.digit:
                return Heard("key", digit=played.digit, via="record")
        if self.spool is None:
            raise SpeechError("no AudioSocket and no spool folder: speech cannot be heard")
        utterance = await self.recognizer.start(
            request.language,
            request.phrases,
            no_input=request.no_input,
            end_silence=request.end_silence,
            max_utterance=request.max_utterance,
            threshold=request.threshold,
        )
        try:
            return await self._record(channel, request, utterance, self.spool)
        finally:
            if not utterance.done:
                utterance.cancel()

    async def _record(
        self, channel: Channel, request: Listen, utterance: Utterance, spool: Path
    ) -> Heard:
        """Record the answer in takes, recognising each as it comes.

        ``RECORD FILE ... s=N`` counts silence from the start, so the first
        take lasts the no-input time with ``s=`` no shorter; Asterisk cannot
        be told to stop when the caller has finished, so while the caller
        speaks the next takes are short (with ``s=`` now a real end of
        speech, the caller being mid-answer). A take shorter than its time
        ended on silence; audio missing from a take (a phone that sends
        nothing in silence) is fed as the silence it was.
        """
        loop = asyncio.get_running_loop()
        budget = request.no_input + request.max_utterance
        limit, silence = request.no_input, math.ceil(request.no_input)
        spent = 0.0
        while True:
            began = loop.time()
            digit, pcm = await self._take(channel, request, spool, limit, silence)
            ended = loop.time()  # the take holds the end of speech, if it came
            if digit is not None:
                return Heard("key", digit=digit, via="record")
            if pcm is None:
                return Heard("noinput", via="record")
            took = loop.time() - began
            heard = len(pcm) / _BYTES_PER_SECOND
            missing = took - heard
            if missing > _MISSING:
                # Frames a phone did not send: silence before the answer in the
                # first take, after it in the later ones (the caller was mid-answer).
                gap = bytes(round(min(missing, limit) * SAMPLE_RATE) * 2)
                pcm = gap + pcm if spent == 0 else pcm + gap
            for found in await utterance.feed(pcm):
                if isinstance(found, Final):
                    return _heard(self._recognised(found.result, request.language, ended), "record")
            if not utterance.speaking:
                return Heard("noinput", via="record")
            spent += max(heard, took)
            if max(heard, took) < limit - _MISSING:
                # Asterisk stopped on s= silence after the caller spoke.
                result = await utterance.finish("end_silence")
                return _heard(self._recognised(result, request.language, ended), "record")
            if spent >= budget - _MISSING:
                result = await utterance.finish("max_utterance")
                return _heard(self._recognised(result, request.language, ended), "record")
            limit = min(_TAKE, budget - spent)
            silence = max(1, math.ceil(request.end_silence))

    async def _take(
        self, channel: Channel, request: Listen, spool: Path, limit: float, silence: int
    ) -> tuple[str | None, bytes | None]:
        """One ``RECORD FILE``: (the key that stopped it, or None; the audio, or None
        when Asterisk wrote no file). The file is removed whatever happens."""
        name = spool / f"speech-{uuid.uuid4().hex}"
        file = name.with_name(name.name + ".wav")
        try:
            recorded = await channel.record_file(
                str(name), "wav", request.keys, round(limit * 1000), silence_s=silence
            )
            if recorded.digit:
                return recorded.digit, b""
            if not file.exists():
                log.warning(
                    "speech.no_recording", file=str(file), hint="share the spool with Asterisk"
                )
                return None, None
            return None, await asyncio.to_thread(_read_recording, file)
        finally:
            # What a caller said never outlives the call: a hang-up, a key or an
            # error mid-take removes the file too (also one holding no audio).
            file.unlink(missing_ok=True)


def _read_recording(file: Path) -> bytes:
    """The recording as 8 kHz signed linear; nothing for a file with no audio."""
    try:
        return to_pcm(read_wav(file))
    except (EOFError, wave.Error, ValueError):
        return b""
