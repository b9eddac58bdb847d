"""The emulated Asterisk's AMI: a TCP server, its channels, endpoints and events.

:class:`AmiServer` speaks the framing of the Asterisk 22 capture
``ami-dial-session.txt`` (banner ``Asterisk Call Manager/11.0.0``, CRLF
headers, ``Response`` / ``ActionID`` / ``Message`` order) and answers the
actions the engine uses with the texts of main/manager.c: Login (a refused
login waits 1 s, answers ``Authentication failed`` and closes; action_login),
Logoff (``Goodbye`` / ``Thanks for all the fish.``), Ping, Originate (always
acknowledged ``Originate successfully queued`` when Async, then an
``OriginateResponse``), CoreShowChannels, DeviceStateList, Hangup, Getvar,
Setvar. Permissions are Asterisk's (:mod:`ivr.emulator.ami_classes`): an
event reaches only sessions whose user reads its class and whose login's
``Events`` mask includes it, FullyBooted follows the login only for a user
reading ``system``, an action whose class the user does not write is refused
(``Permission denied``, process_message), and Originate of an application
that needs ``system`` is refused as is_originate_app_permitted does. The
default user is the one ``ivr asterisk-conf render`` writes into
manager.conf (:mod:`ivr.ami.permissions`; :func:`users_from_manager_conf`
reads a rendered file). Caller names and VarSet values go out C-escaped as
Asterisk writes them (:func:`ivr.ami.escaping.escape_c`).

:class:`Pbx` holds the channels and endpoints and writes the events; the
AGI side calls it (``Dial`` in :mod:`ivr.emulator.apps`), and tests can call
it to play what Asterisk would do. Uniqueids, Local channel numbers and
bridge ids come from counters a test may set, so a test can reproduce a
capture byte for byte. A ChanSpy runs until its spyer channel hangs up (or,
with ``E``, the spied one): each Originate of ChanSpy is one more spy on the
call, and :meth:`Pbx.active_spies` lists those still listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ivr.ami.escaping import escape_c
from ivr.ami.permissions import AMI_READ, AMI_WRITE
from ivr.ami.protocol import AmiParser, Message, encode_message
from ivr.emulator.ami_classes import (
    ACTION_CLASSES,
    ALL_CLASSES,
    CLASS_BITS,
    EVENT_CLASSES,
    action_allowed,
    parse_classes,
)
from ivr.emulator.apps import split_app_args

__all__ = [
    "AmiServer",
    "AmiUser",
    "EmuChannel",
    "Endpoint",
    "Pbx",
    "SpyRecord",
    "users_from_manager_conf",
]

#: AMI actions (lower case) and events that modules outside Asterisk's core
#: provide: res/res_manager_devicestate.c registers DeviceStateList and forwards
#: the device state topic (DeviceStateChange) to the manager.
MODULE_AMI: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "res_manager_devicestate": (frozenset({"devicestatelist"}), frozenset({"DeviceStateChange"})),
}

Headers = list[tuple[str, str]]
STATE_DESC = {
    0: "Down", 1: "Rsrvd", 2: "OffHook", 3: "Dialing", 4: "Ring",
    5: "Ringing", 6: "Up", 7: "Busy", 8: "Dialing Offhook", 9: "Pre-ring",
}  # fmt: skip
CAUSE_TXT = {
    0: "Unknown", 16: "Normal Clearing", 17: "User busy", 19: "User alerting, no answer",
    20: "Subscriber absent", 21: "Call Rejected", 34: "Circuit/channel congestion",
}  # fmt: skip
#: Applications is_originate_app_permitted (main/manager.c) allows only with ``system``.
SYSTEM_APPS = (
    "agi",
    "dbdeltree",
    "exec",
    "externalivr",
    "mixmonitor",
    "originate",
    "reload",
    "system",
)
SYSTEM_DATA = ("CURL", "DB", "EVAL", "FILE", "ODBC", "REALTIME", "SHELL")
Outcome = Literal["answer", "noanswer", "busy", "unreachable"]


@dataclass(slots=True)
class AmiUser:
    """A manager.conf user; by default the engine's, as ``ivr asterisk-conf render`` writes it."""

    secret: str
    read: frozenset[str] = frozenset(AMI_READ)
    write: frozenset[str] = frozenset(AMI_WRITE)


def users_from_manager_conf(text: str) -> dict[str, AmiUser]:
    """The users of a manager.conf (``secret``, ``read``, ``write``; the last of a key wins,
    as in manager.c's __init_manager); ``[general]`` and templates are skipped."""
    users: dict[str, AmiUser] = {}
    current: AmiUser | None = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            name, _, rest = line[1:].partition("]")
            current = None
            if name != "general" and "!" not in rest:
                current = users[name] = AmiUser("", frozenset(), frozenset())
            continue
        key, _, value = line.partition("=")
        key, value = key.strip().lower(), value.lstrip(">").strip()
        if current is None:
            continue
        if key == "secret":
            current.secret = value
        elif key in ("read", "write"):
            setattr(current, key, parse_classes(value))
    return users


