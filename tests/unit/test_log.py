"""Logging: JSON lines with the call's context, sensitive values masked."""

from __future__ import annotations

import json

import pytest
import structlog

from ivr import log


@pytest.fixture(autouse=True)
def _reset() -> None:
    structlog.contextvars.clear_contextvars()


def test_json_lines_carry_call_context(capsys: pytest.CaptureFixture[str]) -> None:
    """A line logged inside a call names its uniqueid, flow and node."""
    log.configure(json=True, level="info")
    log.bind_call(uniqueid="1795356168.1", flow="billing", node="pin")
    structlog.get_logger("t").info("node.entered", attempt=1)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["uniqueid"] == "1795356168.1"
    assert line["flow"] == "billing"
    assert line["node"] == "pin"
    assert line["event"] == "node.entered"


def test_sensitive_values_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    """Keys a flow marks sensitive (and pins, secrets) never reach the output."""
    log.configure(json=True, level="info")
    token = log.sensitive_keys.set(frozenset({"account"}))
    try:
        structlog.get_logger("t").info("gathered", account="12345678", pin="0000", other="ok")
    finally:
        log.sensitive_keys.reset(token)
    out = capsys.readouterr().err
    assert "12345678" not in out and "0000" not in out
    assert json.loads(out.strip().splitlines()[-1])["other"] == "ok"


def test_debug_flag_follows_level() -> None:
    """Hot paths build debug lines only when debug is on."""
    log.configure(json=True, level="debug")
    assert log.debug_enabled()
    log.configure(json=True, level="warning")
    assert not log.debug_enabled()


def test_bad_level_is_refused() -> None:
    with pytest.raises(ValueError, match="use debug, info"):
        log.configure(level="loud")


class _Call:
    uniqueid = "1795356168.7"
    script = "billing"


def test_the_current_call_names_its_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """A line logged while a call is current names its uniqueid and flow; a line's own
    value and a bound flow (a subflow's) win; outside a call, neither is added."""
    log.configure(json=True, level="info")
    logger = structlog.get_logger("t")
    logger.info("outside")
    token = log.current_call.set(_Call())
    try:
        logger.info("inside")
        logger.info("own", uniqueid="other")
        with structlog.contextvars.bound_contextvars(flow="sub", node="pin"):
            logger.info("subflow")
    finally:
        log.current_call.reset(token)
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    named = {line["event"]: (line.get("uniqueid"), line.get("flow")) for line in lines}
    assert named == {
        "outside": (None, None),
        "inside": ("1795356168.7", "billing"),
        "own": ("other", "billing"),
        "subflow": ("1795356168.7", "sub"),
    }
