"""Announcement switches: the file's old and new forms, expiry, flows, and the CLI on top."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr.cli.main import main
from ivr.flows.announcements import FileAnnouncements, MemoryAnnouncements, Notice


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestNotice:
    def test_a_bare_switch_keeps_the_old_form(self) -> None:
        """On or off alone is written as a bool, as before the console."""
        assert Notice(True).to_json() is True
        assert Notice(False).to_json() is False
        assert Notice.from_json(True) == Notice(True)

    def test_the_rest_round_trips(self) -> None:
        notice = Notice(True, "Storm.", "en", "", ("main",), 2_000_000.0, "ada", 1_000.0)
        assert Notice.from_json(json.loads(json.dumps(notice.to_json()))) == notice

    def test_what_cannot_be_read_is_off(self) -> None:
        """A notice nobody can read back is never played by mistake."""
        assert Notice.from_json("yes") == Notice(False)
        assert Notice.from_json({"on": "true"}).on is False
        assert Notice.from_json({"on": True, "until": "soon", "flows": "main"}) == Notice(True)
        assert Notice.from_json({"on": True, "until": float("nan")}).until is None

    def test_expiry_and_flows(self) -> None:
        notice = Notice(True, flows=("main",), until=10.0)
        assert notice.live(9.9) and not notice.live(10.0)
        assert notice.covers(["main", "billing"]) and not notice.covers(["billing"])
        assert Notice(True).covers(["anything"])


class TestFileAnnouncements:
    async def test_an_old_file_still_reads(self, tmp_path: Path) -> None:
        """A switches file written before the console (bools only) means what it meant."""
        path = tmp_path / "announcements.json"
        path.write_text('{"outage": true, "storm": false}')
        store = FileAnnouncements(path)
        assert await store.active("outage") and not await store.active("storm")
        assert await store.notice("outage", ["main"]) == Notice(True)

    async def test_a_notice_expires_by_itself(self, tmp_path: Path) -> None:
        clock = Clock()
        store = FileAnnouncements(tmp_path / "a.json", clock=clock)
        store.put("outage", Notice(True, text="Down.", until=clock.now + 60))
        assert await store.active("outage")
        clock.now += 61
        assert not await store.active("outage")
        assert await store.notice("outage", ["main"]) is None
        assert store.switches() == {"outage": False}

    async def test_only_the_chosen_flows_hear_it(self, tmp_path: Path) -> None:
        store = FileAnnouncements(tmp_path / "a.json")
        store.put("outage", Notice(True, flows=("main",)))
        assert await store.notice("outage", ["main", "billing"]) is not None
        assert await store.notice("outage", ["billing"]) is None

    async def test_switching_keeps_the_words_and_on_clears_the_expiry(self, tmp_path: Path) -> None:
        clock = Clock()
        store = FileAnnouncements(tmp_path / "a.json", clock=clock)
        store.put("outage", Notice(True, text="Down.", flows=("main",), until=clock.now - 1))
        assert not await store.active("outage")
        store.switch("outage", True)
        again = store.notices()["outage"]
        assert again == Notice(True, text="Down.", flows=("main",))
        store.switch("outage", False)
        assert store.notices()["outage"].text == "Down."

    def test_other_switches_survive_a_write(self, tmp_path: Path) -> None:
        path = tmp_path / "a.json"
        path.write_text('{"outage": true}')
        FileAnnouncements(path).put("storm", Notice(True, text="Storm."))
        assert json.loads(path.read_text()) == {
            "outage": True,
            "storm": {"on": True, "text": "Storm."},
        }
        assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no partial file left


class TestMemoryAnnouncements:
    async def test_bools_and_notices(self) -> None:
        store = MemoryAnnouncements({"outage": True, "storm": Notice(True, flows=("tv",))})
        assert await store.active("outage")
        assert await store.notice("storm", ["main"]) is None
        store.switch("outage", False)
        assert not await store.active("outage")


def test_the_cli_lists_what_the_console_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ivr announcement list` shows the console's words, flows and expiry; `on` keeps them."""
    path = tmp_path / "switches.json"
    config = tmp_path / "engine.yaml"
    config.write_text(f"announcements_file: {path}\n")
    FileAnnouncements(path).put(
        "outage", Notice(False, text="We are fixing a fault.", flows=("main",))
    )
    assert main(["announcement", "list", "--config", str(config)]) == 0
    assert "outage: off (says 'We are fixing a fault.'; flows main)" in capsys.readouterr().out
    assert main(["announcement", "on", "outage", "--config", str(config)]) == 0
    assert "outage: on (says 'We are fixing a fault.'; flows main)" in capsys.readouterr().out
    notice = FileAnnouncements(path).notices()["outage"]
    assert notice.on and notice.text == "We are fixing a fault." and notice.by == "ivr announcement"
