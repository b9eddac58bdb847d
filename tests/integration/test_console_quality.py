"""The quality page, its recordings and ``GET /api/qa`` over HTTP on a real Redis: QA
results as the worker writes them (``result_fields`` into the event stream, the record and
transcript next to real WAV files), the words around each match, the filters, who may see
and hear which call, Range requests, and refusals of bad input and path tricks."""

from __future__ import annotations

import json
import math
import struct
import time
import wave
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from ivr.api import build_api
from ivr.auth import Principal, TokenBook
from ivr.config import Settings
from ivr.console.roles import Scope
from ivr.console.users import UserRecord, UserStore
from ivr.flows.recording import Recording
from ivr.qa_worker import QaWorker, result_fields
from routing.redis import RedisRouter
from speech.qa import CallResult, Evidence, Leg, RuleResult, Transcript, Word
from tests.integration.helpers import console_admin
from tests.integration.helpers.console_admin import HTML, audit, browser, log_in

router, hashed = console_admin.router, console_admin.hashed

SUPERVISOR_TOKEN = "supervisor-token-0123456789"
VIEWER_TOKEN = "viewer-token-0123456789"


@pytest.fixture
def users(tmp_path: Path, hashed: str) -> UserStore:
    """console_admin's users, and sam: a supervisor of team south only."""
    store = UserStore(tmp_path / "users.json")
    south = Scope(teams=frozenset({"south"}))
    for record in [
        *console_admin.floor_users(hashed),
        UserRecord("sam", "supervisor", hashed, south),
    ]:
        store.put(record)
    return store


@pytest.fixture
def settings(tmp_path: Path, users: UserStore) -> Settings:
    return Settings(users_file=users.path, recordings_dir=tmp_path / "recordings")


