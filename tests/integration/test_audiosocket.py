"""The engine's AudioSocket server against the emulated Asterisk app, over real TCP.

Timing tests run the caller in real time (``speed=1.0``) and measure what
the emulator received, stamped on arrival: prompt pacing, barge-in, keys
during a prompt, the silence that keeps a session alive while a phone with
silence suppression sends nothing, and app_audiosocket's 2 s inactivity
timeout. The caller's speech onset is found the way the engine will find
it: an energy threshold on incoming frames.
"""

from __future__ import annotations

import array
import asyncio
import itertools
import json
import math
import statistics
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from structlog.testing import capture_logs

from ivr.audiosocket.protocol import FRAME_BYTES, Kind, encode_frame
from ivr.audiosocket.server import (
    Audio,
    AudioSocketServer,
    AudioSocketSession,
    AudioSocketTimeout,
    Dtmf,
    EndReason,
    PlaybackResult,
)
from ivr.emulator.audiosocket import AudioSocketRecord, run_audiosocket
from ivr.emulator.caller import Action, Hangup, Press, Talk, Timeline, say
from ivr.errors import ConfigError

from ..conftest import TRANSCRIPTS

T = TypeVar("T")
SPEECH_RMS = 1000  # the consumer's onset threshold; silence is 0, the tone ~5600


def tone(seconds: float, hz: float = 440.0, amplitude: int = 8000) -> bytes:
    count = round(seconds * 8000)
    samples = array.array(
        "h", (int(amplitude * math.sin(2 * math.pi * hz * n / 8000)) for n in range(count))
    )
    return samples.tobytes()


