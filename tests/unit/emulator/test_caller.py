"""The emulator's caller timeline, application-argument splitting and AudioSocket records."""

from __future__ import annotations

from ivr.audiosocket.protocol import Kind
from ivr.emulator.apps import split_app_args
from ivr.emulator.audiosocket import AudioSocketRecord, FrameLog
from ivr.emulator.caller import Hangup, Press, Timeline
from ivr.emulator.sounds import SoundCatalog


class TestTimeline:
    async def test_fast_mode_skips_waits(self) -> None:
        """A 60 s wait with nothing scheduled returns at once, with the clock moved on."""
        timeline = Timeline([])
        assert await timeline.wait(60) is None
        assert 60 <= timeline.now() < 61

    async def test_digits_arrive_in_order_with_gaps(self) -> None:
        """Pressed digits come one by one, `gap` seconds apart."""
        timeline = Timeline([Press("12", at=1.0, gap=0.5)])
        first = await timeline.wait(10)
        second = await timeline.wait(10)
        assert first is not None and second is not None
        assert (first.digit, second.digit) == ("1", "2")
        assert round(second.at - first.at, 3) == 0.5

    async def test_relative_action_waits_for_its_command(self) -> None:
        """An action tied to the 2nd matching command is armed only then."""
        timeline = Timeline([Hangup(on="WAIT FOR DIGIT", nth=2, after=1.0)])
        timeline.command_started("WAIT FOR DIGIT 100")
        assert await timeline.wait(5) is None
        timeline.command_started("WAIT FOR DIGIT 100")
        event = await timeline.wait(5)
        assert event is not None and event.kind == "hangup"

    async def test_uninterruptible_wait_consumes_digits(self) -> None:
        """Keys during a prompt that ignores them are lost, a hang-up is not."""
        timeline = Timeline([Press("5", at=0.5), Hangup(at=1.0)])
        event = await timeline.wait(5, wants_dtmf=False)
        assert event is not None and event.kind == "hangup"


def test_split_app_args_follows_asterisk() -> None:
    """Commas split outside (), [] and quotes; quotes and backslashes are removed."""
    assert split_app_args("PJSIP/1001,20,gU(sub^a,b)") == ["PJSIP/1001", "20", "gU(sub^a,b)"]
    assert split_app_args('a,"b,c",d\\,e') == ["a", "b,c", "d,e"]
    assert split_app_args("x,") == ["x", ""]


def test_sound_catalog() -> None:
    """Stock prompts have lengths; unknown files are missing; extras can be added."""
    catalog = SoundCatalog({"custom/hello": 16000})
    assert catalog.samples("beep") == 3404
    assert catalog.samples("custom/hello") == 16000
    assert catalog.samples("no-such-file") is None


def test_a_callers_phone_uses_silence_suppression_unless_told() -> None:
    """The worst real case by default: no audio frames while the caller is silent."""
    assert Timeline([]).dtx is True
    assert Timeline([], dtx=False).dtx is False


def test_an_audiosocket_record_tells_the_prompt_from_the_keep_alive() -> None:
    """What the caller heard is the engine's frames with sound; all-zero frames are the
    silence that keeps the session open; the caller's own frames are apart."""
    record = AudioSocketRecord("")
    loud, quiet = b"\x10\x00" * 160, bytes(320)
    record.received += [
        FrameLog(0.0, 0.0, Kind.AUDIO, loud),
        FrameLog(0.02, 0.02, Kind.AUDIO, quiet),
    ]
    record.received.append(FrameLog(0.04, 0.04, Kind.HANGUP))
    record.sent += [FrameLog(0.0, 0.0, Kind.UUID, bytes(16)), FrameLog(0.0, 0.0, Kind.AUDIO, loud)]
    assert [f.payload for f in record.prompt] == [loud]
    assert [f.payload for f in record.silence] == [quiet]
    assert [f.payload for f in record.voice] == [loud]
