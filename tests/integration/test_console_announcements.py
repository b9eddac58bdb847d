"""The console's announcements over HTTP on a real Redis, and what an emulated call hears:
switching on (typed words, an upload, the node's own words) for chosen flows, expiry,
switching off, and the refusals (role, scope, CSRF, bad input, upload limits)."""

from __future__ import annotations

import array
import io
import json
import math
import time
import wave
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from html import unescape
from typing import Any

import pytest

from ivr.config import Settings
from ivr.console.announcements_audio import MAX_UPLOAD, RecordingError, phone_wav
from ivr.flows.announcements import FileAnnouncements, Notice
from routing.redis import RedisRouter
from speech.tts import Synthesizer
from tests.integration.helpers import console_admin
from tests.integration.helpers.console_admin import (
    HTML,
    Line,
    app_for,
    audit,
    browser,
    heard,
    log_in,
)

router, users, hashed, settings = (
    console_admin.router,
    console_admin.users,
    console_admin.hashed,
    console_admin.settings,
)

WORDS = "Our lines are down until noon."


@pytest.fixture
def app(router: RedisRouter, settings: Settings) -> Any:
    return app_for(router, settings)


@pytest.fixture
async def line(settings: Settings) -> AsyncIterator[Line]:
    async with Line(settings) as running:
        yield running


def tone(seconds: float, rate: int = 16000, channels: int = 2, width: int = 2) -> bytes:
    """A WAV file of a 440 Hz tone."""
    frames = int(seconds * rate)
    samples = array.array("h")
    for i in range(frames):
        value = int(8000 * math.sin(2 * math.pi * 440 * i / rate))
        samples.extend([value] * channels)
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        raw = samples.tobytes() if width == 2 else bytes((s >> 8) + 128 & 0xFF for s in samples)
        wav.writeframes(raw)
    return out.getvalue()


