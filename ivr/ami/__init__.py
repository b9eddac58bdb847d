"""The AMI (Asterisk Manager Interface) side of the engine.

:mod:`ivr.ami.protocol` is the wire format (sans-I/O), :mod:`ivr.ami.events`
turns messages into typed records, :mod:`ivr.ami.client` keeps one logged-in
connection to Asterisk (reconnect, resync, replies matched to actions).
"""

from ivr.ami.client import AmiClient, Resync
from ivr.ami.config import AmiConfig
from ivr.ami.errors import (
    AmiActionError,
    AmiConnectionError,
    AmiError,
    AmiInjectionError,
    AmiLoginError,
    AmiSetupError,
    AmiTimeout,
)
from ivr.ami.events import (
    AmiEvent,
    BridgeEnter,
    BridgeLeave,
    ChannelSnapshot,
    ChanSpyStart,
    ChanSpyStop,
    ContactStatus,
    CoreShowChannel,
    DeviceStateChange,
    DialBegin,
    DialEnd,
    FullyBooted,
    Hangup,
    Newchannel,
    Newstate,
    OriginateResponse,
    PeerStatus,
    VarSet,
    parse_event,
)
from ivr.ami.protocol import AmiParser, Message, encode_action

__all__ = [
    "AmiActionError",
    "AmiClient",
    "AmiConfig",
    "AmiConnectionError",
    "AmiError",
    "AmiEvent",
    "AmiInjectionError",
    "AmiLoginError",
    "AmiParser",
    "AmiSetupError",
    "AmiTimeout",
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
    "Message",
    "Newchannel",
    "Newstate",
    "OriginateResponse",
    "PeerStatus",
    "Resync",
    "VarSet",
    "encode_action",
    "parse_event",
]
