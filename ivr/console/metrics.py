"""The engine's figures for Prometheus: ``GET /metrics`` in the text format.

One :class:`Metrics` per engine process (:func:`default`; tests make their own)
holds a registry of its own (never prometheus-client's global one, so two
engines in one test process do not mix):

==========================================  =========  ===================================
``ivr_calls_active``                        gauge      live calls the console knows of
``ivr_calls{flow,node}``                    gauge      per flow node in the IVR; after it
                                                       ``flow="queue"`` and the stage
                                                       (waiting, ringing, connected)
``ivr_queue_wait_seconds{queue,outcome}``   histogram  a caller's wait, when answered or
                                                       abandoned
``ivr_agents{state}``                       gauge      agents per state as the console shows
                                                       them (on_hold apart from on_call)
``ivr_agi_command_seconds{command}``        histogram  an AGI command's round trip, one
                                                       command in 8 of every call
                                                       (:mod:`ivr.agi.timings`)
``ivr_asr_seconds{language}``               histogram  end of speech to the recogniser's
                                                       result (:func:`observe_asr`)
``ivr_redis_errors_total{source}``          counter    failed reads of the routing store
``ivr_redis_reconnects_total{source}``      counter    reads that worked again after failing
``ivr_ami_up``                              gauge      1 while the AMI link is up
``ivr_ami_reconnects_total``                counter    AMI links re-established after a drop
``ivr_ami_disconnects_total``               counter    AMI drops the console saw
``ivr_console_websocket_clients``           gauge      connected live-data clients
``process_*``                               various    the engine process: CPU, memory, fds
==========================================  =========  ===================================

The live figures (calls, agents, AMI) are read at scrape time from the
aggregators and AMI clients :meth:`Metrics.watch` was given, so nothing is
updated per event. ``/metrics`` asks no login, like ``/health``: it is served
on the API's address (``IVR_API_HOST``, 127.0.0.1 unless configured), which is
where a scraper must be let in and nobody else; it shows counts, never a
caller's number or an agent's name beyond queue and flow names.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ivr.agi.timings import TIMINGS, AgiTimings
from routing.errors import RoutingError

if TYPE_CHECKING:
    from ivr.ami import AmiClient
    from ivr.console.live import Aggregator

__all__ = ["Metrics", "default", "observe_agi", "observe_asr", "routes"]

#: Seconds: an AGI command's round trip is milliseconds, an EXEC Dial minutes.
_ASR_BUCKETS: Final = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)
#: Seconds a scrape waits for the live data to start (it goes on starting after).
_START_WAIT: Final = 2.0
_WAIT_BUCKETS: Final = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800)


class Metrics:
    """The registry and the metrics the engine's parts write to."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.queue_wait = Histogram(
            "ivr_queue_wait_seconds",
            "How long callers waited for an agent: answered or abandoned",
            ["queue", "outcome"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        #: The AGI round trips: the process's (every channel records there) when
        #: ``process``, else counts of this instance's own (tests).
        self.agi_timings = TIMINGS if process else AgiTimings()
        r.register(self.agi_timings)
        self.asr = Histogram(
            "ivr_asr_seconds",
            "Speech recognition latency: end of the caller's speech to the result",
            ["language"],
            buckets=_ASR_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "ivr_redis_errors", "Failed reads of the routing store", ["source"], registry=r
        )
        self.redis_reconnects = Counter(
            "ivr_redis_reconnects",
            "Reads of the routing store that worked again after failing",
            ["source"],
            registry=r,
        )
        self.ami_disconnects = Counter(
            "ivr_ami_disconnects", "AMI links the console saw go down", registry=r
        )
        self.websocket_clients = Gauge(
            "ivr_console_websocket_clients", "Connected live-data clients", registry=r
        )
        self._live = _Live()
        r.register(self._live)
        if process:
            ProcessCollector(registry=r)

    def watch(self, aggregator: Aggregator | None = None, ami: AmiClient | None = None) -> None:
        """Read this aggregator's calls and agents, and this AMI client's link, at scrape
        time (kept weakly: a closed engine part drops out)."""
        if aggregator is not None:
            self._live.aggregators.add(aggregator)
        if ami is not None:
            self._live.amis.add(ami)

    def aggregators(self) -> list[Aggregator]:
        return list(self._live.aggregators)

    def text(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


class _Live(Collector):
    """Calls, agents and the AMI link, as they are when scraped."""

    def __init__(self) -> None:
        self.aggregators: weakref.WeakSet[Aggregator] = weakref.WeakSet()
        self.amis: weakref.WeakSet[AmiClient] = weakref.WeakSet()

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        yield from self._families()

    def _families(self) -> Iterator[Metric]:
        active = GaugeMetricFamily("ivr_calls_active", "Live calls the console knows of")
        calls = GaugeMetricFamily(
            "ivr_calls", "Live calls per flow node (flow=queue: per stage after the IVR)",
            labels=["flow", "node"],
        )  # fmt: skip
        agents = GaugeMetricFamily("ivr_agents", "Agents per state", labels=["state"])
        total = 0
        per_node: dict[tuple[str, str], int] = {}
        per_state: dict[str, int] = {}
        for aggregator in list(self.aggregators):
            for where, count in aggregator.board.nodes().items():
                per_node[where] = per_node.get(where, 0) + count
                total += count
            for state, count in aggregator.board.states().items():
                per_state[state] = per_state.get(state, 0) + count
        active.add_metric([], total)
        for (flow, node), count in sorted(per_node.items()):
            calls.add_metric([flow, node], count)
        for state, count in sorted(per_state.items()):
            agents.add_metric([state], count)
        yield from (active, calls, agents)
        up = GaugeMetricFamily("ivr_ami_up", "1 while the AMI link is up")
        again = CounterMetricFamily("ivr_ami_reconnects", "AMI links re-established after a drop")
        links = list(self.amis)
        up.add_metric([], sum(1 for ami in links if ami.connected))
        again.add_metric([], sum(ami.reconnects for ami in links))
        yield from (up, again)


_DEFAULT: Metrics | None = None


def default() -> Metrics:
    """This process's metrics (one engine per process)."""
    global _DEFAULT  # noqa: PLW0603 - one registry per process, made on first use
    if _DEFAULT is None:
        _DEFAULT = Metrics()
    return _DEFAULT


def observe_agi(command: str, seconds: float, metrics: Metrics | None = None) -> None:
    """One AGI command's round trip (``command``: the verb, e.g. ``STREAM FILE``, or
    ``EXEC Dial``: never its arguments, which hold callers' data)."""
    (metrics or default()).agi_timings.record(command, seconds)


def observe_asr(language: str, seconds: float, metrics: Metrics | None = None) -> None:
    """One recognition's latency, from the end of the caller's speech to the result."""
    (metrics or default()).asr.labels(language).observe(seconds)


def routes(metrics: Metrics | None = None, *, path: str = "/metrics") -> list[BaseRoute]:
    """``GET /metrics`` (no login: see the module docstring for where it listens)."""
    chosen = metrics or default()

    async def endpoint(request: Request) -> Response:
        for aggregator in chosen.aggregators():
            try:  # the figures need it running; a scrape never waits long for Redis
                async with asyncio.timeout(_START_WAIT):
                    await aggregator.ensure_started()
            except (RoutingError, TimeoutError):
                chosen.redis_errors.labels("metrics").inc()
        # The format the scraper asks for (Prometheus's text format, or OpenMetrics).
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(chosen.registry), headers={"Content-Type": content_type})

    return [Route(path, endpoint, methods=["GET"])]
