"""Hearing the caller: speech and keys at once, with barge-in, over AudioSocket.

For a menu, speech or FAQ node the engine registers an AudioSocket session
and sends ``EXEC AudioSocket <uuid>,<engine host:port>`` on the call's AGI
channel. Asterisk connects and streams the caller's audio (20 ms frames) and
keys; the engine streams the prompt back paced in real time, feeds the
caller's audio to Vosk as it comes (decoding in worker threads), stops the
prompt the moment the caller starts to speak, and ends the session with the
hang-up frame on a key, a final result or a timeout. ``EXEC`` then returns
and the flow goes on.

Where AudioSocket is not available (the module is not loaded, the engine's
AudioSocket port cannot be reached from Asterisk), the prompt is played with
``STREAM FILE`` (keys stop it), then ``RECORD FILE`` with silence detection
records the answer into the spool folder shared with Asterisk, and the file
is recognised.

Timeouts are counted in audio time, so the emulator's fast mode and real
calls decide alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from ivr.agi.channel import Channel
from ivr.audiosocket.server import AudioSocketServer
from ivr.audiosocket.session import AudioSocketSession, Dtmf
from ivr.errors import AgiError, ApplicationNotFoundError, ChannelHangup
from speech.errors import ModelNotFoundError, SpeechError
from speech.recognizer import Final, Recognizer, Result, SpeechStarted, Utterance
from speech.tts import Synthesizer

__all__ = ["Heard", "Listen", "SpeechInput"]

log = structlog.get_logger("ivr.speech")


@dataclass(frozen=True, slots=True)
class Listen:
    """What a node asks for."""

    language: str
    #: The prompt: (text, voice) spoken by the engine, and/or Asterisk sound files
    #: played first (files cannot be streamed over AudioSocket: no barge-in then).
    text: str = ""
    voice: str | None = None
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
    ) -> None:
        self.recognizer = recognizer
        self.synthesizer = synthesizer
        self.server = server
        #: host:port Asterisk connects to (the server's own address by default).
        self.advertise = advertise
        self.spool = spool
        self.connect_timeout = connect_timeout
        #: Seconds beyond the audio timeouts before a session with no frames gives up.
        self.stall_margin = 5.0
        self._missing: set[str] = set()

    def speaks(self, language: str) -> bool:
        """True when a model for ``language`` is installed (else menus take keys only)."""
        if language in self._missing:
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
        pcm = (
            await self.synthesizer.pcm(request.text, request.language, request.voice)
            if request.text
            else b""
        )
        utterance = await self.recognizer.start(
            request.language,
            request.phrases,
            # The caller may answer during the prompt (barge-in) or after it.
            no_input=len(pcm) / 16000 + request.no_input,
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
        # Audio time decides the timeouts; this wall-clock bound only catches a
        # channel that sends no frames at all (one-way audio, hold).
        bound = len(pcm) / 16000 + request.no_input + request.max_utterance + self.stall_margin
        try:
            async with asyncio.timeout(bound):
                heard = await self._hear(session, utterance, request)
        except TimeoutError:
            log.warning("speech.no_audio", seconds=round(bound, 1), then="no input")
            heard = Heard("noinput")
        finally:
            session.stop_playback()
            if player is not None:
                with contextlib.suppress(Exception):
                    await player
            if heard is None or heard.kind in ("key", "noinput"):
                utterance.cancel()
            await session.hangup()
            await self._end_app(app, channel)
        if heard is None:
            if channel.hung_up:
                raise ChannelHangup("the caller hung up while speaking", how="audiosocket")
            # The session ended another way (bad frames, Asterisk closed it): hear
            # the caller through a recording rather than drop them.
            log.warning("speech.audiosocket_ended", reason=str(session.end_reason))
        return heard

    @staticmethod
    async def _hear(
        session: AudioSocketSession, utterance: Utterance, request: Listen
    ) -> Heard | None:
        """The caller's answer from the session's events; None when it ends without one."""
        async for event in session:
            if isinstance(event, Dtmf):
                if event.digit in request.keys:
                    return Heard("key", digit=event.digit)
                continue
            for found in await utterance.feed(event.pcm):
                if isinstance(found, SpeechStarted):
                    session.stop_playback()  # barge-in
                elif isinstance(found, Final):
                    return _heard(found.result, "audiosocket")
        return None

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
            path = await self.synthesizer.render(request.text, request.language, request.voice)
            played = await channel.stream_file(str(path.resolve().with_suffix("")), request.keys)
            if played.digit:
                return Heard("key", digit=played.digit, via="record")
        if self.spool is None:
            raise SpeechError("no AudioSocket and no spool folder: speech cannot be heard")
        name = self.spool / f"speech-{uuid.uuid4().hex}"
        recorded = await channel.record_file(
            str(name),
            "wav",
            request.keys,
            int((request.no_input + request.max_utterance) * 1000),
            silence_s=max(1, round(request.end_silence)),
        )
        if recorded.digit:
            return Heard("key", digit=recorded.digit, via="record")
        file = name.with_name(name.name + ".wav")
        if not file.exists():
            log.warning("speech.no_recording", file=str(file), hint="share the spool with Asterisk")
            return Heard("noinput", via="record")
        try:
            result = await self.recognizer.recognize_file(
                file,
                request.language,
                request.phrases,
                no_input=request.no_input,
                end_silence=request.end_silence,
                max_utterance=request.max_utterance,
                threshold=request.threshold,
            )
        finally:
            file.unlink(missing_ok=True)
        return _heard(result, "record")
