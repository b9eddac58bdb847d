"""A recording past its retention that cannot be deleted is reported, never passed over
in silence (it would be kept with a caller's voice on it); files already gone are fine."""

from __future__ import annotations

from pathlib import Path

import structlog
from structlog.testing import capture_logs

from ivr.qa_worker import _delete


def test_an_undeletable_file_is_reported_and_the_others_go(tmp_path: Path) -> None:
    base = tmp_path / "rec"
    Path(f"{base}-caller.wav").write_bytes(b"x")
    Path(f"{base}-agent.wav").mkdir()  # unlink() cannot remove a folder
    Path(f"{base}.json").write_text("{}")
    structlog.reset_defaults()
    with capture_logs() as logs:
        _delete(base)
    assert not Path(f"{base}-caller.wav").exists() and not Path(f"{base}.json").exists()
    failed = [e for e in logs if e["event"] == "qa.recording_not_deleted"]
    assert [e["file"] for e in failed] == [f"{base}-agent.wav"]


def test_files_already_gone_are_not_an_error(tmp_path: Path) -> None:
    structlog.reset_defaults()
    with capture_logs() as logs:
        _delete(tmp_path / "nothing")
    assert logs == []
