"""``GET /metrics`` in Prometheus's text format, after an emulated call through the
engine, a real Redis and the emulated AMI: the wait, agents per state, the AMI link,
live-data clients; AGI and ASR latency from their hooks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import structlog
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from ivr.agi import timings
from ivr.agi.timings import TIMINGS
from ivr.console import live, metrics
from routing.embedded import EmbeddedRedis
from routing.redis import RedisRouter
from tests.integration.helpers.console_rig import Mirror, Rig, console_rig, dial


@pytest.fixture
async def rig(redis_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with console_rig(redis_url, tmp_path) as made:
        yield made


async def _scrape(rig: Rig) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, by name and labels."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rig.port}") as http:
        reply = await http.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


class TestMetrics:
    async def test_after_a_call(self, rig: Rig) -> None:
        """One answered call: its wait in the histogram, agents per state, no call
        left active, the AMI link up, one live-data client while it is connected."""
        async with rig.connect("ada") as socket:
            board = Mirror(socket)
            await board.next()
            await rig.call(callerid="5551234", dial=dial(ring=0.2, talk=0.5))
            await board.until(lambda d: d["queues"]["sales"]["handled"] == 1)
            during = await _scrape(rig)
        assert during[("ivr_console_websocket_clients", ())] == 1
        wait = (("outcome", "answered"), ("queue", "sales"))
        assert during[("ivr_queue_wait_seconds_count", wait)] == 1
        assert 0 < during[("ivr_queue_wait_seconds_sum", wait)] < 5
        assert during[("ivr_calls_active", ())] == 0
        assert during[("ivr_agents", (("state", "logged_out"),))] == 0
        states = {k[1][0][1]: v for k, v in during.items() if k[0] == "ivr_agents"}
        assert states["available"] + states["wrap_up"] == 2
        assert during[("ivr_ami_up", ())] == 1
        assert during[("ivr_ami_reconnects_total", ())] == 0
        await asyncio.sleep(0.2)
        after = await _scrape(rig)
        assert after[("ivr_console_websocket_clients", ())] == 0

    async def test_calls_per_flow_node_from_the_engines_hook(self, rig: Rig) -> None:
        await rig.aggregator.ensure_started()
        rig.aggregator.ivr_step("1.1", "main", "menu", caller="5551234")
        rig.aggregator.ivr_step("1.2", "main", "menu")
        rig.aggregator.ivr_step("1.2", "main", "billing")
        samples = await _scrape(rig)
        assert samples[("ivr_calls", (("flow", "main"), ("node", "menu")))] == 1
        assert samples[("ivr_calls", (("flow", "main"), ("node", "billing")))] == 1
        assert samples[("ivr_calls_active", ())] == 2
        rig.aggregator.ivr_left("1.1")
        assert (await _scrape(rig))[("ivr_calls_active", ())] == 1

    async def test_every_agi_command_of_a_call_is_timed(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A call through the engine, every command sampled (``SAMPLE`` 1; the engine's
        default times one in 8): each AGI command's round trip lands in the process's
        ``ivr_agi_command_seconds``, labelled by its verb (EXEC by the application),
        never by an argument (the caller's number, the endpoint)."""
        monkeypatch.setattr(timings, "SAMPLE", 1)

        def agi_samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            text = generate_latest(metrics.Metrics(process=True).registry).decode()
            return {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if family.name == "ivr_agi_command_seconds"
            }

        before = agi_samples()
        await rig.call(callerid="5551234", dial=dial(ring=0.2, talk=0.5))
        samples = agi_samples()
        assert (
            TIMINGS.count("EXEC Dial")
            == samples[("ivr_agi_command_seconds_count", (("command", "EXEC Dial"),))]
        )

        def grew(name: str, command: str) -> float:
            key = (f"ivr_agi_command_seconds_{name}", (("command", command),))
            return samples[key] - before.get(key, 0.0)

        assert grew("count", "EXEC Dial") == 1
        assert grew("count", "ANSWER") >= 1
        # The Dial's round trip is the ring and the talk (0.7 s at least): not within the
        # 0.5 s bound, within +Inf ("le" is "at most"; the buckets are cumulative).
        assert grew("sum", "EXEC Dial") >= 0.7
        dial_half = ("ivr_agi_command_seconds_bucket", (("command", "EXEC Dial"), ("le", "0.5")))
        dial_all = ("ivr_agi_command_seconds_bucket", (("command", "EXEC Dial"), ("le", "+Inf")))
        assert samples[dial_half] - before.get(dial_half, 0.0) == 0
        assert samples[dial_all] - before.get(dial_all, 0.0) == 1
        labels = {value for _, pairs in samples for _, value in pairs}
        assert not any("5551234" in label or "PJSIP" in label for label in labels)

    async def test_the_hand_over_s_context_is_not_logged(self, rig: Rig) -> None:
        """The agent gets what the caller chose and entered (the console, the agent's
        leg); the log line of the hand-over says to whom, not what."""
        structlog.reset_defaults()
        with capture_logs() as logs:
            await rig.call(callerid="5551234", dial=dial(ring=0.1, talk=0.2))
        handed = [e for e in logs if e["event"] == "flow.handed_over"]
        assert handed and all(e["context"] == "***" and e["agent"] for e in handed)
        assert not any("5551234" in str(e) for e in logs if str(e["event"]).startswith("flow."))

    async def test_agi_and_asr_latency_hooks(self, rig: Rig) -> None:
        metrics.observe_agi("STREAM FILE", 0.004, rig.metrics)
        metrics.observe_agi("EXEC Dial", 12.0, rig.metrics)
        metrics.observe_asr("ko", 0.3, rig.metrics)
        samples = await _scrape(rig)
        stream = (("command", "STREAM FILE"),)
        assert samples[("ivr_agi_command_seconds_count", stream)] == 1
        assert samples[("ivr_agi_command_seconds_bucket", (*stream, ("le", "0.005")))] == 1
        assert samples[("ivr_asr_seconds_count", (("language", "ko"),))] == 1

    async def test_redis_errors_and_reconnects_are_counted(self, tmp_path: Path) -> None:
        """The console's reads fail while its Redis is down, and work again when it is
        back: both counted (a Redis of its own, stopped and started again)."""
        redis = EmbeddedRedis(tmp_path / "redis")
        router = RedisRouter.connect(await redis.start())
        own = metrics.Metrics(process=False)
        aggregator = live.Aggregator(router, metrics=own, block=0.2)
        try:
            await aggregator.ensure_started()
            await redis.stop()
            await _until(lambda: _value(own, "ivr_redis_errors_total", source="console") >= 1)
            await redis.start()
            await _until(lambda: _value(own, "ivr_redis_reconnects_total", source="console") >= 1)
        finally:
            await aggregator.close()
            await router.close()
            await redis.stop()


def _value(own: metrics.Metrics, name: str, **labels: str) -> float:
    return own.registry.get_sample_value(name, labels) or 0.0


async def _until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not counted in time"
        await asyncio.sleep(0.05)
