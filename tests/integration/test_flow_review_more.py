"""Regression tests from the review: hot reload, the flow-test runner, hours, HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from ivr.flows.model import Hours
from ivr.flows.nodes import is_open
from ivr.flows.registry import FlowRegistry

FLOW = "id: {id}\nversion: {v}\nnodes:\n  h: {{type: hangup, say: v{v}}}\n"


def _write(p: Path, text: str, bump: int = 0) -> None:
    p.write_text(text)
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + bump))


def test_crashing_file_loses_other_good_edits(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", FLOW.format(id="a", v=1))
    reg = FlowRegistry(tmp_path)
    reg.reload()
    assert reg.get("a").version == 1
    # one poll sees a good edit of a.yaml and a broken new file (invalid date -> ValueError)
    _write(tmp_path / "a.yaml", FLOW.format(id="a", v=2), bump=10**9)
    (tmp_path / "z.yaml").write_text(
        "id: z\nnodes:\n  h: {type: hangup, description: 2026-02-30}\n"
    )
    try:
        reg.reload()  # watch() would catch and log this
    except Exception as exc:
        print("reload raised", type(exc).__name__, exc)
    reg.reload()  # next poll
    assert reg.get("a").version == 2, "good edit of a.yaml never installed"


def test_renaming_a_flow_file_drops_the_flow(tmp_path: Path) -> None:
    _write(tmp_path / "main.yaml", FLOW.format(id="main", v=1))
    reg = FlowRegistry(tmp_path)
    reg.reload()
    (tmp_path / "main.yaml").rename(tmp_path / "main_menu.yaml")  # `git mv`, editor rename
    reg.reload()
    reg.reload()
    assert reg.get("main") is not None, "flow 'main' vanished after a rename"


def test_refused_duplicate_never_loaded_after_original_removed(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", FLOW.format(id="main", v=1))
    reg = FlowRegistry(tmp_path)
    reg.reload()
    _write(tmp_path / "b.yaml", FLOW.format(id="main", v=2))
    assert reg.reload()  # refused: duplicate id
    (tmp_path / "a.yaml").unlink()
    reg.reload()
    reg.reload()
    assert reg.get("main") is not None and reg.get("main").version == 2


RUNNER_FLOW = textwrap.dedent("""
    id: f
    nodes:
      hours: {type: hours, timezone: Asia/Seoul, schedule: {mon: ["09:00-18:00"]}, open: menu, closed: bye}
      menu: {type: menu, prompt: "For sales press 1.", options: [{digit: 1, goto: bye}], retries: 0, on_failure: bye}
      bye: {type: hangup, say: Goodbye.}
""")


def ivr_test(tmp: Path, tests: str, tz: str = "UTC") -> str:
    (tmp / "tests").mkdir(exist_ok=True)
    (tmp / "f.yaml").write_text(RUNNER_FLOW)
    (tmp / "tests" / "f.yaml").write_text(textwrap.dedent(tests))
    env = {**os.environ, "TZ": tz}
    return subprocess.run(
        [sys.executable, "-m", "ivr.cli", "test", str(tmp)], capture_output=True, text=True, env=env
    ).stdout


def test_documented_hangup_step_can_pass(tmp_path):
    out = ivr_test(
        tmp_path,
        """
        flow: f
        tests:
          - name: caller hangs up in the menu
            time: "2026-01-05T10:00:00+09:00"
            script: [{hangup: true}]
            expect: {visits: [hours, menu], not_visits: [bye]}
    """,
    )
    assert "1 passed" in out, out


def test_naive_time_does_not_depend_on_the_host_timezone(tmp_path):
    tests = """
        flow: f
        tests:
          - name: naive time
            time: "2026-01-05T10:00:00"
            script: [{press: "1"}]
            expect: {visits: [hours, menu, bye]}
    """
    assert (
        ivr_test(tmp_path, tests, "UTC").splitlines()[-1]
        == ivr_test(tmp_path, tests, "Asia/Seoul").splitlines()[-1]
    )


def test_unused_script_steps_fail_the_test(tmp_path):
    out = ivr_test(
        tmp_path,
        """
        flow: f
        tests:
          - name: three key presses scripted, the flow asks once and gives up
            time: "2026-01-05T10:00:00+09:00"
            script: [{press: "9"}, {press: "9"}, {press: "1"}]
            expect: {visits: [hours, menu, bye], ended: hangup}
    """,
    )
    assert "1 failed" in out, out


def hours(spans):
    return Hours.model_validate(
        {
            "type": "hours",
            "timezone": "Europe/Berlin",
            "schedule": {"mon": spans},
            "open": "a",
            "closed": "b",
        }
    )


def test_overnight_span_is_always_closed_and_not_rejected():
    node = hours(["22:00-02:00"])  # a night shift: accepted without complaint
    assert is_open(node, datetime.fromisoformat("2026-01-05T23:00:00+01:00"))  # Monday 23:00


def test_http_garbage_reply_goes_to_on_error():
    import asyncio
    import socket
    import threading

    from ivr.flows.ports import PooledHttp

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)

    def serve():
        c, _ = s.accept()
        c.recv(1000)
        c.sendall(b"garbage\r\n\r\n")
        c.close()

    threading.Thread(target=serve, daemon=True).start()

    async def fetch():
        client = PooledHttp()
        try:
            return await client.request(
                "GET", f"http://127.0.0.1:{s.getsockname()[1]}/", {}, None, 2
            )
        finally:
            await client.aclose()

    with pytest.raises((OSError, TimeoutError)):  # the only errors the http node catches
        asyncio.run(fetch())
    s.close()
