"""One logged-in AMI connection, kept up: actions, typed events, reconnect, resync.

Our own, on the sans-I/O :mod:`ivr.ami.protocol` (framing, encoding) and a
small asyncio protocol here (replies matched to actions by ActionID). It was
built on panoramisk 1.4's ``Manager``; by now every part of that which a
call depends on had been replaced, and what was left (matching replies to
actions) cost more to wrap than to write. Why each part had to go:

* **Reconnect**: ``Manager.connection_lost`` retries every ``reconnect_timeout``
  seconds forever, with no backoff and no jitter, and also after a refused
  login (hammering Asterisk with a wrong secret). Here a supervisor task
  reconnects with capped exponential backoff and jitter (:mod:`ivr.backoff`,
  shared with the engine's first connect), stops hammering on a refused login,
  and resyncs (``CoreShowChannels``, ``DeviceStateList``) before telling the
  engine through ``on_resync``.
* **Actions in flight when the link drops**: ``AMIProtocol.close`` queues them
  to be sent again after the next ``FullyBooted``, which a least-privilege
  user (no ``system`` read) never receives, and which would re-send an
  ``Originate`` (a second call). Here they fail at once with
  :class:`AmiConnectionError`; the caller decides.
* **Framing**: ``AMIProtocol.data_received`` decodes each TCP chunk before
  framing (a UTF-8 character split across chunks is silently dropped;
  other bytes that are not UTF-8 vanish) and only knows CRLF. Here
  :class:`~ivr.ami.protocol.AmiParser` frames bytes first; and every value
  sent is checked for CR/LF/NUL (panoramisk writes values as given).
* **Matching replies**: panoramisk guesses whether a reply starts a list from
  its wording ("will follow", "added ... to queue"). Here the rules are
  manager.c's: ``EventList: start`` opens a list that an event with
  ``EventList: Complete`` closes (``astman_send_listack`` /
  ``astman_send_list_complete_start``); an ``Async: true`` Originate that was
  queued is answered by the ``OriginateResponse`` event with its ActionID;
  any other action by its one ``Response``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from ivr.agi.protocol import escape_app_arg
from ivr.ami.config import AmiConfig
from ivr.ami.errors import (
    AmiActionError,
    AmiConnectionError,
    AmiError,
    AmiLoginError,
    AmiSetupError,
    AmiTimeout,
)
from ivr.ami.events import (
    AmiEvent,
    CoreShowChannel,
    DeviceStateChange,
    OriginateResponse,
    parse_event,
)
from ivr.ami.protocol import AmiParser, HeaderValue, Message, encode_action
from ivr.backoff import Backoff
from ivr.errors import UnsafeArgumentError

__all__ = ["AMI_LINE_MAX", "AmiClient", "AmiUnsendableError", "Resync", "SpyMode"]

log = structlog.get_logger()

Handler = Callable[[AmiEvent], Awaitable[None] | None]
SpyMode = Literal["listen", "whisper", "barge"]
#: ChanSpy options per supervisor mode (app_chanspy.c): q quiet (no beep / name),
#: E exit when the spied channel hangs up, u the argument is a uniqueid or a
#: whole channel name (so PJSIP/20 cannot also catch PJSIP/200-...), w whisper, B barge.
SPY_OPTIONS: dict[str, str] = {"listen": "qEu", "whisper": "qEuw", "barge": "qEuB"}

#: The longest line Asterisk reads whole, CRLF excluded: manager.c get_input keeps a
#: 1,025-byte buffer (1,024 usable, CRLF included) and discards a message with a
#: longer line ("Failed to parse message: line too long"), the whole action.
AMI_LINE_MAX = 1022


class AmiUnsendableError(AmiError, UnsafeArgumentError):
    """An action Asterisk could not read as written (a line past AMI_LINE_MAX bytes, a
    value that is not Unicode): refused before it is sent, never retried as it is.
    (Beside :class:`~ivr.ami.errors.AmiInjectionError`, which this complements.)"""


def _sendable(name: str, headers: Mapping[str, HeaderValue], action_id: str) -> bytes:
    """The action's bytes; :class:`AmiUnsendableError` when Asterisk would not read it whole
    (CR, LF and NUL are refused by encode_action as AmiInjectionError)."""
    try:
        wire = encode_action(name, headers, action_id=action_id)
    except UnicodeEncodeError:
        raise AmiUnsendableError(
            f"AMI {name}: a header value is not valid Unicode (a lone surrogate, from a "
            "JSON escape perhaps); decode it with errors='replace' first"
        ) from None
    if len(wire) > AMI_LINE_MAX:
        for line in wire.split(b"\r\n"):
            if len(line) > AMI_LINE_MAX:
                header = line.partition(b":")[0].decode("utf-8", "replace")
                raise AmiUnsendableError(
                    f"AMI {name}: header {header} is {len(line)} bytes; Asterisk reads lines "
                    f"of at most {AMI_LINE_MAX} and drops the whole action: shorten the value"
                )
    return wire


@dataclass(frozen=True, slots=True)
class Resync:
    """What Asterisk holds right after a (re)connect."""

    channels: tuple[CoreShowChannel, ...]
    device_states: Mapping[str, str]
    reconnected: bool
    #: Seconds from the link going down to this resync (0 on the first connect).
    outage: float = 0.0


class _Pending:
    """One action sent, waiting for its whole answer (manager.c's rules, above)."""

    __slots__ = ("future", "listing", "messages", "name", "queued_originate")

    def __init__(self, name: str, *, queued_originate: bool) -> None:
        self.name = name
        self.queued_originate = queued_originate
        self.future: asyncio.Future[Message | list[Message]] = (
            asyncio.get_running_loop().create_future()
        )
        self.messages: list[Message] = []
        self.listing = False

    def add(self, message: Message) -> bool:
        """Take one message with this ActionID; True once the answer is whole."""
        self.messages.append(message)
        if len(self.messages) == 1:
            if message.get("EventList").lower() == "start":
                self.listing = True
                return False
            if self.queued_originate and message.response == "Success":
                return False  # "Originate successfully queued": the event follows
            self._done(message)
            return True
        if self.listing and message.event and message.get("EventList").lower() == "complete":
            self._done(self.messages)
            return True
        if self.queued_originate and message.event == "OriginateResponse":
            self._done(self.messages)
            return True
        return False

    def _done(self, result: Message | list[Message]) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class _Protocol(asyncio.Protocol):
    """One AMI connection: bytes framed by :class:`AmiParser`, replies to their
    actions, every other event to the client; fails what is in flight on close."""

    def __init__(self, client: AmiClient) -> None:
        self.client = client
        self.parser = AmiParser()
        self.pending: dict[str, _Pending] = {}
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for message in self.parser.feed(data):
            waiting = self.pending.get(message.action_id) if message.action_id else None
            if waiting is not None:
                if waiting.add(message):
                    del self.pending[message.action_id]
                continue
            if message.event:
                self.client._dispatch(message)
                if message.event == "Shutdown":  # Asterisk is stopping: the link goes
                    self.close()

    def send(self, action_id: str, pending: _Pending, wire: bytes) -> None:
        assert self.transport is not None
        self.pending[action_id] = pending
        self.transport.write(wire)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        pending, self.pending = self.pending, {}
        for waiting in pending.values():
            waiting.fail(
                AmiConnectionError(
                    f"the AMI connection dropped before Asterisk answered {waiting.name}; "
                    "it may or may not have run: check its effect before trying again"
                )
            )
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self.client._lost(self)


def _variable(value: str) -> str:
    """An Originate variable's value escaped as one application argument; one holding
    CR, LF or NUL is left for the header check to refuse, naming the header."""
    return value if any(c in value for c in "\r\n\0") else escape_app_arg(value)


class EventStream:
    """``async for event in client.events("Hangup", "DialEnd")``; close it when done."""

    def __init__(self, client: AmiClient, names: Iterable[str], maxsize: int) -> None:
        self._queue: asyncio.Queue[AmiEvent] = asyncio.Queue(maxsize)
        self._unsubscribe = [client.on(name, self._put) for name in (tuple(names) or ("*",))]

    def _put(self, event: AmiEvent) -> None:
        if self._queue.full():  # a slow reader loses the oldest, never blocks the link
            self._queue.get_nowait()
            log.warning("ami_event_stream_overflow", dropped=event.name)
        self._queue.put_nowait(event)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> AmiEvent:
        return await self._queue.get()

    async def get(self, timeout: float | None = None) -> AmiEvent:
        return await asyncio.wait_for(self._queue.get(), timeout)

    def pending(self) -> list[AmiEvent]:
        """Every event received and not yet read, without waiting (the stream is emptied)."""
        events: list[AmiEvent] = []
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events

    def close(self) -> None:
        for off in self._unsubscribe:
            off()
        self._unsubscribe = []

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class AmiClient:
    """The engine's AMI connection. ``await connect()``, then actions and events."""

    def __init__(
        self,
        config: AmiConfig,
        *,
        on_resync: Callable[[Resync], Awaitable[None] | None] | None = None,
        on_disconnect: Callable[[], Awaitable[None] | None] | None = None,
        resync_devices: bool = True,
    ) -> None:
        self.config = config
        self.on_resync = on_resync
        self.on_disconnect = on_disconnect
        self.resync_devices = resync_devices
        self._handlers: dict[str, list[Handler]] = {}
        self._protocol: _Protocol | None = None
        self._ids = itertools.count(1)
        self._prefix = f"ivr-{uuid.uuid4().hex[:8]}"
        self._down = asyncio.Event()
        self._up = asyncio.Event()
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self.version = ""
        #: How many times the link came back after a drop.
        self.reconnects = 0
        self.last_resync: Resync | None = None
        #: Told of every resync too, after ``on_resync`` (the answer tracker, callbacks).
        self._resync_listeners: list[Callable[[Resync], Awaitable[None] | None]] = []

    # ------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    async def connect(self) -> None:
        """Connect and log in; raise :class:`AmiLoginError` / :class:`AmiConnectionError`.

        Then keep the link up in the background until :meth:`close`.
        """
        self.config.require_credentials()
        self._closing = False
        await self._open()
        try:
            await self._resync(reconnected=False, outage=0.0)
        except BaseException:  # e.g. Permission denied for CoreShowChannels: do not stay half up
            self._up.clear()
            if self._protocol is not None:
                self._protocol.close()
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="ami-supervisor")
        if self.config.ping_interval > 0:
            self._pinger = asyncio.create_task(self._ping_loop(), name="ami-ping")

    async def close(self) -> None:
        """Log off and stop reconnecting."""
        self._closing = True
        for task in (self._supervisor, self._pinger):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._protocol is not None and not self._protocol.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.action("Logoff"), 1.0)
            self._protocol.close()
        self._up.clear()
        for task in list(self._tasks):
            task.cancel()

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._up.wait(), timeout)

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        try:
            _transport, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(self), cfg.host, cfg.port),
                cfg.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise AmiConnectionError(
                f"cannot reach the AMI at {cfg.host}:{cfg.port} ({exc}); is Asterisk running "
                "and manager.conf [general] enabled = yes with that bindaddr/port?"
            ) from exc
        self._protocol = protocol
        self._down.clear()
        try:
            reply = await self._send(
                "Login",
                {"Username": cfg.username, "Secret": cfg.secret, "Events": "on"},
                timeout=cfg.connect_timeout + 1.5,  # Asterisk waits 1 s before refusing
                check=False,
            )
        except (AmiConnectionError, AmiTimeout):
            protocol.close()
            raise
        if reply.response != "Success":
            protocol.close()
            raise AmiLoginError(
                f"Asterisk at {cfg.host}:{cfg.port} refused the AMI login as {cfg.username!r} "
                f"({reply.get('Message') or reply.response}); check IVR_AMI_USER / IVR_AMI_SECRET "
                "against manager.conf and that the user's permit= allows this host"
            )
        self.version = protocol.parser.version
        self._up.set()
        log.info("ami_connected", host=cfg.host, port=cfg.port, version=self.version)

    def _stopping(self) -> bool:
        return self._closing

    def _lost(self, protocol: _Protocol) -> None:
        if protocol is not self._protocol:
            return  # an earlier connection, closing late
        if self._up.is_set() or not self._down.is_set():
            self._up.clear()
            self._down.set()

    async def _supervise(self) -> None:
        cfg = self.config
        while not self._closing:
            await self._down.wait()
            if self._stopping():
                return
            went_down = time.monotonic()
            log.warning("ami_disconnected", host=cfg.host, port=cfg.port)
            self._call(self.on_disconnect)
            backoff = Backoff(cfg.backoff_initial, cfg.backoff_max, jitter=cfg.backoff_jitter)
            while not self._closing:
                await asyncio.sleep(backoff.delay())
                try:
                    await self._open()
                    await self._resync(reconnected=True, outage=time.monotonic() - went_down)
                except AmiLoginError as exc:
                    log.error("ami_login_refused", error=str(exc))  # noqa: TRY400
                    backoff.longest()  # credentials will not fix themselves quickly
                except (AmiConnectionError, AmiTimeout, OSError) as exc:
                    log.info("ami_reconnect_failed", error=str(exc), next_delay=backoff.upcoming)
                else:
                    self.reconnects += 1
                    break

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.ping_interval)
            if not self.connected or self._protocol is None:
                continue
            try:
                await self.action("Ping")
            except AmiTimeout:
                # A half-open link: nothing arrives, nothing fails. Drop it.
                log.warning("ami_ping_timeout")
                self._protocol.abort()
            except (AmiConnectionError, AmiActionError):
                pass

    async def _resync(self, *, reconnected: bool, outage: float) -> None:
        try:
            channels = tuple(await self.core_show_channels())
            states = await self.device_states() if self.resync_devices else {}
        except AmiActionError as exc:
            # Asterisk answered: it is reachable, but set up without what the
            # engine needs (a module not loaded, a class not granted). Say which.
            raise AmiSetupError(exc.action, exc.reason) from exc
        resync = Resync(channels, states, reconnected, outage)
        self.last_resync = resync
        log.info("ami_resync", channels=len(channels), devices=len(states), outage=round(outage, 3))
        self._call(self.on_resync, resync)
        for listener in list(self._resync_listeners):
            self._call(listener, resync)

    def on_resynced(
        self, listener: Callable[[Resync], Awaitable[None] | None]
    ) -> Callable[[], None]:
        """Also tell ``listener`` of every resync (events lost while the link was down are
        to be read from its channels); returns an undo."""
        self._resync_listeners.append(listener)

        def off() -> None:
            with contextlib.suppress(ValueError):
                self._resync_listeners.remove(listener)

        return off

    # ---------------------------------------------------------------- events

    def on(self, name: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(event)`` for each event ``name`` (``"*"``: all); returns an undo."""
        key = name.lower()
        self._handlers.setdefault(key, []).append(handler)

        def off() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.get(key, []).remove(handler)

        return off

    def events(self, *names: str, maxsize: int = 1000) -> EventStream:
        """An async iterator over the events named (all when none is named)."""
        return EventStream(self, names, maxsize)

    def _dispatch(self, message: Message) -> None:
        self._emit(parse_event(message))

    def _emit(self, event: AmiEvent) -> None:
        for handler in [*self._handlers.get(event.name.lower(), ()), *self._handlers.get("*", ())]:
            self._call(handler, event)

    def _call(self, handler: Callable[..., Awaitable[None] | None] | None, *args: Any) -> None:
        if handler is None:
            return
        try:
            result = handler(*args)
        except Exception:
            log.exception("ami_handler_failed", handler=getattr(handler, "__name__", repr(handler)))
            return
        if asyncio.iscoroutine(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ami_handler_failed", error=repr(task.exception()))

    # --------------------------------------------------------------- actions

    async def _send(
        self,
        name: str,
        headers: Mapping[str, HeaderValue] | None = None,
        *,
        timeout: float | None = None,
        check: bool = True,
    ) -> Any:
        headers = dict(headers or {})
        action_id = f"{self._prefix}-{next(self._ids)}"
        wire = _sendable(name, headers, action_id)  # refuses CR/LF/NUL, long lines
        protocol = self._protocol
        if protocol is None or protocol.closed:
            raise AmiConnectionError(
                f"the AMI is not connected; {name} was not sent (the client reconnects by itself)"
            )
        queued = name == "Originate" and str(headers.get("Async", "")).lower() == "true"
        pending = _Pending(name, queued_originate=queued)
        protocol.send(action_id, pending, wire)
        try:
            result = await asyncio.wait_for(
                asyncio.shield(pending.future), timeout or self.config.action_timeout
            )
        except TimeoutError:
            protocol.pending.pop(action_id, None)
            raise AmiTimeout(
                f"Asterisk did not answer {name} within {timeout or self.config.action_timeout} s"
            ) from None
        if isinstance(result, list):
            return result
        message = result
        if check and message.response == "Error":
            raise AmiActionError(name, message.get("Message") or "no reason given")
        return message

    async def action(
        self,
        name: str,
        headers: Mapping[str, HeaderValue] | None = None,
        *,
        timeout: float | None = None,
    ) -> Message:
        """Send one action and return its response; ``Response: Error`` raises."""
        result = await self._send(name, headers, timeout=timeout)
        if isinstance(result, list):  # an event list nobody asked to collect
            return result[0]  # type: ignore[no-any-return]
        return result  # type: ignore[no-any-return]

    async def action_list(
        self,
        name: str,
        headers: Mapping[str, HeaderValue] | None = None,
        *,
        timeout: float | None = None,
    ) -> list[AmiEvent]:
        """An action answered with an event list: the items, without start and Complete."""
        result = await self._send(name, headers, timeout=timeout)
        if not isinstance(result, list):
            return []  # "Response: Success" with no EventList: nothing to list
        return [
            parse_event(m)
            for m in result[1:]
            if m.event and m.get("EventList").lower() != "complete"
        ]

    async def ping(self) -> float:
        """Round trip of a Ping, in seconds."""
        start = time.perf_counter()
        await self.action("Ping")
        return time.perf_counter() - start

    async def originate(
        self,
        channel: str,
        *,
        application: str | None = None,
        data: str = "",
        context: str | None = None,
        exten: str | None = None,
        priority: int | str = 1,
        timeout: float = 30.0,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        account: str | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
    ) -> OriginateResponse:
        """Originate (always ``Async: true``) and wait for its ``OriginateResponse``.

        ``timeout`` is the ring time in seconds. Returns the response whether
        the call was answered or not (``.success``, ``.reason``); raises
        :class:`AmiTimeout` if Asterisk never reports the end,
        :class:`AmiActionError` if it refuses the action.
        """
        if (application is None) == (context is None):
            raise ValueError("originate: give either application= or context=/exten=, not both")
        headers: dict[str, HeaderValue] = {"Channel": channel}
        if application is not None:
            headers["Application"] = application
            if data:
                headers["Data"] = data
        else:
            headers.update(Context=context or "", Exten=exten or "s", Priority=str(priority))
        headers["Timeout"] = str(int(timeout * 1000))
        if caller_id:
            headers["CallerID"] = caller_id
        if account:
            headers["Account"] = account
        if channel_id:
            headers["ChannelId"] = channel_id
        if other_channel_id:
            headers["OtherChannelId"] = other_channel_id
        if variables:
            # Asterisk splits a Variable header as application arguments (commas,
            # quotes, backslashes: man_do_variable_value): escaped, a value arrives
            # whole, JSON included.
            headers["Variable"] = [f"{k}={_variable(v)}" for k, v in variables.items()]
        headers["Async"] = "true"
        result = await self._send(
            "Originate",
            headers,
            timeout=timeout + self.config.action_timeout,
        )
        if not isinstance(result, list):
            raise AmiActionError("Originate", result.get("Message") or result.response)
        event = parse_event(result[-1])
        assert isinstance(event, OriginateResponse)
        self._emit(event)  # subscribers see it too, though it answered our action
        return event

    async def spy(
        self,
        supervisor: str,
        target_channel: str,
        mode: SpyMode = "listen",
        *,
        timeout: float = 30.0,
        caller_id: str | None = None,
    ) -> OriginateResponse:
        """Ring ``supervisor`` (``PJSIP/900``) and, once answered, ChanSpy on ``target_channel``.

        ``target_channel`` is a whole channel name (``PJSIP/200-0000002a``) or
        a uniqueid; the ``u`` option makes ChanSpy match exactly that.
        """
        return await self.originate(
            supervisor,
            application="ChanSpy",
            data=f"{target_channel},{SPY_OPTIONS[mode]}",
            timeout=timeout,
            caller_id=caller_id,
        )

    async def hangup(self, channel: str, cause: int | None = None) -> None:
        headers = {"Channel": channel}
        if cause is not None:
            headers["Cause"] = str(cause)
        await self.action("Hangup", headers)

    async def getvar(self, variable: str, channel: str | None = None) -> str:
        headers = {"Variable": variable}
        if channel:
            headers["Channel"] = channel
        return (await self.action("Getvar", headers)).get("Value")

    async def setvar(self, variable: str, value: str, channel: str | None = None) -> None:
        headers = {"Variable": variable, "Value": value}
        if channel:
            headers["Channel"] = channel
        await self.action("Setvar", headers)

    async def core_show_channels(self) -> list[CoreShowChannel]:
        items = await self.action_list("CoreShowChannels")
        return [e for e in items if isinstance(e, CoreShowChannel)]

    async def device_states(self) -> dict[str, str]:
        """``{"PJSIP/200": "NOT_INUSE", ...}`` from ``DeviceStateList``."""
        items = await self.action_list("DeviceStateList")
        return {e.device: e.state for e in items if isinstance(e, DeviceStateChange)}

    async def __aenter__(self) -> AmiClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