def rms(pcm: bytes) -> float:
    samples = array.array("h")
    samples.frombytes(pcm)
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def numbered(count: int) -> bytes:
    """Loud frames whose first sample is their index: order and loss are visible."""
    return b"".join(
        array.array("h", [i, *([4000] * (FRAME_BYTES // 2 - 1))]).tobytes() for i in range(count)
    )


@pytest.fixture
async def server() -> AsyncIterator[AudioSocketServer]:
    async with AudioSocketServer(port=0, connect_timeout=3.0, uuid_timeout=0.3) as running:
        yield running


async def converse(
    server: AudioSocketServer,
    actions: list[Action],
    engine: Callable[[AudioSocketSession], Awaitable[T]],
    *,
    speed: float | None = 1.0,
    call_id: uuid.UUID | None = None,
    dtx: bool = True,
) -> tuple[int, AudioSocketRecord, T]:
    """Run the emulated AudioSocket() with ``actions`` against ``engine``'s session.

    ``dtx=False`` is a phone that sends frames in silence too.
    """
    expected = uuid.uuid4()
    session = server.expect(expected)
    record = AudioSocketRecord("")
    timeline = Timeline(actions, speed=speed, dtx=dtx)
    data = f"{call_id or expected},{server.address}"
    app = asyncio.ensure_future(run_audiosocket(timeline, data, record))
    try:
        outcome = await asyncio.wait_for(engine(session), 15)
        result = await asyncio.wait_for(app, 5)
    finally:
        app.cancel()
    return result, record, outcome


async def consume_until_onset(session: AudioSocketSession) -> int:
    """Read events; at the first loud frame stop the prompt. Returns that frame's index."""
    for index in range(100_000):
        event = await anext(session)
        if isinstance(event, Audio) and rms(event.pcm) > SPEECH_RMS:
            session.stop_playback()
            return index
    raise AssertionError("no speech")


class TestPlayback:
    async def test_prompt_is_paced_at_20_ms_without_drift(self, server: AudioSocketServer) -> None:
        """A 2.01 s prompt arrives as 101 frames, 20 ms apart, the last padded, no drift."""
        pcm = tone(2.01)

        async def engine(session: AudioSocketSession) -> PlaybackResult:
            played = await session.play(pcm)
            await session.hangup()
            return played

        result, record, played = await converse(server, [], engine)
        assert (result, record.ending) == (0, "server-hangup")
        assert played == PlaybackResult(101, 101)
        frames = record.prompt
        assert b"".join(f.payload for f in frames) == pcm.ljust(101 * FRAME_BYTES, b"\0")
        offsets = [f.wall - frames[0].wall for f in frames]
        drift = [abs(t - i * 0.02) for i, t in enumerate(offsets)]
        assert max(drift) < 0.015, f"worst frame {max(drift) * 1000:.1f} ms off schedule"
        assert abs(offsets[-1] - 2.0) < 0.01
        gaps = [b - a for a, b in itertools.pairwise(offsets)]
        assert abs(statistics.median(gaps) - 0.02) < 0.002

    async def test_barge_in_stops_the_prompt_within_100_ms_of_speech(
        self, server: AudioSocketServer
    ) -> None:
        """The caller talks 0.6 s into a 3 s prompt; no prompt frame arrives 100 ms after."""

        async def engine(session: AudioSocketSession) -> PlaybackResult:
            await session.wait_connected()
            playing = asyncio.ensure_future(session.play(tone(3.0)))
            await consume_until_onset(session)
            played = await playing
            await session.hangup()
            return played

        result, record, played = await converse(server, [Talk(1.0, at=0.6)], engine)
        assert result == 0
        assert not played.completed
        onset = record.talk_onsets[0].wall
        heard = record.prompt
        assert sum(f.wall < onset for f in heard) > 20  # the prompt was playing
        late = heard[-1].wall - onset
        assert late < 0.1, f"prompt went on {late * 1000:.0f} ms after the caller spoke"

    async def test_barge_in_with_spoken_korean(self, server: AudioSocketServer) -> None:
        """espeak-ng's '일번' (say) stops the prompt too, and arrives byte for byte."""
        talk = say("일번", at=0.5)
        heard: list[bytes] = []

        async def engine(session: AudioSocketSession) -> None:
            await session.wait_connected()
            playing = asyncio.ensure_future(session.play(tone(3.0)))
            async for event in session:
                if isinstance(event, Audio):
                    if rms(event.pcm) > SPEECH_RMS:
                        session.stop_playback()
                    if not playing.done() or heard:
                        heard.append(event.pcm)
                if len(heard) * 0.02 > 1.5:
                    break
            await playing
            await session.hangup()

        result, record, _ = await converse(server, [talk], engine, dtx=False)
        assert result == 0
        assert record.prompt[-1].wall - record.talk_onsets[0].wall < 0.1
        spoken = talk.audio.ljust(math.ceil(talk.seconds / 0.02) * FRAME_BYTES, b"\0")
        assert spoken in b"".join(heard)

    async def test_stop_playback_writes_no_further_frame(self, server: AudioSocketServer) -> None:
        """After stop_playback() returns, the count of frames written does not move."""

        async def engine(session: AudioSocketSession) -> tuple[int, int, PlaybackResult, float]:
            await session.wait_connected()
            playing = asyncio.ensure_future(session.play(tone(2.0)))
            await asyncio.sleep(0.3)
            session.stop_playback()
            stopped_at = asyncio.get_running_loop().time()
            at_stop = session.frames_sent
            played = await playing
            returned = asyncio.get_running_loop().time() - stopped_at
            await asyncio.sleep(0.1)
            after = session.frames_sent
            await session.hangup()
            return at_stop, after, played, returned

        _, record, (at_stop, after, played, returned) = await converse(server, [], engine)
        assert at_stop == after == played.frames == len(record.prompt)
        assert 10 < played.frames < 20
        assert returned < 0.005

    async def test_a_new_play_replaces_the_current_one(self, server: AudioSocketServer) -> None:
        """Starting a prompt stops the one playing; only one stream reaches the caller."""

        async def engine(session: AudioSocketSession) -> tuple[PlaybackResult, PlaybackResult]:
            await session.wait_connected()
            first = asyncio.ensure_future(session.play(tone(2.0, hz=300)))
            await asyncio.sleep(0.2)
            second = await session.play(tone(0.4, hz=600))
            await session.hangup()
            return await first, second

        _, record, (first, second) = await converse(server, [], engine)
        assert not first.completed and second.completed
        assert len(record.prompt) == first.frames + second.frames
        gaps = [b.wall - a.wall for a, b in zip(record.prompt, record.prompt[1:], strict=False)]
        assert max(gaps) < 0.035 and min(gaps) > 0.005


class TestEvents:
    async def test_keys_during_a_prompt(self, server: AudioSocketServer) -> None:
        """Keys pressed while the prompt plays arrive as Dtmf events, in order, at once."""

        async def engine(session: AudioSocketSession) -> tuple[list[str], list[bool], float]:
            await session.wait_connected()
            start = asyncio.get_running_loop().time()
            playing = asyncio.ensure_future(session.play(tone(1.5)))
            digits: list[str] = []
            during: list[bool] = []
            async for event in session:
                if isinstance(event, Dtmf):
                    digits.append(event.digit)
                    during.append(session.playing)
                    if len(digits) == 2:
                        break
            elapsed = asyncio.get_running_loop().time() - start
            session.stop_playback()
            await playing
            await session.hangup()
            return digits, during, elapsed

        actions: list[Action] = [Press("5#", at=0.3, gap=0.2)]
        _, record, (digits, during, elapsed) = await converse(server, actions, engine)
        assert digits == ["5", "#"]
        assert during == [True, True]
        assert 0.48 < elapsed < 0.6
        sent = [f for f in record.sent if f.kind == Kind.DTMF]
        assert [f.payload for f in sent] == [b"5", b"#"]

    async def test_caller_hangup_mid_prompt_ends_everything_cleanly(
        self, server: AudioSocketServer
    ) -> None:
        """The caller hangs up mid-prompt: play returns early, iteration ends, no task is left."""
        before = asyncio.all_tasks()

        async def engine(session: AudioSocketSession) -> tuple[PlaybackResult, int, EndReason]:
            await session.wait_connected()
            playing = asyncio.ensure_future(session.play(tone(3.0)))
            count = 0
            async for _ in session:
                count += 1
            return await playing, count, await session.wait_closed()

        result, record, (played, count, reason) = await converse(
            server, [Hangup(at=0.4)], engine, dtx=False
        )
        assert (result, record.ending, reason) == (-1, "caller-hangup", EndReason.CALLER)
        assert 15 <= played.frames <= 25 < played.total
        assert 18 <= count <= 22  # 0.4 s of caller frames
        await asyncio.sleep(0.05)
        assert asyncio.all_tasks() - before <= {asyncio.current_task()}
        assert server.sessions == 0

    async def test_fast_mode_keeps_audio_time(self, server: AudioSocketServer) -> None:
        """speed=None: frames come as fast as read, and a talk at 1 s is frame 50."""

        async def engine(session: AudioSocketSession) -> int:
            await session.wait_connected()
            index = await consume_until_onset(session)
            await session.hangup()
            return index

        loop = asyncio.get_running_loop()
        started = loop.time()
        _, record, index = await converse(
            server, [Talk(0.5, at=1.0, audio=numbered(25))], engine, speed=None, dtx=False
        )
        assert index == 50
        assert loop.time() - started < 0.5
        audio = [f.at for f in record.sent if f.kind == Kind.AUDIO]
        steps = {round(b - a, 6) for a, b in itertools.pairwise(audio)}
        assert steps == {0.02}
        assert record.talk_onsets[0].at == pytest.approx(audio[0] + 1.0, abs=0.02)

    async def test_slow_consumer_pushes_back_and_loses_nothing(
        self, server: AudioSocketServer
    ) -> None:
        """overflow='block': a consumer that pauses gets every frame, in order, later."""

        async def engine(session: AudioSocketSession) -> tuple[list[int], int]:
            await session.wait_connected()
            await asyncio.sleep(0.3)  # the fast caller meanwhile fills every buffer
            firsts: list[int] = []
            while len(firsts) < 400:
                event = await anext(session)
                if isinstance(event, Audio) and rms(event.pcm) > SPEECH_RMS:
                    firsts.append(array.array("h", event.pcm[:2])[0])
            queued = len(session._events)
            await session.hangup()
            return firsts, queued

        _, _, (firsts, queued) = await converse(
            server, [Talk(10.0, at=0.2, audio=numbered(500))], engine, speed=None
        )
        assert firsts == list(range(400))
        assert queued <= server.max_queued + 4096 // (FRAME_BYTES + 3)

    async def test_slow_consumer_with_drop_keeps_the_queue_bounded(self) -> None:
        """overflow='drop': the oldest audio goes; the queue stays at max_queued; keys stay."""
        async with AudioSocketServer(port=0, max_queued=20, overflow="drop") as server:

            async def engine(session: AudioSocketSession) -> tuple[int, list[Any], int]:
                await session.wait_connected()
                await asyncio.sleep(0.3)
                queued = len(session._events)
                events = [await anext(session) for _ in range(queued)]
                await session.hangup()
                return queued, events, session.dropped

            _, record, (queued, events, dropped) = await converse(
                server, [Press("7", at=0.01)], engine, speed=None, dtx=False
            )
        assert queued == 20
        assert dropped > 100
        assert Dtmf("7") in events
        assert len(record.sent) > 120


class TestKeepAlive:
    """app_audiosocket polls the channel and the socket for 2,000 ms; a phone with silence
    suppression sends nothing while its caller is quiet, so only the engine keeps it open."""

    async def test_silence_after_the_prompt_keeps_a_quiet_line_open(
        self, server: AudioSocketServer
    ) -> None:
        """A 0.5 s prompt, then 3 s in which the caller sends nothing: the engine's silence
        frames follow the prompt on its 20 ms schedule, and the session ends with our
        hang-up frame (0), not Asterisk's timeout (-1)."""

        async def engine(session: AudioSocketSession) -> AudioSocketSession:
            await session.wait_connected()
            await session.play(tone(0.5))
            await asyncio.sleep(3.0)
            await session.hangup()
            return session

        result, record, session = await converse(server, [], engine)
        assert (result, record.ending) == (0, "server-hangup")
        assert record.voice == []  # the caller sent nothing at all
        assert len(record.prompt) == 25
        assert len(record.silence) == session.silence_sent > 140
        frames = [f for f in record.received if f.kind == Kind.AUDIO]
        gaps = [b.wall - a.wall for a, b in itertools.pairwise(frames)]
        assert max(gaps) < 0.06, f"a {max(gaps) * 1000:.0f} ms gap in the engine's frames"
        assert abs(statistics.median(gaps) - 0.02) < 0.002

    async def test_a_server_that_stops_sending_is_cut_off_after_two_seconds(self) -> None:
        """Without the keep-alive, a silent caller and a finished prompt: 2 s after the last
        frame either way Asterisk closes the socket (no hang-up frame) and returns -1."""
        async with AudioSocketServer(port=0, keepalive=False) as quiet:

            async def engine(session: AudioSocketSession) -> tuple[float, EndReason]:
                await session.wait_connected()
                await session.play(tone(0.3))
                loop = asyncio.get_running_loop()
                last = loop.time()
                reason = await session.wait_closed()
                return loop.time() - last, reason

            result, record, (after, reason) = await converse(quiet, [], engine)
        assert (result, record.ending, reason) == (-1, "timeout", EndReason.CALLER)
        assert 1.95 < after < 2.3, f"closed {after:.3f} s after the last frame"
        assert [f.kind for f in record.sent] == [Kind.UUID]  # no hang-up frame from Asterisk

    async def test_the_callers_frames_and_keys_count_as_activity_too(self) -> None:
        """Either direction resets the 2 s: a phone that sends frames in silence keeps a
        silent engine's session open, and so do a quiet caller's keys 1.5 s apart."""
        async with AudioSocketServer(port=0, keepalive=False) as quiet:

            async def engine(session: AudioSocketSession) -> int:
                await session.wait_connected()
                await asyncio.sleep(4.5)
                await session.hangup()
                return session.frames_sent

            result, record, sent = await converse(quiet, [], engine, dtx=False)
            assert (result, record.ending, sent) == (0, "server-hangup", 0)
            keys: list[Action] = [Press("123", at=1.0, gap=1.5)]
            result, record, sent = await converse(quiet, keys, engine)
            assert (result, record.ending, sent) == (0, "server-hangup", 0)
            assert record.voice == []

    async def test_fast_mode_times_out_on_the_wall_clock(self) -> None:
        """speed=None: a silent caller's silence is not skipped; the 2 s are real."""
        async with AudioSocketServer(port=0, keepalive=False) as quiet:
            loop = asyncio.get_running_loop()
            started = loop.time()

            async def engine(session: AudioSocketSession) -> EndReason:
                await session.wait_connected()
                return await session.wait_closed()

            result, record, reason = await converse(quiet, [], engine, speed=None)
        assert (result, record.ending, reason) == (-1, "timeout", EndReason.CALLER)
        assert 1.95 < loop.time() - started < 2.5


class TestSessions:
    async def test_unknown_uuid_is_closed_and_logged(self, server: AudioSocketServer) -> None:
        """A connection for a UUID nobody expects is closed (the app returns 0); it is logged."""
        stranger = uuid.uuid4()

        async def engine(session: AudioSocketSession) -> type[BaseException]:
            with pytest.raises(AudioSocketTimeout) as caught:
                await session.wait_connected(timeout=0.5)
            return caught.type

        with capture_logs() as logs:
            result, record, _ = await converse(server, [], engine, call_id=stranger)
        assert (result, record.ending) == (0, "server-closed")
        assert record.received == []
        assert {"event": "audiosocket.unknown_uuid", "uuid": str(stranger)}.items() <= next(
            e for e in logs if e["event"] == "audiosocket.unknown_uuid"
        ).items()

    async def test_expected_session_times_out(self, server: AudioSocketServer) -> None:
        """A session nobody connects to ends by itself and says what to check."""
        session = server.expect(uuid.uuid4(), timeout=0.1)
        with pytest.raises(AudioSocketTimeout, match="app_audiosocket"):
            await session.wait_connected()
        assert session.end_reason is EndReason.TIMEOUT
        assert [e async for e in session] == []
        assert server.sessions == 0

    async def test_expecting_a_uuid_twice_is_refused(self, server: AudioSocketServer) -> None:
        """Two live sessions cannot share a UUID."""
        call_id = uuid.uuid4()
        server.expect(call_id)
        with pytest.raises(ConfigError, match="fresh UUID"):
            server.expect(str(call_id))

    async def test_closing_the_server_ends_sessions(self) -> None:
        """close() ends expected and connected sessions and their connections."""
        server = AudioSocketServer(port=0)
        await server.start()
        session = server.expect(uuid.uuid4())
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(encode_frame(Kind.UUID, session.uuid.bytes))
        await session.wait_connected(1)
        await server.close()
        assert session.end_reason is EndReason.SHUTDOWN
        rest = await asyncio.wait_for(reader.read(), 1)  # the keep-alive's silence, then EOF
        assert rest == encode_frame(Kind.AUDIO, bytes(FRAME_BYTES)) * (len(rest) // 323)
        writer.close()


class TestGarbage:
    async def raw(self, server: AudioSocketServer, data: bytes) -> tuple[bytes, float]:
        """Send ``data``; return what came back before the server closed, and how long it took."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(data)
        back = await asyncio.wait_for(reader.read(), 2)
        writer.close()
        return back, loop.time() - start

    async def test_http_request_is_closed(self, server: AudioSocketServer) -> None:
        """Bytes that are not a frame ('G' is no kind) are closed on at once, and logged."""
        with capture_logs() as logs:
            back, took = await self.raw(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (back, took < 0.2) == (b"", True)
        assert any(e["event"] == "audiosocket.bad_start" for e in logs)

    async def test_silent_client_is_closed_after_the_uuid_timeout(
        self, server: AudioSocketServer
    ) -> None:
        """A client that never sends its UUID is closed after uuid_timeout."""
        with capture_logs() as logs:
            back, took = await self.raw(server, b"")
        assert back == b""
        assert 0.25 < took < 1.0
        assert any(e["event"] == "audiosocket.no_uuid" for e in logs)

    async def test_first_frame_must_be_the_uuid(self, server: AudioSocketServer) -> None:
        """Audio before the UUID frame is refused."""
        back, _ = await self.raw(server, encode_frame(Kind.AUDIO, bytes(320)))
        assert back == b""

    @pytest.mark.parametrize(
        ("tail", "reason"),
        [
            (b"\x42\x00\x00", EndReason.PROTOCOL),  # unknown kind
            (b"\x10\xff\xff", EndReason.PROTOCOL),  # 65535-byte audio frame announced
            (encode_frame(Kind.UUID, bytes(16)), EndReason.PROTOCOL),  # second UUID
            (encode_frame(Kind.ERROR, b"\x04"), EndReason.ERROR),
            (encode_frame(Kind.HANGUP), EndReason.CALLER),
        ],
    )
    async def test_bad_frames_mid_session_end_it_after_the_good_ones(
        self, server: AudioSocketServer, tail: bytes, reason: EndReason
    ) -> None:
        """Frames before the bad bytes are delivered; then the session ends and says why."""
        session = server.expect(uuid.uuid4())
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        good = encode_frame(Kind.AUDIO, bytes(320)) + encode_frame(Kind.DTMF, b"9")
        writer.write(encode_frame(Kind.UUID, session.uuid.bytes) + good + tail)
        events = [e async for e in session]
        assert events == [Audio(bytes(320)), Dtmf("9")]
        assert session.end_reason is reason
        assert await asyncio.wait_for(reader.read(), 1) == b""
        writer.close()

    async def test_bad_dtmf_payload_is_ignored(self, server: AudioSocketServer) -> None:
        """A DTMF frame that is not one key is skipped; the session goes on."""
        session = server.expect(uuid.uuid4())
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            encode_frame(Kind.UUID, session.uuid.bytes)
            + encode_frame(Kind.DTMF, b"xy")
            + encode_frame(Kind.DTMF, b"\n")
            + encode_frame(Kind.DTMF, b"3")
        )
        assert await asyncio.wait_for(anext(session), 1) == Dtmf("3")
        writer.close()
        assert [e async for e in session] == []
        assert session.end_reason is EndReason.CALLER


async def test_capture_timing_shape(server: AudioSocketServer) -> None:
    """Replaying audiosocket-frames.jsonl: the UUID attaches, then '5', then the audio on time."""
    record = json.loads((TRANSCRIPTS / "audiosocket-frames.jsonl").read_text().splitlines()[0])
    frames = record["frames"]
    call_id = uuid.UUID(frames[0]["head"])
    session = server.expect(call_id)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def replay() -> None:
        for frame in frames:
            await asyncio.sleep(max(0.0, start + frame["t"] - loop.time()))
            payload = bytes.fromhex(frame["head"]).ljust(frame["len"], b"\0")
            writer.write(encode_frame(int(frame["kind"], 16), payload))

    replaying = asyncio.ensure_future(replay())
    await session.wait_connected(1)
    got: list[tuple[float, Any]] = []
    while len(got) < len(frames) - 1:
        event = await asyncio.wait_for(anext(session), 1)
        got.append((loop.time() - start, event))
    await replaying
    await session.hangup()
    back = await asyncio.wait_for(reader.read(), 2)
    silence = encode_frame(Kind.AUDIO, bytes(FRAME_BYTES))
    assert back == silence * ((len(back) - 3) // len(silence)) + b"\x00\x00\x00"
    writer.close()
    assert got[0][1] == Dtmf("5")
    assert [e.pcm[:16].hex() for _, e in got[1:]] == [f["head"] for f in frames[2:]]
    for (at, _), frame in zip(got, frames[1:], strict=True):
        assert frame["t"] <= at < frame["t"] + 0.05


async def test_emulator_stream_has_the_capture_shape(server: AudioSocketServer) -> None:
    """The emulated app sends what Asterisk 22 sent to a Local channel's AudioSocket: the
    UUID first, '5' at 0.2 s, no audio while the caller is silent, then 320-byte frames
    every 20 ms from 0.452 s, while the caller's half plays its sound."""
    capture = json.loads((TRANSCRIPTS / "audiosocket-frames.jsonl").read_text().splitlines()[0])
    first_audio = next(f["t"] for f in capture["frames"] if f["kind"] == "0x10")

    async def engine(session: AudioSocketSession) -> None:
        await session.wait_connected()
        await asyncio.sleep(1.0)
        await session.hangup()

    _, record, _ = await converse(server, [Press("5", at=0.2), Talk(3.55, at=0.45)], engine)
    kinds = [f.kind for f in record.sent]
    assert kinds[0] == Kind.UUID and kinds.count(Kind.UUID) == 1
    assert [f.payload for f in record.sent if f.kind == Kind.DTMF] == [b"5"]
    audio = record.voice
    assert {len(f.payload) for f in audio} == {FRAME_BYTES}
    assert audio[0].at - record.sent[0].at == pytest.approx(first_audio, abs=0.021)
    gaps = [b.wall - a.wall for a, b in itertools.pairwise(audio)]
    assert abs(statistics.median(gaps) - 0.02) < 0.002
    assert 25 <= len(audio) <= 30  # 0.45 s to 1.0 s

    _, record, _ = await converse(server, [Press("5", at=0.2)], engine, dtx=False)
    assert 45 <= len(record.voice) <= 55  # a phone without silence suppression: all along
