"""AMI events as typed, immutable records.

:func:`parse_event` maps a :class:`~ivr.ami.protocol.Message` to the record of
its ``Event`` name; unknown events become a plain :class:`AmiEvent`. Every
record keeps the message it came from (``raw``) for headers not modelled.
The channel fields are those of ``ast_manager_build_channel_state_string_prefix``
(main/manager_channels.c), read with a prefix (``Dest``, ``Spyer``, ``Spyee``).
The fields Asterisk C-escapes (``CallerIDName``, ``ConnectedLineName``,
``ChanVariable`` values, ``VarSet``'s ``Value``; :mod:`ivr.ami.escaping`) are
unescaped here, so a record holds what was set; ``raw`` keeps the wire text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ivr.ami.escaping import unescape_c
from ivr.ami.protocol import Message

__all__ = [
    "AmiEvent",
    "BridgeEnter",
    "BridgeLeave",
    "ChanSpyStart",
    "ChanSpyStop",
    "ChannelSnapshot",
    "ContactStatus",
    "CoreShowChannel",
    "DeviceStateChange",
    "DialBegin",
    "DialEnd",
    "FullyBooted",
    "Hangup",
    "Newchannel",
    "Newstate",
    "OriginateResponse",
    "PeerStatus",
    "VarSet",
    "parse_event",
]


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """A channel as an event shows it."""

    channel: str
    state: int = 0
    state_desc: str = ""
    caller_id_num: str = ""
    caller_id_name: str = ""
    connected_line_num: str = ""
    connected_line_name: str = ""
    language: str = ""
    account_code: str = ""
    context: str = ""
    exten: str = ""
    priority: int = 0
    uniqueid: str = ""
    linkedid: str = ""
    #: ``ChanVariable`` headers (manager.conf ``channelvars``): (name, value), in order.
    variables: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_message(cls, message: Message, prefix: str = "") -> ChannelSnapshot | None:
        """The snapshot under ``prefix`` (``""``, ``Dest``, ``Spyee`` ...), or ``None``."""
        name = message.get(prefix + "Channel", "\0")
        if name == "\0":
            return None

        def get(key: str) -> str:
            return message.get(prefix + key)

        pairs = (v.partition("=") for v in message.get_all(prefix + "ChanVariable"))
        variables = tuple((var, unescape_c(value)) for var, _, value in pairs)
        return cls(
            channel=name,
            state=_int(get("ChannelState")),
            state_desc=get("ChannelStateDesc"),
            caller_id_num=get("CallerIDNum"),
            caller_id_name=unescape_c(get("CallerIDName")),
            connected_line_num=get("ConnectedLineNum"),
            connected_line_name=unescape_c(get("ConnectedLineName")),
            language=get("Language"),
            account_code=get("AccountCode"),
            context=get("Context"),
            exten=get("Exten"),
            priority=_int(get("Priority")),
            uniqueid=get("Uniqueid"),
            linkedid=get("Linkedid"),
            variables=variables,
        )

    def variable(self, name: str, default: str = "") -> str:
        """A ``ChanVariable`` value (unescaped), or ``default``."""
        return next((value for var, value in self.variables if var == name), default)

    @property
    def endpoint(self) -> str:
        """``PJSIP/200`` for ``PJSIP/200-0000002a``; ``Local/x@ctx`` for a Local half."""
        base = self.channel.rpartition(";")[0] if ";" in self.channel else self.channel
        head, sep, tail = base.rpartition("-")
        return head if sep and tail and all(c in "0123456789abcdef" for c in tail) else base


_EMPTY = ChannelSnapshot(channel="")


@dataclass(frozen=True, slots=True)
class AmiEvent:
    """Any AMI event; the typed records below add the fields the engine uses."""

    name: str
    raw: Message = field(repr=False, compare=False)

    def get(self, header: str, default: str = "") -> str:
        return self.raw.get(header, default)


@dataclass(frozen=True, slots=True)
class Newchannel(AmiEvent):
    channel: ChannelSnapshot = _EMPTY


@dataclass(frozen=True, slots=True)
class Newstate(AmiEvent):
    channel: ChannelSnapshot = _EMPTY


@dataclass(frozen=True, slots=True)
class Hangup(AmiEvent):
    channel: ChannelSnapshot = _EMPTY
    cause: int = 0
    cause_txt: str = ""


@dataclass(frozen=True, slots=True)
class DialBegin(AmiEvent):
    """``caller`` is ``None`` when Asterisk dials with no calling channel (Originate)."""

    caller: ChannelSnapshot | None = None
    dest: ChannelSnapshot = _EMPTY
    dial_string: str = ""


@dataclass(frozen=True, slots=True)
class DialEnd(AmiEvent):
    caller: ChannelSnapshot | None = None
    dest: ChannelSnapshot = _EMPTY
    dial_status: str = ""
    forward: str = ""


@dataclass(frozen=True, slots=True)
class BridgeEnter(AmiEvent):
    bridge_uniqueid: str = ""
    bridge_type: str = ""
    bridge_num_channels: int = 0
    channel: ChannelSnapshot = _EMPTY


@dataclass(frozen=True, slots=True)
class BridgeLeave(AmiEvent):
    bridge_uniqueid: str = ""
    bridge_type: str = ""
    bridge_num_channels: int = 0
    channel: ChannelSnapshot = _EMPTY


#: OriginateResponse ``Reason``: the last control frame seen (PROTOCOL.md section 3).
ORIGINATE_REASONS = {
    0: "failed",
    1: "hangup",
    3: "ringing",
    4: "answered",
    5: "busy",
    8: "congestion",
}


@dataclass(frozen=True, slots=True)
class OriginateResponse(AmiEvent):
    """The end of an ``Async`` Originate; ``reason`` 4 is answered (see REASONS)."""

    action_id: str = ""
    response: str = ""
    channel: str = ""
    context: str = ""
    exten: str = ""
    application: str = ""
    data: str = ""
    reason: int = 0
    uniqueid: str = ""
    caller_id_num: str = ""
    caller_id_name: str = ""

    @property
    def success(self) -> bool:
        return self.response == "Success"

    @property
    def reason_text(self) -> str:
        return ORIGINATE_REASONS.get(self.reason, f"reason {self.reason}")


@dataclass(frozen=True, slots=True)
class DeviceStateChange(AmiEvent):
    """``state``: NOT_INUSE, INUSE, BUSY, INVALID, UNAVAILABLE, RINGING, RINGINUSE, ONHOLD..."""

    device: str = ""
    state: str = ""


@dataclass(frozen=True, slots=True)
class ContactStatus(AmiEvent):
    """res_pjsip: a contact of an AOR was created, removed, became (un)reachable."""

    uri: str = ""
    contact_status: str = ""
    aor: str = ""
    endpoint_name: str = ""
    roundtrip_usec: int = 0


@dataclass(frozen=True, slots=True)
class PeerStatus(AmiEvent):
    """``peer`` is ``PJSIP/200``; ``peer_status`` Reachable, Unreachable, ..."""

    channel_type: str = ""
    peer: str = ""
    peer_status: str = ""


@dataclass(frozen=True, slots=True)
class ChanSpyStart(AmiEvent):
    spyer: ChannelSnapshot = _EMPTY
    spyee: ChannelSnapshot = _EMPTY


@dataclass(frozen=True, slots=True)
class ChanSpyStop(AmiEvent):
    """``spyee`` is ``None`` when the spied channel was already gone."""

    spyer: ChannelSnapshot = _EMPTY
    spyee: ChannelSnapshot | None = None


@dataclass(frozen=True, slots=True)
class VarSet(AmiEvent):
    """A variable was set (class ``dialplan``); ``channel`` is ``None`` for a global.

    ``value`` is what was set: Asterisk C-escapes it on the wire (``varset_to_ami``,
    main/stasis_channels.c), so JSON set as a channel variable arrives with ``\\"``.
    """

    channel: ChannelSnapshot | None = None
    variable: str = ""
    value: str = ""


@dataclass(frozen=True, slots=True)
class FullyBooted(AmiEvent):
    status: str = ""
    uptime: int = 0
    last_reload: int = 0


@dataclass(frozen=True, slots=True)
class CoreShowChannel(AmiEvent):
    """One item of ``CoreShowChannels`` (action_coreshowchannels, main/manager.c)."""

    channel: ChannelSnapshot = _EMPTY
    application: str = ""
    application_data: str = ""
    duration: str = ""
    bridge_id: str = ""


def _chan(m: Message, prefix: str = "") -> ChannelSnapshot:
    return ChannelSnapshot.from_message(m, prefix) or _EMPTY


def _bridge(m: Message) -> dict[str, object]:
    return {
        "bridge_uniqueid": m.get("BridgeUniqueid"),
        "bridge_type": m.get("BridgeType"),
        "bridge_num_channels": _int(m.get("BridgeNumChannels")),
        "channel": _chan(m),
    }


_Builder = Callable[[str, Message], AmiEvent]
_BUILDERS: dict[str, _Builder] = {
    "newchannel": lambda n, m: Newchannel(n, m, _chan(m)),
    "newstate": lambda n, m: Newstate(n, m, _chan(m)),
    "hangup": lambda n, m: Hangup(n, m, _chan(m), _int(m.get("Cause")), m.get("Cause-txt")),
    "dialbegin": lambda n, m: DialBegin(
        n, m, ChannelSnapshot.from_message(m), _chan(m, "Dest"), m.get("DialString")
    ),
    "dialend": lambda n, m: DialEnd(
        n,
        m,
        ChannelSnapshot.from_message(m),
        _chan(m, "Dest"),
        m.get("DialStatus"),
        m.get("Forward"),
    ),
    "bridgeenter": lambda n, m: BridgeEnter(n, m, **_bridge(m)),  # type: ignore[arg-type]
    "bridgeleave": lambda n, m: BridgeLeave(n, m, **_bridge(m)),  # type: ignore[arg-type]
    "originateresponse": lambda n, m: OriginateResponse(
        n,
        m,
        action_id=m.action_id,
        response=m.get("Response"),
        channel=m.get("Channel"),
        context=m.get("Context"),
        exten=m.get("Exten"),
        application=m.get("Application"),
        data=m.get("Data"),
        reason=_int(m.get("Reason")),
        uniqueid=m.get("Uniqueid"),
        caller_id_num=m.get("CallerIDNum"),
        caller_id_name=m.get("CallerIDName"),
    ),
    "devicestatechange": lambda n, m: DeviceStateChange(n, m, m.get("Device"), m.get("State")),
    "contactstatus": lambda n, m: ContactStatus(
        n,
        m,
        m.get("URI"),
        m.get("ContactStatus"),
        m.get("AOR"),
        m.get("EndpointName"),
        _int(m.get("RoundtripUsec")),
    ),
    "peerstatus": lambda n, m: PeerStatus(
        n, m, m.get("ChannelType"), m.get("Peer"), m.get("PeerStatus")
    ),
    "chanspystart": lambda n, m: ChanSpyStart(n, m, _chan(m, "Spyer"), _chan(m, "Spyee")),
    "chanspystop": lambda n, m: ChanSpyStop(
        n, m, _chan(m, "Spyer"), ChannelSnapshot.from_message(m, "Spyee")
    ),
    "varset": lambda n, m: VarSet(
        n,
        m,
        None if m.get("Channel") == "none" else ChannelSnapshot.from_message(m),
        m.get("Variable"),
        unescape_c(m.get("Value")),
    ),
    "fullybooted": lambda n, m: FullyBooted(
        n, m, m.get("Status"), _int(m.get("Uptime")), _int(m.get("LastReload"))
    ),
    "coreshowchannel": lambda n, m: CoreShowChannel(
        n,
        m,
        _chan(m),
        m.get("Application"),
        m.get("ApplicationData"),
        m.get("Duration"),
        m.get("BridgeId"),
    ),
}


def parse_event(message: Message) -> AmiEvent:
    """The typed record for an event message (a plain :class:`AmiEvent` if not modelled)."""
    name = message.event
    builder = _BUILDERS.get(name.lower())
    return builder(name, message) if builder else AmiEvent(name, message)