@dataclass(slots=True)
class EmuChannel:
    name: str
    uniqueid: str
    linkedid: str
    context: str = ""
    exten: str = ""
    priority: int = 1
    state: int = 0
    cid_num: str = "<unknown>"
    cid_name: str = "<unknown>"
    conn_num: str = "<unknown>"
    conn_name: str = "<unknown>"
    language: str = "en"
    accountcode: str = ""
    app: str = ""
    appdata: str = ""
    bridge: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)
    hungup: asyncio.Event = field(default_factory=asyncio.Event)

    def block(self, prefix: str = "") -> Headers:
        """The channel as ``ast_manager_build_channel_state_string_prefix`` writes it: the
        names C-escaped (``ast_escape_c_alloc``), empty values as ``<unknown>`` (S_OR)."""
        return [
            (prefix + "Channel", self.name),
            (prefix + "ChannelState", str(self.state)),
            (prefix + "ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            (prefix + "CallerIDNum", self.cid_num or "<unknown>"),
            (prefix + "CallerIDName", escape_c(self.cid_name) or "<unknown>"),
            (prefix + "ConnectedLineNum", self.conn_num or "<unknown>"),
            (prefix + "ConnectedLineName", escape_c(self.conn_name) or "<unknown>"),
            (prefix + "Language", self.language),
            (prefix + "AccountCode", self.accountcode),
            (prefix + "Context", self.context),
            (prefix + "Exten", self.exten),
            (prefix + "Priority", str(self.priority)),
            (prefix + "Uniqueid", self.uniqueid),
            (prefix + "Linkedid", self.linkedid),
        ]


@dataclass(slots=True)
class Endpoint:
    """An emulated phone: what it does when rung, and whether it is registered."""

    name: str  # PJSIP/200
    outcome: Outcome = "answer"
    ring: float = 0.05
    talk: float | None = None  # None: stays up until hung up
    registered: bool = True
    in_use: int = 0


@dataclass(frozen=True, slots=True)
class SpyRecord:
    """A ChanSpy a supervisor ran: who, on which channel, with which options."""

    spyer: str
    target: str
    options: str
    spied: str  # the channel actually spied ("" when none matched)
    spyer_uniqueid: str = ""


_STATUS: dict[Outcome, str] = {
    "answer": "ANSWER",
    "noanswer": "NOANSWER",
    "busy": "BUSY",
    "unreachable": "CHANUNAVAIL",
}


def _dial_status(ep: Endpoint | None) -> str:
    """The DIALSTATUS ringing ``ep`` ends with (an unknown endpoint answers)."""
    if ep is None:
        return "ANSWER"
    return _STATUS["unreachable" if not ep.registered else ep.outcome]


class Pbx:
    """Channels, bridges, endpoints and the events they produce."""

    def __init__(self, *, epoch: int | None = None, first_id: int = 0) -> None:
        self.channels: dict[str, EmuChannel] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.global_vars: dict[str, str] = {}
        #: Every ChanSpy run, in order (ended ones too).
        self.spies: list[SpyRecord] = []
        #: Every originated channel that came up, with the variables it got.
        self.originated: list[tuple[str, dict[str, str]]] = []
        #: The ChanSpys still running, by spyer channel name.
        self.spying: dict[str, SpyRecord] = {}
        self.extensions: dict[tuple[str, str], Callable[[EmuChannel], Awaitable[None]]] = {}
        self.listeners: list[Callable[[str, str, Headers], None]] = []
        #: Originate of these channel names runs the given script instead
        #: (a test playing what a real dialplan would do).
        self.originate_scripts: dict[str, Callable[[str, Message], Awaitable[None]]] = {}
        self.epoch = int(time.time()) if epoch is None else epoch
        self._ids = itertools.count(first_id)
        self._local = itertools.count(1)
        self._serial = itertools.count(1)
        self.bridge_ids: Iterator[str] = (str(uuid.uuid4()) for _ in itertools.count())

    # ------------------------------------------------------------- plumbing

    def emit(self, event: str, category: str, headers: Headers) -> None:
        """Send ``event`` to every listener; ``category`` must be the class Asterisk
        raises it under (:data:`ami_classes.EVENT_CLASSES`), so no call site can
        deliver an event to users who would not get it from Asterisk."""
        expected = EVENT_CLASSES.get(event)
        if expected is None or expected != category:
            raise ValueError(
                f"emulated AMI event {event} sent as class {category!r}; Asterisk's is "
                f"{expected!r} (add it to ivr/emulator/ami_classes.py from Asterisk's source)"
            )
        for listener in list(self.listeners):
            listener(event, category, headers)

    def event(self, event: str, headers: Headers) -> None:
        """Send ``event`` under its class."""
        self.emit(event, EVENT_CLASSES[event], headers)

    def next_uniqueid(self) -> str:
        return f"{self.epoch}.{next(self._ids)}"

    def new_channel(
        self,
        name: str,
        *,
        context: str = "default",
        exten: str = "s",
        priority: int = 1,
        state: int = 0,
        uniqueid: str | None = None,
        linkedid: str | None = None,
        cid_num: str = "<unknown>",
        cid_name: str = "<unknown>",
        emit: bool = True,
    ) -> EmuChannel:
        uid = uniqueid or self.next_uniqueid()
        chan = EmuChannel(
            name, uid, linkedid or uid, context, exten, priority, state, cid_num, cid_name
        )
        self.channels[name] = chan
        if emit:
            self.event("Newchannel", chan.block())
        return chan

    def endpoint_channel(self, endpoint: str, **kw: object) -> EmuChannel:
        """``PJSIP/200`` -> a new ``PJSIP/200-0000002a`` channel."""
        return self.new_channel(f"{endpoint}-{next(self._serial):08x}", **kw)  # type: ignore[arg-type]

    def find(self, name_or_uid: str) -> EmuChannel | None:
        chan = self.channels.get(name_or_uid)
        if chan is None:
            chan = next((c for c in self.channels.values() if c.uniqueid == name_or_uid), None)
        return chan

    # --------------------------------------------------------------- events

    def newstate(self, chan: EmuChannel, state: int) -> None:
        chan.state = state
        self.event("Newstate", chan.block())

    def newexten(self, chan: EmuChannel, app: str, data: str = "") -> None:
        chan.app, chan.appdata = app, data
        self.event(
            "Newexten",
            [*chan.block(), ("Extension", chan.exten), ("Application", app), ("AppData", data)],
        )

    def varset(self, chan: EmuChannel | None, name: str, value: str) -> None:
        """Set a variable (``chan`` None: a global) and raise VarSet with the value
        C-escaped, as varset_to_ami (main/stasis_channels.c) writes it."""
        values = self.global_vars if chan is None else chan.variables
        values[name] = value
        head = chan.block() if chan else [("Channel", "none"), ("Uniqueid", "none")]
        self.event("VarSet", [*head, ("Variable", name), ("Value", escape_c(value))])

    def dtmf(self, chan: EmuChannel, digit: str, *, direction: str = "Received") -> None:
        """A key on ``chan``: DTMFBegin and DTMFEnd (class dtmf, main/manager_channels.c)."""
        self.event("DTMFBegin", [*chan.block(), ("Digit", digit), ("Direction", direction)])
        self.event(
            "DTMFEnd",
            [*chan.block(), ("Digit", digit), ("DurationMs", "100"), ("Direction", direction)],
        )

    def device_state(self, device: str, state: str) -> None:
        self.event("DeviceStateChange", [("Device", device), ("State", state)])

    def dial_begin(self, caller: EmuChannel | None, dest: EmuChannel, dialstring: str) -> None:
        head = caller.block() if caller else []
        self.event("DialBegin", [*head, *dest.block("Dest"), ("DialString", dialstring)])

    def dial_end(self, caller: EmuChannel | None, dest: EmuChannel, status: str) -> None:
        head = caller.block() if caller else []
        self.event("DialEnd", [*head, *dest.block("Dest"), ("DialStatus", status)])

    def _bridge_block(self, bridge: str, count: int) -> Headers:
        return [
            ("BridgeUniqueid", bridge), ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge"), ("BridgeCreator", "<unknown>"),
            ("BridgeName", "<unknown>"), ("BridgeNumChannels", str(count)),
            ("BridgeVideoSourceMode", "none"),
        ]  # fmt: skip

    def bridge(self, *chans: EmuChannel) -> str:
        bridge = next(self.bridge_ids)
        self.event("BridgeCreate", self._bridge_block(bridge, 0))
        for count, chan in enumerate(chans, start=1):
            chan.bridge = bridge
            self.event("BridgeEnter", [*self._bridge_block(bridge, count), *chan.block()])
        return bridge

    def unbridge(self, chan: EmuChannel) -> None:
        bridge = chan.bridge
        if not bridge:
            return
        chan.bridge = ""
        left = sum(1 for c in self.channels.values() if c.bridge == bridge)
        self.event("BridgeLeave", [*self._bridge_block(bridge, left), *chan.block()])
        if left == 0:
            self.event("BridgeDestroy", self._bridge_block(bridge, 0))

    def hangup(self, chan: EmuChannel, cause: int = 16) -> None:
        if chan.name not in self.channels:
            return
        self.unbridge(chan)
        del self.channels[chan.name]
        self.event(
            "Hangup",
            [*chan.block(), ("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, "Unknown"))],
        )
        chan.hungup.set()

    def originate_response(
        self,
        action_id: str,
        *,
        ok: bool,
        chan: EmuChannel | None,
        name: str,
        where: Headers,
        reason: int,
        caller_id: tuple[str, str] | None = None,
    ) -> None:
        """fast_originate's event (main/manager.c): its CallerIDNum / CallerIDName are the
        Originate's ``CallerID`` (``caller_id``: number, name), written without escaping;
        without one given, the channel's."""
        head = [("ActionID", action_id)] if action_id else []
        if caller_id is None:
            caller_id = (chan.cid_num, chan.cid_name) if chan else ("", "")
        self.event(
            "OriginateResponse",
            [
                *head,
                ("Response", "Success" if ok else "Failure"),
                ("Channel", chan.name if chan else name),
                *where,
                ("Reason", str(reason)),
                ("Uniqueid", chan.uniqueid if chan else "<unknown>"),
                ("CallerIDNum", caller_id[0] or "<unknown>"),
                ("CallerIDName", caller_id[1] or "<unknown>"),
            ],
        )

    # ------------------------------------------------------------ endpoints

    def add_endpoint(self, name: str, **kw: object) -> Endpoint:
        ep = Endpoint(name, **kw)  # type: ignore[arg-type]
        self.endpoints[name] = ep
        return ep

    def device_state_of(self, ep: Endpoint) -> str:
        if not ep.registered:
            return "UNAVAILABLE"
        return "INUSE" if ep.in_use else "NOT_INUSE"

    def set_registered(self, name: str, registered: bool) -> None:
        """A phone registers or stops answering: ContactStatus, PeerStatus, DeviceStateChange."""
        ep = self.endpoints.get(name) or self.add_endpoint(name)
        ep.registered = registered
        resource = name.partition("/")[2]
        status = "Reachable" if registered else "Unreachable"
        self.event(
            "ContactStatus",
            [
                ("URI", f"sip:{resource}@127.0.0.1:5060"), ("ContactStatus", status),
                ("AOR", resource), ("EndpointName", resource),
                ("RoundtripUsec", "1500" if registered else "0"),
            ],
        )  # fmt: skip
        self.event(
            "PeerStatus",
            [("ChannelType", "PJSIP"), ("Peer", name), ("PeerStatus", status)],
        )
        self.device_state(name, self.device_state_of(ep))

    def _use(self, name: str, delta: int) -> None:
        ep = self.endpoints.get(name)
        if ep is not None:
            ep.in_use = max(0, ep.in_use + delta)
            self.device_state(name, self.device_state_of(ep))

    # ----------------------------------------------------------------- dial

    async def dial_endpoint(
        self,
        caller: EmuChannel | None,
        endpoint: str,
        status: str,
        ring: float,
        *,
        dialstring: str | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        presented: str | None = None,
    ) -> EmuChannel | None:
        """Ring ``endpoint`` for ``caller``; return the answered channel (bridged), or None.

        ``status`` is the DIALSTATUS the attempt ends with; ``presented`` the caller ID
        Dial's ``f(x)`` option forces towards the called party.
        """
        if self.unreachable(endpoint):
            status = "CHANUNAVAIL"
        dest = self.begin_dial(
            caller, endpoint, dialstring, ringing=status != "CHANUNAVAIL", presented=presented
        )
        if status != "CHANUNAVAIL":
            await sleep(ring)
        if caller is not None and caller.name not in self.channels:
            status = "CANCEL"
        return self.finish_dial(caller, dest, status)

    def unreachable(self, endpoint: str) -> bool:
        ep = self.endpoints.get(endpoint)
        return ep is not None and not ep.registered

    def begin_dial(
        self,
        caller: EmuChannel | None,
        endpoint: str,
        dialstring: str | None = None,
        *,
        ringing: bool = True,
        presented: str | None = None,
    ) -> EmuChannel:
        """The outgoing leg appears and rings: Newchannel, DialBegin, Newstate, RINGING.
        The called party is shown the caller's ID, or ``presented`` (Dial's ``f(x)``)."""
        link = caller.linkedid if caller else None
        dest = self.endpoint_channel(endpoint, context="from-internal", exten="s", linkedid=link)
        if caller is not None:
            dest.conn_num, dest.conn_name = caller.cid_num, caller.cid_name
        if presented is not None:
            dest.conn_num, dest.conn_name = presented, "<unknown>"
        self.dial_begin(caller, dest, dialstring or endpoint.partition("/")[2])
        if ringing:
            self.newstate(dest, 5)
            self._ring(endpoint)
        return dest

    def finish_dial(
        self, caller: EmuChannel | None, dest: EmuChannel, status: str
    ) -> EmuChannel | None:
        """DialEnd with ``status``; an answered leg is bridged with the caller and returned."""
        endpoint = dest.name.rpartition("-")[0]
        if status != "ANSWER":
            self.dial_end(caller, dest, status)
            self.hangup(dest, {"BUSY": 17, "CONGESTION": 34, "CHANUNAVAIL": 20}.get(status, 0))
            self._use(endpoint, 0)
            return None
        self.newstate(dest, 6)
        self.dial_end(caller, dest, "ANSWER")
        self._use(endpoint, +1)
        if caller is not None:
            self.bridge(dest, caller)
        return dest

    def agi_channel(self, env: Mapping[str, str]) -> EmuChannel:
        """The channel of an emulated AGI call (from its environment block)."""
        name = env.get("agi_channel", "")
        chan = self.channels.get(name)
        if chan is None:
            cid = env.get("agi_callerid", "unknown")
            cid_name = env.get("agi_calleridname", "unknown")
            chan = self.new_channel(
                name,
                context=env.get("agi_context", "default"),
                exten=env.get("agi_extension", "s"),
                priority=int(env.get("agi_priority", "1") or 1),
                state=4,
                uniqueid=env.get("agi_uniqueid") or None,
                cid_num="<unknown>" if cid == "unknown" else cid,
                cid_name="" if cid_name == "unknown" else cid_name,  # res_agi: "unknown" for none
            )
            chan.app, chan.appdata = "AGI", env.get("agi_request", "")
        return chan

    def _ring(self, endpoint: str) -> None:
        if endpoint in self.endpoints:
            self.device_state(endpoint, "RINGING")

    def end_call(self, chan: EmuChannel, cause: int = 16) -> None:
        """Hang ``chan`` up; an endpoint it used becomes free."""
        if chan.name in self.channels:
            self.hangup(chan, cause)
            endpoint = chan.name.rpartition("-")[0]
            if endpoint in self.endpoints:
                self._use(endpoint, -1)

    # ------------------------------------------------------------ originate

    async def originate(
        self, action_id: str, headers: Message, sleep: Callable[[float], Awaitable[object]]
    ) -> None:
        """Run an Async Originate to its end (fast_originate, main/manager.c)."""
        name = headers.get("Channel")
        script = self.originate_scripts.get(name)
        if script is not None:
            await script(action_id, headers)
            return
        endpoint = name
        ep = self.endpoints.get(endpoint)
        app = headers.get("Application")
        where: Headers = (
            [("Application", app), ("Data", headers.get("Data"))]
            if app
            else [("Context", headers.get("Context")), ("Exten", headers.get("Exten"))]
        )
        status = _dial_status(ep)
        timeout = int(headers.get("Timeout") or 30000) / 1000
        ring = min(ep.ring if ep else 0.0, timeout)
        cid = _callerid_parse(headers.get("CallerID"))
        chan = await self.dial_endpoint(None, endpoint, status, ring)
        if chan is None:
            reason = {"NOANSWER": 3, "BUSY": 5, "CHANUNAVAIL": 0}.get(status, 0)
            self.originate_response(
                action_id, ok=False, chan=None, name=name, where=where, reason=reason, caller_id=cid
            )
            return
        if any(cid):
            chan.cid_num, chan.cid_name = cid
        for header in headers.get_all("Variable"):
            # man_do_variable_value (main/manager.c): the value is split as
            # application arguments (commas separate, quotes and backslashes go),
            # then each item at its first '='; items without one are dropped.
            for item in split_app_args(header.lstrip()):
                key, sep, value = item.partition("=")
                if sep and key:
                    chan.variables[key] = value
        self.originated.append((name, dict(chan.variables)))
        self.originate_response(
            action_id, ok=True, chan=chan, name=name, where=where, reason=4, caller_id=cid
        )
        if app:
            chan.context, chan.exten, chan.priority = "", "", 1
            self.newexten(chan, app, headers.get("Data"))
            if app.lower() == "chanspy":
                await self._chanspy(chan, headers.get("Data"))
            elif app.lower() == "dial":
                await self._dial_app(chan, headers.get("Data"), sleep)
        else:
            chan.context, chan.exten = headers.get("Context"), headers.get("Exten")
            chan.priority = int(headers.get("Priority") or 1)
            handler = self.extensions.get((chan.context, chan.exten)) or self.extensions.get(
                (chan.context, "_X.")
            )
            if handler is not None:
                await handler(chan)
        if ep is not None and ep.talk is not None:
            await sleep(ep.talk)
            self.end_call(chan)

    async def _dial_app(
        self, caller: EmuChannel, data: str, sleep: Callable[[float], Awaitable[object]]
    ) -> None:
        """Dial from an originated channel (a callback: the agent, then the customer)."""
        target, _, rest = data.partition(",")
        raw_timeout, _, options = rest.partition(",")
        timeout = float(raw_timeout or 60)
        forced = re.search(r"f\(([^)]*)\)", options)
        ep = self.endpoints.get(target)
        status = _dial_status(ep)
        ring = min(ep.ring if ep else 0.0, timeout)
        dest = await self.dial_endpoint(
            caller, target, status, ring, sleep=sleep, presented=forced.group(1) if forced else None
        )
        if dest is not None:
            await sleep(ep.talk if ep is not None and ep.talk is not None else 0.1)
            self.end_call(dest)
        self.end_call(caller)  # Dial returns, the originated channel's dialplan ends

    async def _chanspy(self, spyer: EmuChannel, data: str) -> None:
        target, _, options = data.partition(",")
        if "u" in options:
            spied = self.find(target)
        else:  # a bare prefix: the first channel whose name starts with it (app_chanspy.c)
            spied = next(
                (c for n, c in self.channels.items() if n.startswith(target) and c is not spyer),
                None,
            )
        record = SpyRecord(spyer.name, target, options, spied.name if spied else "", spyer.uniqueid)
        self.spies.append(record)
        if spied is None:
            self.end_call(spyer)
            return
        self.spying[spyer.name] = record
        self.event("ChanSpyStart", [*spyer.block("Spyer"), *spied.block("Spyee")])
        waits = {asyncio.ensure_future(spyer.hungup.wait())}
        if "E" in options:
            waits.add(asyncio.ensure_future(spied.hungup.wait()))
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        del self.spying[spyer.name]
        stop = [*spyer.block("Spyer")]
        if spied.name in self.channels:
            stop += spied.block("Spyee")
        self.event("ChanSpyStop", stop)
        self.end_call(spyer)

    def active_spies(self, channel: str | None = None) -> list[SpyRecord]:
        """The ChanSpys still running (on ``channel``, a name, when given)."""
        return [s for s in self.spying.values() if channel is None or s.spied == channel]


_TRUE = ("yes", "true", "y", "t", "1", "on")
_FALSE = ("no", "false", "n", "f", "0", "off")


def _event_mask(text: str) -> frozenset[str] | None:
    """An ``Events`` / ``EventMask`` value as strings_to_mask reads it (main/manager.c):
    empty is None (set_eventmask keeps the mask), a number is a bit mask, ast_false
    none, ast_true all, otherwise a list of classes."""
    if not text:
        return None
    if text.isdigit():
        bits = int(text)
        return frozenset(name for name, bit in CLASS_BITS.items() if bits & bit)
    if text.strip().lower() in _FALSE:
        return frozenset()
    if text.strip().lower() in _TRUE:
        return frozenset(ALL_CLASSES)
    return parse_classes(text)


def _callerid_parse(text: str) -> tuple[str, str]:
    """(number, name) of an Originate's ``CallerID`` (ast_callerid_parse, main/callerid.c):
    ``"Name" <number>``, ``Name <number>``, a bare number, or a bare name."""
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].rpartition("<")
        name = name.strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1]
        return number.strip(), name
    if text and all(c in "0123456789*#+-() " for c in text):
        return text, ""
    return "", text


class _Session:
    """One AMI connection."""

    def __init__(
        self, server: AmiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.user: AmiUser | None = None
        self.username = ""
        #: The login's ``Events`` mask (set_eventmask): the classes it wants sent.
        self.events: frozenset[str] = frozenset(ALL_CLASSES)
        #: Every action the client sent, as parsed.
        self.received: list[Message] = []

    def send(self, headers: Iterable[tuple[str, str]]) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode_message(list(headers)))

    def respond(
        self, action: Message, response: str, message: str | None = None, **extra: str
    ) -> None:
        head = [("Response", response)]
        if action.action_id:
            head.append(("ActionID", action.action_id))
        head += list(extra.items())
        if message is not None:
            head.append(("Message", message))
        self.send(head)

    def reads(self, category: str) -> bool:
        """process_events: the user reads the class and the login's mask wants it."""
        if self.user is None or category not in self.events:
            return False
        return category in self.user.read or "all" in self.user.read

    def deliver(self, event: str, category: str, headers: Headers) -> None:
        if self.reads(category):
            self.send([("Event", event), ("Privilege", f"{category},all"), *headers])

    async def run(self) -> None:
        self.writer.write(f"Asterisk Call Manager/{self.server.version}\r\n".encode())
        parser = AmiParser(expect_banner=False)
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return
                for action in parser.feed(data):
                    self.received.append(action)
                    if not await self.handle(action):
                        await self.writer.drain()
                        return
                await self.writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            self.writer.close()

    async def handle(self, action: Message) -> bool:
        name = action.get("Action")
        key = name.lower()
        if not name:
            self.respond(action, "Error", "Missing action in request")
            return True
        if self.user is None and key not in ("login", "logoff", "challenge"):
            self.respond(action, "Error", "Permission denied")
            return True
        if key == "login":
            return await self.login(action)
        if key == "logoff":
            self.respond(action, "Goodbye", "Thanks for all the fish.")
            return False
        if key not in ACTION_CLASSES or not self.server.has_action(key):
            self.respond(
                action, "Error",
                f"Invalid/unknown command: {name}. "
                "Use Action: ListCommands to show available commands.",
            )  # fmt: skip
            return True
        assert self.user is not None
        if not action_allowed(self.user.write, key):
            self.respond(action, "Error", "Permission denied")
            return True
        handler = getattr(self, f"act_{key}", None)
        if handler is None:
            self.respond(action, "Error", f"the emulated AMI does not implement {name}")
            return True
        handler(action)
        return True

    async def login(self, action: Message) -> bool:
        if self.user is not None:
            self.respond(action, "Success", "Already authenticated")
            return True
        username = action.get("Username")
        user = self.server.users.get(username)
        if user is None or user.secret != action.get("Secret"):
            await asyncio.sleep(self.server.login_failure_delay)  # action_login: sleep(1)
            self.respond(action, "Error", "Authentication failed")
            return False
        self.user, self.username = user, username
        mask = _event_mask(action.get("Events"))
        if mask is not None:  # set_eventmask: an empty header keeps every class
            self.events = mask
        self.respond(action, "Success", "Authentication accepted")
        if self.reads("system"):
            up = str(int(time.monotonic() - self.server.started))
            self.send(
                [("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", up),
                 ("LastReload", up), ("Status", "Fully Booted")]
            )  # fmt: skip
        self.server.successful_auth(self, username)
        return True

    # ----------------------------------------------------------- actions

    def act_events(self, action: Message) -> None:
        """action_events: a new mask; ``Events: On`` / ``Off`` (an empty mask is an error)."""
        mask = _event_mask(action.get("EventMask"))
        if mask is None:
            self.respond(action, "Error", "Invalid event mask")
            return
        self.events = mask
        self.respond(action, "Success", None, Events="On" if mask else "Off")

    def act_ping(self, action: Message) -> None:
        now = time.time()
        self.respond(
            action, "Success", None, Ping="Pong", Timestamp=f"{int(now)}.{int(now % 1 * 1e6):06d}"
        )

    def _list(self, action: Message, what: str, complete: str, items: list[Headers]) -> None:
        self.respond(action, "Success", what, EventList="start")
        head = [("ActionID", action.action_id)] if action.action_id else []
        for item in items:
            self.send([*item[:1], *head, *item[1:]])
        self.send(
            [("Event", complete), *head, ("EventList", "Complete"), ("ListItems", str(len(items)))]
        )

    def act_coreshowchannels(self, action: Message) -> None:
        items: list[Headers] = []
        for chan in self.server.pbx.channels.values():
            secs = int(time.monotonic() - chan.created)
            items.append(
                [("Event", "CoreShowChannel"), *chan.block(), ("Application", chan.app),
                 ("ApplicationData", chan.appdata),
                 ("Duration", f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"),
                 ("BridgeId", chan.bridge)]
            )  # fmt: skip
        self._list(action, "Channels will follow", "CoreShowChannelsComplete", items)

    def act_devicestatelist(self, action: Message) -> None:
        pbx = self.server.pbx
        items: list[Headers] = [
            [
                ("Event", "DeviceStateChange"),
                ("Device", ep.name),
                ("State", pbx.device_state_of(ep)),
            ]
            for ep in pbx.endpoints.values()
        ]
        self._list(action, "Device State Changes will follow", "DeviceStateListComplete", items)

    def act_hangup(self, action: Message) -> None:
        chan = self.server.pbx.find(action.get("Channel"))
        if chan is None:
            self.respond(action, "Error", "No such channel")
            return
        cause = action.get("Cause")
        self.server.pbx.end_call(chan, int(cause) if cause.isdigit() else 16)
        self.respond(action, "Success", "Channel Hungup")

    def act_getvar(self, action: Message) -> None:
        variable = action.get("Variable")
        if not variable:
            self.respond(action, "Error", "No variable specified")
            return
        name = action.get("Channel")
        values = self.server.pbx.global_vars
        if name:
            chan = self.server.pbx.find(name)
            if chan is None:
                self.respond(action, "Error", "No such channel")
                return
            values = chan.variables
        self.respond(action, "Success", None, Variable=variable, Value=values.get(variable, ""))

    def act_setvar(self, action: Message) -> None:
        variable = action.get("Variable")
        if not variable:
            self.respond(action, "Error", "No variable specified")
            return
        name = action.get("Channel")
        chan = self.server.pbx.find(name) if name else None
        if name and chan is None:
            self.respond(action, "Error", "No such channel")
            return
        if chan is not None:
            self.server.pbx.varset(chan, variable, action.get("Value"))
        else:
            self.server.pbx.global_vars[variable] = action.get("Value")
        self.respond(action, "Success", "Variable Set")

    def act_originate(self, action: Message) -> None:
        assert self.user is not None
        name, app, data = action.get("Channel"), action.get("Application"), action.get("Data")
        if not name:
            self.respond(action, "Error", "Channel not specified")
            return
        if "/" not in name:
            self.respond(action, "Error", "Invalid channel")
            return
        needs_system = any(s in app.lower() for s in SYSTEM_APPS) or any(
            s in data for s in SYSTEM_DATA
        )
        if app and needs_system and "system" not in self.user.write:
            self.respond(action, "Error", "Originate Access Forbidden: app or data blacklisted")
            return
        if not app and not (
            action.get("Context") and action.get("Exten") and action.get("Priority")
        ):
            self.respond(
                action, "Error", "Originate with 'Exten' requires 'Context' and 'Priority'"
            )
            return
        if action.get("Async").lower() not in ("true", "yes", "1", "on", "y", "t"):
            self.respond(
                action, "Error", "the emulator only runs Async Originate (send Async: true)"
            )
            return
        self.respond(action, "Success", "Originate successfully queued")
        self.server.spawn(self.server.pbx.originate(action.action_id, action, self.server.sleep))


class AmiServer:
    """The emulated AMI on ``host:port`` (port 0: any free port)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        users: Mapping[str, AmiUser] | None = None,
        pbx: Pbx | None = None,
        version: str = "11.0.0",
        login_failure_delay: float = 1.0,
        speed: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.port = port
        self.users = dict(users or {"ivr": AmiUser("ivr-secret")})
        self.pbx = pbx or Pbx()
        self.version = version
        self.login_failure_delay = login_failure_delay
        self.speed = speed
        self.sessions: list[_Session] = []
        self.started = time.monotonic()
        #: Wall clock for EventTV / SessionTV (a test may pin it).
        self.clock = clock
        self._session_ids = itertools.count(0x7FC9BC001AD0, 0x40)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self.pbx.listeners.append(self._broadcast)
        #: Modules not loaded (``autoload=no`` without them): their actions are
        #: unknown commands and the events they forward never reach the AMI.
        self.unloaded: set[str] = set()

    def unload(self, module: str) -> None:
        """Play an Asterisk without ``module`` (one of :data:`MODULE_AMI`)."""
        if module not in MODULE_AMI:
            raise ValueError(f"unknown module {module!r}; known: {', '.join(sorted(MODULE_AMI))}")
        self.unloaded.add(module)

    def has_action(self, key: str) -> bool:
        return not any(key in MODULE_AMI[m][0] for m in self.unloaded)

    def forwards(self, event: str) -> bool:
        return not any(event in MODULE_AMI[m][1] for m in self.unloaded)

    def successful_auth(self, session: _Session, username: str) -> None:
        """The security event Asterisk raises on each login (res_security_log / manager.c)."""
        tv = self.clock()
        stamp = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(tv)) + f".{int(tv % 1 * 1000):03d}+0000"
        )
        local = session.writer.get_extra_info("sockname") or ("127.0.0.1", self.port)
        remote = session.writer.get_extra_info("peername") or ("127.0.0.1", 0)
        session.deliver(
            "SuccessfulAuth",
            "security",
            [
                ("EventTV", stamp), ("Severity", "Informational"), ("Service", "AMI"),
                ("EventVersion", "1"), ("AccountID", username),
                ("SessionID", hex(next(self._session_ids))),
                ("LocalAddress", f"IPV4/TCP/{local[0]}/{local[1]}"),
                ("RemoteAddress", f"IPV4/TCP/{remote[0]}/{remote[1]}"),
                ("UsingPassword", "0"), ("SessionTV", stamp),
            ],
        )  # fmt: skip

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed if self.speed else min(seconds, 0.01))

    def spawn(self, coro: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _broadcast(self, event: str, category: str, headers: Headers) -> None:
        if not self.forwards(event):
            return
        for session in self.sessions:
            session.deliver(event, category, headers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self, reader, writer)
        self.sessions.append(session)
        try:
            await session.run()
        finally:
            self.sessions.remove(session)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def drop_connections(self) -> None:
        """Close every AMI connection from the server side (Asterisk restarting, a network cut)."""
        for session in list(self.sessions):
            session.writer.close()
        await asyncio.sleep(0)

    async def stop(self) -> None:
        """Stop listening and drop every connection (calls in the PBX stay)."""
        if self._server is not None:
            self._server.close()
            await self.drop_connections()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def restart(self, *, down_for: float = 0.0) -> None:
        """Stop, wait ``down_for`` seconds, listen again on the same port."""
        await self.stop()
        await asyncio.sleep(down_for)
        await self.start()

    async def close(self) -> None:
        await self.stop()
        for task in list(self._tasks):
            task.cancel()

    @property
    def actions(self) -> list[Message]:
        return [a for s in self.sessions for a in s.received]
