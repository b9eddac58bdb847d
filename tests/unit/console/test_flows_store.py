"""The flows store's history log (``log.jsonl``): a line that does not parse is skipped
with a warning that names the file and the line, and the history is still listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from ivr.console.flows_store import FlowStore

FLOW = """\
id: main
version: {version}
nodes:
  bye: {{type: hangup, say: Goodbye.}}
"""


async def saved(tmp_path: Path, *versions: int) -> tuple[FlowStore, Path]:
    """A store whose flow ``main`` was saved by ada in each of ``versions``; its log."""
    store = FlowStore(tmp_path / "flows", tmp_path / "history")
    store.folder.mkdir()
    for n, version in enumerate(versions):
        await store.save("main", FLOW.format(version=version), by="ada", new=n == 0)
    return store, tmp_path / "history" / "main" / "log.jsonl"


def skipped(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "console.flow_history_line_skipped"]


class TestHistoryLog:
    async def test_a_corrupt_line_is_skipped_with_its_file_and_line(self, tmp_path: Path) -> None:
        """The line is named by file:line and its JSON error, never quoted; the versions
        around it keep who saved them."""
        store, journal = await saved(tmp_path, 1, 2)
        first, second = journal.read_text().splitlines()
        journal.write_text(f'{first}\n{{"name": "half-writ\n{second}\n')
        with capture_logs() as logs:
            versions = store.versions("main")
        assert [(v.version, v.by) for v in versions] == [("2", "ada"), ("1", "ada")]
        assert skipped(logs) == [
            {
                "event": "console.flow_history_line_skipped",
                "log_level": "warning",
                "file": str(journal),
                "line": 2,
                "error": "Unterminated string starting at: line 1 column 10 (char 9)",
            }
        ]

    async def test_bytes_that_are_not_utf8_are_a_skipped_line(self, tmp_path: Path) -> None:
        """A line of broken bytes is skipped like any other; the history is still shown."""
        store, journal = await saved(tmp_path, 1)
        journal.write_bytes(journal.read_bytes() + b'{"name": "\xff\xfe"}\n')
        with capture_logs() as logs:
            versions = store.versions("main")
        assert [(v.version, v.by) for v in versions] == [("1", "ada")]
        assert [(e["line"], e["error"][:35]) for e in skipped(logs)] == [
            (2, "'utf-8' codec can't decode byte 0xf")
        ]

    async def test_a_record_that_is_not_a_version_is_skipped(self, tmp_path: Path) -> None:
        """Valid JSON without a version's name is named as well."""
        store, journal = await saved(tmp_path, 1)
        journal.write_text(journal.read_text() + '["main", 1]\n\n')
        with capture_logs() as logs:
            assert [v.by for v in store.versions("main")] == ["ada"]
        assert [(e["line"], e["error"]) for e in skipped(logs)] == [
            (2, "not a version record (an object with a 'name')")
        ]

    async def test_a_save_after_a_torn_line_starts_its_own(self, tmp_path: Path) -> None:
        """A write cut short loses its own record only: the next save's is read."""
        store, journal = await saved(tmp_path, 1)
        journal.write_text(journal.read_text() + '{"name": "20261129T1')
        await store.save("main", FLOW.format(version=2), by="bea")
        with capture_logs() as logs:
            versions = store.versions("main")
        assert [(v.version, v.by) for v in versions] == [("2", "bea"), ("1", "ada")]
        assert [e["line"] for e in skipped(logs)] == [2]