def _wav(path: Path, seconds: float) -> None:
    """A quiet 440 Hz tone: 8 kHz, 16-bit mono, as MixMonitor writes."""
    frames = b"".join(
        struct.pack("<h", int(800 * math.sin(2 * math.pi * 440 * n / 8000)))
        for n in range(int(8000 * seconds))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(frames)


SAID = [  # (word, start, end, speaker)
    ("안녕하세요", 0.2, 0.9, "agent"),
    ("고객님", 1.0, 1.5, "agent"),
    ("네", 1.7, 1.9, "caller"),
    ("오늘", 2.2, 2.6, "agent"),
    ("바로", 2.7, 3.1, "agent"),
    ("해지", 4.0, 4.5, "agent"),
    ("하시면", 4.6, 5.0, "agent"),
    ("혜택이", 5.1, 5.5, "agent"),
    ("없어요", 5.6, 5.9, "agent"),
]


class Calls:
    """QA results written as the worker writes them, by call id."""

    def __init__(self, router: RedisRouter, folder: Path) -> None:
        self.router = router
        self.folder = folder
        self.worker = QaWorker(folder, router=None, transcriber=None, rules=folder)
        self.ids: dict[str, str] = {}
        self.mixes: dict[str, Path] = {}

    async def add(self, call: str, queue: str, agent: str, *, push: bool) -> None:
        base = self.folder / "2026-11-29" / f"{call}-{agent}-00001"
        base.parent.mkdir(parents=True, exist_ok=True)
        recording = Recording(
            call=call, queue=queue, agent=agent, language="ko",
            caller=f"{base}-caller.wav", agent_leg=f"{base}-agent.wav", mix=f"{base}-mix.wav",
            started=time.time() - 60, expires=time.time() + 86400,
        )  # fmt: skip
        self.worker.planned(recording)
        for leg in ("caller", "agent", "mix"):
            _wav(Path(f"{base}-{leg}.wav"), 6.0)
        transcript = Transcript(
            language="ko",
            legs=(Leg("agent", 6.0), Leg("caller", 6.0)),
            words=tuple(Word(w, s, e, 0.9, who) for w, s, e, who in SAID),  # type: ignore[arg-type]
        )
        stored = Path(f"{base}.transcript.json")
        stored.write_text(transcript.dumps(), encoding="utf-8")  # noqa: ASYNC240
        push_rule = RuleResult(
            "no-cancel-push", "must_not_say", "violated" if push else "met",
            "'해지' said by the agent at 4.0 s" if push else "'해지' not said", 1.0,
            (Evidence(4.0, 4.5, "agent", ("해지",), "해지"),) if push else (),
        )  # fmt: skip
        rules = (
            RuleResult("greeting", "must_say", "met", "'안녕하세요' said", 2.0,
                       (Evidence(0.2, 0.9, "agent", ("안녕하세요",), "안녕하세요"),)),
            push_rule,
            RuleResult("closing", "must_say", "unverifiable", "recognition too unsure", 1.0),
        )  # fmt: skip
        result = CallResult("ko", "ko.yaml", 6.0, 66.7 if push else 100.0, rules)
        await self.router.note("qa_result", **result_fields(recording, result, stored))
        self.ids[call] = base.name
        self.mixes[call] = Path(recording.mix)


@pytest.fixture
async def calls(router: RedisRouter, settings: Settings) -> Calls:
    """ann's pushy sales call, cy's clean tv call, then ann's sales call whose files are
    gone (newest)."""
    made = Calls(router, settings.recordings_dir)
    await made.add("c-sales", "sales", "ann", push=True)
    await made.add("c-tv", "tv", "cy", push=False)
    await made.add("c-gone", "sales", "ann", push=False)
    for path in made.mixes["c-gone"].parent.glob("c-gone-*"):
        path.unlink()
    return made


@pytest.fixture
def app(router: RedisRouter, settings: Settings) -> Any:
    tokens = TokenBook(
        {
            SUPERVISOR_TOKEN: Principal("ops", "supervisor"),
            VIEWER_TOKEN: Principal("board", "viewer"),
        }
    )
    return build_api(router, tokens, None, settings)


def card(page: str, result: str) -> str:
    return unescape(page.split(f'id="qa-{result}"')[1].split("</article>", maxsplit=1)[0])


def recording_url(calls: Calls, call: str) -> str:
    return f"/console/quality/{calls.ids[call]}/recording"


class TestPage:
    async def test_results_outcomes_and_the_words_around_a_match(
        self, app: Any, calls: Calls
    ) -> None:
        """Newest first; the score, each rule's outcome, the words either side of the match
        with its time and a play button; a call whose files are gone has none."""
        async with browser(app) as http:
            await log_in(http, "ada")
            reply = await http.get("/console/quality", headers=HTML)
        assert reply.status_code == 200
        page = reply.text
        ids = [calls.ids[c] for c in ("c-gone", "c-tv", "c-sales")]
        assert [page.index(f'id="qa-{i}"') for i in ids] == sorted(
            page.index(f'id="qa-{i}"') for i in ids
        )
        sales = card(page, calls.ids["c-sales"])
        assert "66.7" in sales and "no-cancel-push" in sales
        assert 'badge outcome outcome-violated">violated' in sales
        assert 'outcome-unverifiable">unverifiable' in sales and 'outcome-met">met' in sales
        assert "…안녕하세요 고객님 오늘 바로</span> <mark>해지</mark> <span" in sales
        assert "하시면 혜택이 없어요…" in sales  # the caller's "네" is not in the agent's words
        assert f'data-play="audio-{calls.ids["c-sales"]}" data-at="4.00"' in sales
        assert "▶ 0:04.0" in sales
        assert f'src="{recording_url(calls, "c-sales")}"' in sales and 'preload="none"' in sales
        gone = card(page, calls.ids["c-gone"])
        assert "no longer kept" in gone and "data-play" not in gone and "<audio" not in gone
        assert '<a href="/console/quality" aria-current="page">Quality</a>' in page

    async def test_filters(self, app: Any, calls: Calls) -> None:
        async with browser(app) as http:
            await log_in(http, "ada")
            tv = (await http.get("/console/quality?queue=tv", headers=HTML)).text
            bad = (await http.get("/console/quality?violations=1", headers=HTML)).text
            cy = (await http.get("/console/quality?agent=cy&period=1d", headers=HTML)).text
            none = (await http.get("/console/quality?queue=billing", headers=HTML)).text
        assert tv.count('class="qa-call') == 1 and f'id="qa-{calls.ids["c-tv"]}"' in tv
        assert bad.count('class="qa-call') == 1 and f'id="qa-{calls.ids["c-sales"]}"' in bad
        assert cy.count('class="qa-call') == 1 and f'id="qa-{calls.ids["c-tv"]}"' in cy
        assert 'class="qa-call' not in none and "matches these filters" in none

    async def test_json(self, app: Any, calls: Calls) -> None:
        async with browser(app) as http:
            await log_in(http, "pat")
            reply = await http.get("/console/quality?format=json&violations=on")
        body = reply.json()
        [found] = body["calls"]
        assert (found["call"], found["score"], found["violations"]) == (
            "c-sales", 66.7, ["no-cancel-push"],
        )  # fmt: skip
        assert found["recording"] == recording_url(calls, "c-sales")
        push = next(r for r in found["rules"] if r["id"] == "no-cancel-push")
        [match] = push["matches"]
        assert (match["start"], match["within"], match["phrase"]) == (4.0, ["해지"], "해지")
        assert match["before"] == ["안녕하세요", "고객님", "오늘", "바로"]
        assert match["after"] == ["하시면", "혜택이", "없어요"]

    async def test_bad_parameters(self, app: Any, router: RedisRouter, calls: Calls) -> None:
        """A bad period, filter or flag: 422 naming it (the page with the problem for a
        browser), audited."""
        async with browser(app) as http:
            await log_in(http, "ada")
            page = await http.get("/console/quality?period=forever", headers=HTML)
            flag = await http.get("/console/quality?violations=maybe&format=json")
            name = await http.get("/console/quality", params={"queue": "../sales"})
        assert page.status_code == 422 and "period: one of 1d, 7d, 30d" in unescape(page.text)
        assert flag.status_code == 422 and flag.json()["problems"][0]["at"] == "violations"
        assert name.status_code == 422 and name.json()["problems"][0]["at"] == "queue"
        assert len(await audit(router, "refused")) >= 2


class TestAccess:
    async def test_no_session(self, app: Any, calls: Calls) -> None:
        async with browser(app) as http:
            page = await http.get("/console/quality", headers=HTML)
            data = await http.get("/console/quality?format=json")
            audio = await http.get(recording_url(calls, "c-sales"))
            token = await http.get(
                recording_url(calls, "c-sales"),
                headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"},
            )
        assert page.status_code == 303 and page.headers["location"].startswith("/console/login")
        assert data.status_code == 401 and audio.status_code == 401
        assert token.status_code == 401  # a bearer token is not a console session
        assert not audio.content.startswith(b"RIFF")

    async def test_a_viewer_is_refused(self, app: Any, router: RedisRouter, calls: Calls) -> None:
        async with browser(app) as http:
            await log_in(http, "wall")
            page = await http.get("/console/quality", headers=HTML)
            audio = await http.get(recording_url(calls, "c-sales"))
            home = await http.get("/console/", headers=HTML)
        assert page.status_code == 403 and audio.status_code == 403
        assert "/console/quality" not in home.text
        assert [a["actor"] for a in await audit(router, "refused")] == ["wall", "wall"]
        assert await audit(router, "recording.play") == []

    async def test_supervisors_see_their_queues_and_teams(
        self, app: Any, router: RedisRouter, calls: Calls
    ) -> None:
        """tia (queue tv) sees and hears cy's tv call only; sam (team south) none."""
        async with browser(app) as http:
            await log_in(http, "tia")
            page = (await http.get("/console/quality", headers=HTML)).text
            own = await http.get(recording_url(calls, "c-tv"))
            other = await http.get(recording_url(calls, "c-sales"), headers=HTML)
        assert f'id="qa-{calls.ids["c-tv"]}"' in page and page.count('class="qa-call') == 1
        assert own.status_code == 200
        assert other.status_code == 403 and "outside tia's view" in unescape(other.text)
        async with browser(app) as http:
            await log_in(http, "sam")
            page = (await http.get("/console/quality", headers=HTML)).text
            tv = await http.get(recording_url(calls, "c-tv"))
        assert 'class="qa-call' not in page and tv.status_code == 403
        refused = [(a["actor"], a["status"]) for a in await audit(router, "refused")]
        assert refused == [("tia", "403"), ("sam", "403")]
        assert [a["actor"] for a in await audit(router, "recording.play")] == ["tia"]

    async def test_an_agent_sees_and_hears_their_own_calls(self, app: Any, calls: Calls) -> None:
        async with browser(app) as http:
            await log_in(http, "ann")
            page = (await http.get("/console/quality?agent=cy", headers=HTML)).text
            own = await http.get(recording_url(calls, "c-sales"))
            other = await http.get(recording_url(calls, "c-tv"))
        assert page.count('class="qa-call') == 2 and f'id="qa-{calls.ids["c-tv"]}"' not in page
        assert 'name="agent"' not in page  # no agent menu: their own calls only
        assert own.status_code == 200 and other.status_code == 403
        assert "their own calls" in other.json()["error"]


class TestRecording:
    async def test_whole_file_and_audit(self, app: Any, router: RedisRouter, calls: Calls) -> None:
        async with browser(app) as http:
            await log_in(http, "pat")
            reply = await http.get(recording_url(calls, "c-sales"))
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "audio/wav"
        assert reply.headers["accept-ranges"] == "bytes"
        assert reply.headers["cache-control"] == "no-store"
        assert reply.content == calls.mixes["c-sales"].read_bytes()
        [played] = await audit(router, "recording.play")
        assert (played["actor"], played["call"], played["queue"], played["agent"]) == (
            "pat", "c-sales", "sales", "ann",
        )  # fmt: skip

    async def test_range_requests(self, app: Any, router: RedisRouter, calls: Calls) -> None:
        """A browser's seek: the bytes asked for (206), each audited; past the end 416."""
        whole = calls.mixes["c-sales"].read_bytes()
        async with browser(app) as http:
            await log_in(http, "ada")
            part = await http.get(
                recording_url(calls, "c-sales"), headers={"Range": "bytes=64000-"}
            )
            some = await http.get(
                recording_url(calls, "c-sales"), headers={"Range": "bytes=1000-1999"}
            )
            past = await http.get(
                recording_url(calls, "c-sales"), headers={"Range": f"bytes={len(whole) + 10}-"}
            )
        assert part.status_code == 206 and part.content == whole[64000:]
        assert part.headers["content-range"] == f"bytes 64000-{len(whole) - 1}/{len(whole)}"
        assert some.status_code == 206 and some.content == whole[1000:2000]
        assert past.status_code == 416
        ranges = [a["range"] for a in await audit(router, "recording.play")]
        assert ranges == ["bytes=64000-", "bytes=1000-1999", f"bytes={len(whole) + 10}-"]

    async def test_unknown_malformed_and_gone(self, app: Any, calls: Calls) -> None:
        async with browser(app) as http:
            await log_in(http, "ada")
            unknown = await http.get("/console/quality/no-such-call-00001/recording")
            dots = await http.get("/console/quality/../recording")
            spaced = await http.get("/console/quality/a%20b/recording")
            slashed = await http.get("/console/quality/..%2F..%2Fusers.json/recording")
            gone = await http.get(recording_url(calls, "c-gone"))
        assert unknown.status_code == 404 and "no QA result" in unknown.json()["error"]
        assert dots.status_code == 404 and spaced.status_code == 422
        assert slashed.status_code in (404, 422)
        assert gone.status_code == 404 and "no longer kept" in gone.json()["error"]
        for reply in (unknown, dots, spaced, slashed, gone):
            assert not reply.content.startswith(b"RIFF")

    async def test_a_path_outside_the_recordings_is_never_served(
        self, app: Any, router: RedisRouter, settings: Settings, calls: Calls, tmp_path: Path
    ) -> None:
        """An event that names a file outside the recordings folder, a link out of it, or a
        record that names another call: refused, even for an admin."""
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        _wav(outside / "x-ann-00001-mix.wav", 1.0)
        (outside / "x-ann-00001.json").write_text(
            json.dumps({"call": "x", "mix": str(outside / "x-ann-00001-mix.wav")})
        )
        mix = str(outside / "x-ann-00001-mix.wav")
        await router.note("qa_result", call="x", queue="sales", agent="ann", rules="[]",
                          recording=mix, transcript="")  # fmt: skip
        sneaky = settings.recordings_dir / "2026-11-29" / "y-ann-00001-mix.wav"
        _wav(sneaky, 1.0)
        (sneaky.parent / "y-ann-00001.json").write_text('{"call": "c-sales"}')
        await router.note("qa_result", call="y", queue="sales", agent="ann", rules="[]",
                          recording=str(sneaky), transcript="")  # fmt: skip
        linked = settings.recordings_dir / "2026-11-29" / "z-ann-00001-mix.wav"
        linked.symlink_to(outside / "x-ann-00001-mix.wav")
        record = {"call": "z", "mix": str(linked)}
        (linked.parent / "z-ann-00001.json").write_text(json.dumps(record))
        await router.note("qa_result", call="z", queue="sales", agent="ann", rules="[]",
                          recording=str(linked), transcript="")  # fmt: skip
        async with browser(app) as http:
            await log_in(http, "ada")
            out = await http.get("/console/quality/x-ann-00001/recording")
            other = await http.get("/console/quality/y-ann-00001/recording")
            link = await http.get("/console/quality/z-ann-00001/recording")
        assert (out.status_code, other.status_code, link.status_code) == (404, 404, 404)


class TestApi:
    async def test_bearer_tokens(self, app: Any, router: RedisRouter, calls: Calls) -> None:
        """A supervisor's token reads every result; a viewer's and none are refused; a bad
        parameter is 422 naming it."""
        async with browser(app) as http:
            ok = await http.get(
                "/api/qa?queue=sales", headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}
            )
            viewer = await http.get("/api/qa", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})
            anonymous = await http.get("/api/qa")
            bad = await http.get(
                "/api/qa?period=1y", headers={"Authorization": f"Bearer {SUPERVISOR_TOKEN}"}
            )
        assert ok.status_code == 200
        assert [c["call"] for c in ok.json()["calls"]] == ["c-gone", "c-sales"]
        push = next(r for r in ok.json()["calls"][1]["rules"] if r["id"] == "no-cancel-push")
        assert push["matches"][0]["within"] == ["해지"]
        assert viewer.status_code == 403 and anonymous.status_code == 401
        assert bad.status_code == 422 and bad.json()["problems"][0]["at"] == "period"
        actors = [a["actor"] for a in await audit(router, "refused")]
        assert actors == ["board", "(no valid token)", "ops"]
