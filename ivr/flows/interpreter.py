"""Runs a flow on a call: walks its nodes, talking to the ``Channel`` and the ports.

The :class:`Engine` holds the services every call shares and runs each call:
one :class:`~ivr.flows.run.Run` per call (its variables, language and trace,
:mod:`ivr.flows.run`) walked node by node, each node's behaviour taken from
:mod:`ivr.flows.nodes`. A call keeps the :class:`Flow` object it started with,
so a hot reload never changes a call in progress.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from ivr.agi.channel import Channel
from ivr.errors import ChannelHangup
from ivr.flows.model import Flow
from ivr.flows.nodes import HANDLERS
from ivr.flows.ports import PooledHttp, SpeechPrompts
from ivr.flows.run import (
    HIDDEN_PROMPT,
    FlowRuntimeError,
    Rendered,
    Run,
    Services,
    Spoken,
    Trace,
)
from ivr.log import sensitive_keys
from routing.errors import RoutingError
from routing.types import Router

__all__ = [
    "HIDDEN_PROMPT",
    "Engine",
    "FlowRuntimeError",
    "Rendered",
    "Router",
    "Run",
    "Spoken",
    "Trace",
    "execute",
]

log = structlog.get_logger("ivr.flows")
MAX_STEPS = 10_000


class Engine(Services):
    """The services every call's run shares, and the running of each call on them."""

    __slots__ = ()

    async def run(self, channel: Channel, flow: Flow) -> Trace:
        # The keys this call masks in logs are its own (a test may run calls in one task).
        masked = sensitive_keys.set(sensitive_keys.get())
        run = Run(self, channel, flow)
        try:
            await execute(run)
        finally:
            run.close()  # before anything else can fail or wait: a hang-up, a cancel
            try:
                await self._ended(run)
            finally:
                sensitive_keys.reset(masked)
        return run.trace

    async def aclose(self) -> None:
        """Release what the engine holds once its calls have ended: the pooled HTTP
        client's connections, and its per-call prompt folder with the lock on it."""
        if isinstance(self.http, PooledHttp):
            await self.http.aclose()
        if isinstance(self.prompts, SpeechPrompts):
            self.prompts.private.close()

    async def _ended(self, run: Run) -> None:
        """Tell the KPIs how the call left the flow: contained when it never asked
        for a person (no queue, no transfer), and at which node; a store that is
        away is logged."""
        if self.router is None:
            return
        asked = bool(run.last_queue) or any(
            e["event"] in ("transferred", "faq_handoff") for e in run.trace.events
        )
        try:
            await self.router.note(
                "ivr_ended",
                call=run.channel.uniqueid,
                flow=run.flow.id,
                contained="0" if asked else "1",
                ended=run.trace.ended or "error",
                # Where the caller was when the call left the flow (drop-off per node).
                node=run.trace.nodes[-1] if run.trace.nodes else "",
            )
        except RoutingError as exc:
            log.error("flow.ivr_ended_not_recorded", error=str(exc))  # noqa: TRY400


async def execute(run: Run) -> None:
    """Walk ``run``'s flow to its end; a caller who hangs up ends it as ``caller_hangup``."""
    try:
        await _walk(run)
    except ChannelHangup:
        run.trace.ended = "caller_hangup"  # how calls end, not an engine failure
    finally:
        run.trace.variables = dict(run.variables)
        run.trace.sensitive = set(run.sensitive)
        if run.engine.on_left is not None:
            _observe(run.engine.on_left, run)


def _observe(observer: Callable[..., None], *args: object) -> None:
    """Tell an observer (the console's board); its failure is logged, never the call's."""
    try:
        observer(*args)
    except Exception:
        log.exception("flow.observer_failed", observer=getattr(observer, "__qualname__", "?"))


async def _walk(run: Run) -> None:
    channel, trace = run.channel, run.trace
    await channel.answer()
    stack: list[tuple[Flow, str]] = []
    flow, name = run.flow, run.flow.start
    for _ in range(MAX_STEPS):
        if channel.hung_up:
            # Learnt from a reply a dead channel still gives (a HANGUP notice
            # is not a reply): no node runs for a caller who has gone.
            raise ChannelHangup("the caller hung up", how=channel.hangup_how)
        node = flow.nodes[name]
        if flow is not run.current:
            run.mark_sensitive(*flow.sensitive)
        run.current, run.node = flow, name
        trace.nodes.append(name if flow is run.flow else f"{flow.id}.{name}")
        structlog.contextvars.bind_contextvars(flow=flow.id, node=name)
        if run.engine.on_node is not None:
            _observe(run.engine.on_node, run, flow.id, name)
        if node.type == "subflow":
            child = run.engine.flows(node.flow)
            if child is None:
                raise FlowRuntimeError(f"subflow {node.flow!r} is not loaded")
            stack.append((flow, node.next))
            flow, name = child, child.start
            continue
        if node.type == "return":
            if not stack:
                trace.ended = "return"
                return
            flow, name = stack.pop()
            continue
        following = await HANDLERS[node.type](run, node)
        if following is None:
            trace.ended = trace.ended or node.type
            return
        name = following
    raise FlowRuntimeError(f"the call took {MAX_STEPS} steps without ending")