def later(minutes: int) -> str:
    return (datetime.now() + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M")


async def switch(http: Any, csrf: str, name: str, **fields: Any) -> Any:
    files = fields.pop("files", None)
    data = {"csrf": csrf, "state": "on", **fields}
    return await http.post(f"/console/announcements/{name}", data=data, files=files)


class TestAccess:
    async def test_roles_and_scope(self, app: Any, router: RedisRouter, settings: Settings) -> None:
        """Agents and viewers see nothing; a supervisor narrowed to a queue sees the page
        without the forms and is refused a switch; one of the whole floor may switch."""
        async with browser(app) as http:
            for name in ("ann", "wall"):
                csrf = await log_in(http, name)
                assert (await http.get("/console/announcements", headers=HTML)).status_code == 403
                reply = await switch(http, csrf, "outage", flows="main")
                assert reply.status_code == 403
                await http.post("/console/logout", data={"csrf": csrf})
            csrf = await log_in(http, "tia")
            page = await http.get("/console/announcements", headers=HTML)
            assert page.status_code == 200 and "<form" not in page.text.split("<main")[1]
            reply = await switch(http, csrf, "outage", flows="main")
            assert reply.status_code == 403 and "queues tv" in reply.json()["error"]
            await http.post("/console/logout", data={"csrf": csrf})
            csrf = await log_in(http, "pat")
            assert (await switch(http, csrf, "outage", flows="main")).status_code == 303
        assert FileAnnouncements(settings.announcements_file).switches() == {"outage": True}
        refused = [a for a in await audit(router, "refused") if a["actor"] == "tia"]
        assert len(refused) == 1 and refused[0]["status"] == "403"

    async def test_a_switch_needs_the_csrf_token(self, app: Any, settings: Settings) -> None:
        async with browser(app) as http:
            await log_in(http, "ada")
            for data in ({"state": "on", "flows": "main"}, {"state": "on", "csrf": "forged"}):
                reply = await http.post("/console/announcements/outage", data=data)
                assert reply.status_code == 403
        assert not settings.announcements_file.exists()


class TestSwitch:
    async def test_typed_words_for_one_flow_until_a_time(
        self, app: Any, router: RedisRouter, settings: Settings, line: Line
    ) -> None:
        """Switched on with typed words for main only: a call of main hears them (rendered
        ahead, cached), a call of support does not; the switch is audited."""
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await switch(
                http, csrf, "outage", flows="main", message="text", text=WORDS,
                language="en", until=later(90),
            )  # fmt: skip
            assert reply.status_code == 303, reply.text
            page = await http.get("/console/announcements", headers=HTML)
        assert "outage: on for main until" in page.text and f"says “{WORDS}”" in unescape(page.text)
        spoken = Synthesizer(settings.prompts_dir).path_for(WORDS, "en")
        assert spoken.exists()  # said once ahead: no caller waits for it
        result, trace = await line.call("main")
        assert heard(trace) == ["outage"] and WORDS in trace.prompts
        assert str(spoken.resolve().with_suffix("")) in result.played
        _, other = await line.call("support")
        assert heard(other) == []
        [on] = await audit(router, "announcement.on")
        assert (on["actor"], on["name"], on["flows"]) == ("ada", "outage", "main")
        assert on["says"] == f"text (en): {WORDS}" and on["until"].startswith(later(90)[:13])

    async def test_its_own_words_for_every_flow_then_off(
        self, app: Any, router: RedisRouter, settings: Settings, line: Line
    ) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await switch(http, csrf, "outage", flows=["main", "support"], message="own")
            assert reply.status_code == 303
            assert FileAnnouncements(settings.announcements_file).notices()["outage"].flows == ()
            _, main = await line.call("main")
            _, support = await line.call("support")
            assert main.prompts[0] == "We are aware of a service outage."
            assert support.prompts[0] == "The outage touches support too."
            reply = await http.post(
                "/console/announcements/outage", data={"csrf": csrf, "state": "off"}
            )
            assert reply.status_code == 303
        _, after = await line.call("main")
        assert heard(after) == []
        [off] = await audit(router, "announcement.off")
        assert off["name"] == "outage"

    async def test_a_notice_in_a_subflow_is_offered_to_the_flows_that_reach_it(
        self, app: Any, settings: Settings
    ) -> None:
        """billing's storm notice can be chosen for main, which reaches it as a subflow."""
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            page = await http.get("/console/announcements", headers=HTML)
            storm = page.text.split('id="notice-storm"')[1].split("</section>")[0]
            assert 'value="billing"' in storm and 'value="main"' in storm
            assert 'value="support"' not in storm
            reply = await switch(http, csrf, "storm", flows="support")
        assert reply.status_code == 422 and "never reach 'storm'" in unescape(reply.text)

    async def test_expiry(self, app: Any, settings: Settings) -> None:
        """A time that has passed is refused; a notice past its time is off by itself."""
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            past = (datetime.now() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
            reply = await switch(http, csrf, "outage", flows="main", until=past)
            assert reply.status_code == 422 and "has passed" in unescape(reply.text)
            reply = await switch(http, csrf, "outage", flows="main", until="tomorrow")
            assert reply.status_code == 422 and "write it as" in unescape(reply.text)
            reply = await switch(http, csrf, "outage", flows="main", until=later(30))
            assert reply.status_code == 303
        notice = FileAnnouncements(settings.announcements_file).notices()["outage"]
        assert notice.until is not None and 29 * 60 < notice.until - time.time() <= 30 * 60
        moved = FileAnnouncements(settings.announcements_file, clock=lambda: notice.until + 1)  # type: ignore[operator]
        async with Line(settings, clock=moved.clock) as line:
            _, trace = await line.call("main")
        assert heard(trace) == []

    async def test_bad_input_is_refused_with_the_reason(self, app: Any, settings: Settings) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            said = {"flows": "main", "message": "text"}
            cases = [
                ({}, "choose at least one flow"),
                ({"flows": "main", "message": "text", "text": " "}, "type the words"),
                ({**said, "text": "Hi", "language": "fr"}, "language 'fr'"),
                ({**said, "text": "x" * 1001, "language": "en"}, "1,000 at most"),
                ({"flows": "main", "message": "recording"}, "choose a WAV file"),
                ({"flows": "main", "message": "tune"}, "allowed: own, text, recording"),
            ]  # fmt: skip
            for fields, why in cases:
                reply = await switch(http, csrf, "outage", **fields)
                assert reply.status_code == 422 and why in unescape(reply.text), fields
            assert (await switch(http, csrf, "nope", flows="main")).status_code == 404
            odd = await http.post(
                "/console/announcements/outage", data={"csrf": csrf, "state": "maybe"}
            )
            assert odd.status_code == 422
        assert not settings.announcements_file.exists()


class TestRecording:
    async def test_an_upload_is_converted_stored_and_played(
        self, app: Any, router: RedisRouter, settings: Settings, line: Line
    ) -> None:
        """A 16 kHz stereo WAV becomes 8 kHz mono under the prompts folder; calls play it."""
        upload = {"recording": ("notice.wav", tone(1.5), "audio/wav")}
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await switch(
                http, csrf, "outage", flows="main", message="recording", files=upload
            )
            assert reply.status_code == 303, reply.text
        notice = FileAnnouncements(settings.announcements_file).notices()["outage"]
        stored = (settings.prompts_dir / "announcements").resolve()
        assert notice.recording.startswith(str(stored))
        with wave.open(notice.recording + ".wav") as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            assert wav.getnframes() == 12000
        result, trace = await line.call("main")
        assert heard(trace) == ["outage"] and notice.recording in result.played
        [on] = await audit(router, "announcement.on")
        assert on["says"].startswith("recording outage-")
        async with browser(app) as http:  # switched again without a file: the same one
            csrf = await log_in(http, "ada")
            reply = await switch(http, csrf, "outage", flows="main", message="recording")
            assert reply.status_code == 303
        again = FileAnnouncements(settings.announcements_file).notices()["outage"]
        assert again.recording == notice.recording

    @pytest.mark.parametrize(
        ("data", "why"),
        [
            (b"ID3\x04not a wav at all" * 10, "not a WAV file"),
            (tone(0.5, rate=44100, channels=1), "44100 Hz; 8000 or 16000 Hz only"),
            (tone(0.5, rate=8000, channels=1, width=1), "8-bit samples"),
            (tone(0.0, rate=8000, channels=1), "holds no sound"),
            (tone(121, rate=8000, channels=1), "lasts 121 s; at most 120 s"),
        ],
    )
    def test_what_is_refused(self, data: bytes, why: str) -> None:
        with pytest.raises(RecordingError, match=why):
            phone_wav(data)

    async def test_a_bad_upload_is_refused_with_its_reason(
        self, app: Any, settings: Settings
    ) -> None:
        upload = {"recording": ("notice.wav", tone(0.5, rate=44100, channels=1), "audio/wav")}
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await switch(
                http, csrf, "outage", flows="main", message="recording", files=upload
            )
        assert reply.status_code == 422 and "notice.wav: 44100 Hz" in unescape(reply.text)
        assert not settings.announcements_file.exists()

    async def test_an_upload_past_the_limit_is_refused_as_it_arrives(
        self, app: Any, settings: Settings
    ) -> None:
        """413 from the declared length, and from the bytes when no length is declared."""
        big = b"RIFF" + b"\0" * (MAX_UPLOAD + 100 * 1024)
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await switch(
                http, csrf, "outage", flows="main", message="recording",
                files={"recording": ("big.wav", big, "audio/wav")},
            )  # fmt: skip
            assert reply.status_code == 413
            boundary = "b0undary"
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}\r\n'
                    f'--{boundary}\r\nContent-Disposition: form-data; name="recording"; '
                    'filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n'
                ).encode()
                + big
                + f"\r\n--{boundary}--\r\n".encode()
            )

            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, len(body), 65536):
                    yield body[start : start + 65536]

            reply = await http.post(
                "/console/announcements/outage",
                content=chunks(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            assert reply.status_code == 413
        assert not settings.announcements_file.exists()
        assert not (settings.prompts_dir / "announcements").exists()


async def test_the_cli_keeps_working_on_the_console_s_switches(
    app: Any, settings: Settings
) -> None:
    """What the console wrote, `ivr announcement` reads and switches (compatibly)."""
    async with browser(app) as http:
        csrf = await log_in(http, "ada")
        reply = await switch(
            http, csrf, "outage", flows="main", message="text", text=WORDS, language="en"
        )
        assert reply.status_code == 303
    raw = json.loads(settings.announcements_file.read_text())
    assert raw["outage"]["on"] is True and raw["outage"]["text"] == WORDS
    store = FileAnnouncements(settings.announcements_file)
    store.switch("outage", False)
    assert store.notices()["outage"] == Notice(
        False, WORDS, "en", "", ("main",), None, "ada", raw["outage"]["at"]
    )
