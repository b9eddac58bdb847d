"""Asterisk 22's AMI classes: which class each event is sent under, which an action needs.

Read from Asterisk 22.9.0's sources (tag ``22.9.0`` of asterisk/asterisk). An
event is written to a session only when the user reads every class of it and
its login's ``Events`` mask includes them (``(readperm & category) ==
category`` and ``(send_events & category) == category``, ``process_events`` in
main/manager.c); ``Privilege`` lists its classes and ``all``. An action runs
when the user writes any one of its classes, or when it has none
(``(writeperm & authority) || authority == 0``, ``process_message``);
otherwise the answer is ``Response: Error`` / ``Message: Permission denied``.
Class names are ``perms[]`` of main/manager.c. The emulator sends no event that
is not in :data:`EVENT_CLASSES`, so a new one has to be looked up first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "ACTION_CLASSES",
    "ALL_CLASSES",
    "CLASS_BITS",
    "EVENT_CLASSES",
    "action_allowed",
    "event_class",
    "parse_classes",
    "reads",
]

#: ``perms[]`` of main/manager.c, in its order (``all`` and ``none`` are aliases), with
#: the ``EVENT_FLAG_*`` bit of each (include/asterisk/manager.h).
CLASS_BITS: Final[dict[str, int]] = {
    "system": 1 << 0, "call": 1 << 1, "log": 1 << 2, "verbose": 1 << 3, "command": 1 << 4,
    "agent": 1 << 5, "user": 1 << 6, "config": 1 << 7, "dtmf": 1 << 8, "reporting": 1 << 9,
    "cdr": 1 << 10, "dialplan": 1 << 11, "originate": 1 << 12, "agi": 1 << 13, "cc": 1 << 15,
    "aoc": 1 << 16, "test": 1 << 17, "security": 1 << 18, "message": 1 << 30,
}  # fmt: skip
ALL_CLASSES: Final = tuple(CLASS_BITS)

#: Event name -> its class (every event Asterisk raises here has exactly one).
EVENT_CLASSES: Final[dict[str, str]] = {
    # main/manager_channels.c: manager_event(EVENT_FLAG_CALL, ...) and
    # ast_manager_event_blob_create(EVENT_FLAG_CALL, ...) for channel snapshots.
    "Newchannel": "call",
    "Newstate": "call",
    "Hangup": "call",
    "HangupRequest": "call",
    "SoftHangupRequest": "call",
    "NewCallerid": "call",
    "NewConnectedLine": "call",
    "NewAccountCode": "call",
    "DialBegin": "call",
    "DialState": "call",
    "DialEnd": "call",
    "ChanSpyStart": "call",
    "ChanSpyStop": "call",
    "Hold": "call",
    "Unhold": "call",
    "MusicOnHoldStart": "call",
    "Newexten": "dialplan",  # EVENT_FLAG_DIALPLAN, same file
    "DTMFBegin": "dtmf",  # EVENT_FLAG_DTMF, same file: every key pressed on the PBX
    "DTMFEnd": "dtmf",
    # main/core_local.c (local_message_to_ami): EVENT_FLAG_CALL.
    "LocalBridge": "call",
    "LocalOptimizationBegin": "call",
    "LocalOptimizationEnd": "call",
    # main/manager_bridges.c: EVENT_FLAG_CALL.
    "BridgeCreate": "call",
    "BridgeDestroy": "call",
    "BridgeEnter": "call",
    "BridgeLeave": "call",
    "BridgeMerge": "call",
    # main/manager.c fast_originate: ast_manager_event_multichan(EVENT_FLAG_CALL, ...).
    "OriginateResponse": "call",
    "UserEvent": "user",  # main/manager.c action_userevent: EVENT_FLAG_USER
    # main/devicestate.c devstate_to_ami: EVENT_FLAG_CALL (so reachability needs no system).
    "DeviceStateChange": "call",
    # main/stasis_channels.c: varset_to_ami EVENT_FLAG_DIALPLAN, agent_*_to_ami EVENT_FLAG_AGENT.
    "VarSet": "dialplan",
    "AgentLogin": "agent",
    "AgentLogoff": "agent",
    # main/stasis_endpoints.c: peerstatus_to_ami / contactstatus_to_ami EVENT_FLAG_SYSTEM.
    "PeerStatus": "system",
    "ContactStatus": "system",
    # main/asterisk.c: ast_manager_publish_event("FullyBooted", EVENT_FLAG_SYSTEM, ...),
    # and main/manager.c action_login for a user reading system.
    "FullyBooted": "system",
    # main/security_events.c: security_event_to_ami_blob, EVENT_FLAG_SECURITY.
    "SuccessfulAuth": "security",
    "InvalidPassword": "security",
    "FailedACL": "security",
    # res/res_agi.c agi_channel_to_ami: EVENT_FLAG_AGI.
    "AGIExecStart": "agi",
    "AGIExecEnd": "agi",
}

#: Action name (lower case) -> the classes of which the user must write one
#: (empty: any logged-in user). main/manager.c __init_manager
#: (ast_manager_register_xml_core), res/res_manager_devicestate.c load_module.
ACTION_CLASSES: Final[dict[str, frozenset[str]]] = {
    "ping": frozenset(),
    "events": frozenset(),
    "login": frozenset(),
    "logoff": frozenset(),
    "challenge": frozenset(),
    "hangup": frozenset({"system", "call"}),
    "status": frozenset({"system", "call", "reporting"}),
    "setvar": frozenset({"call"}),
    "getvar": frozenset({"call", "reporting"}),
    "redirect": frozenset({"call"}),
    "originate": frozenset({"originate"}),
    "coreshowchannels": frozenset({"system", "reporting"}),
    "devicestatelist": frozenset({"call", "reporting"}),
}


def event_class(event: str) -> str:
    """The class ``event`` is sent under; KeyError for an event not looked up yet."""
    return EVENT_CLASSES[event]


def _instring(big: str, small: str) -> bool:
    """``ast_instring(big, small, ',')`` of main/manager.c, quirks included: a token
    before the last matches any label it begins (an empty one matches every label)."""
    *heads, last = big.split(",")
    return any(small.startswith(token) for token in heads) or last == small


def parse_classes(text: str) -> frozenset[str]:
    """A ``read=`` / ``write=`` value (or a login's ``Events`` list) as ``get_perm`` reads
    it: case-sensitive, comma-separated, ``all`` for every class."""
    if _instring(text, "all"):
        return frozenset(ALL_CLASSES)
    return frozenset(name for name in ALL_CLASSES if _instring(text, name))


def reads(classes: Iterable[str], event: str) -> bool:
    """Whether a user reading ``classes`` is sent ``event``."""
    granted = set(classes)
    return "all" in granted or event_class(event) in granted


def action_allowed(classes: Iterable[str], action: str) -> bool:
    """Whether a user writing ``classes`` may run ``action`` (unknown actions: False)."""
    needed = ACTION_CLASSES.get(action.lower())
    if needed is None:
        return False
    granted = set(classes)
    return not needed or "all" in granted or bool(needed & granted)
