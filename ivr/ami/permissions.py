"""The AMI classes the engine's user is granted: exactly what the code consumes.

``ivr asterisk-conf render`` writes these into ``manager.conf``, and the
emulated AMI's default user (``ivr.emulator.ami``) gets the same, so a test
cannot pass on a privilege production never gets. Asterisk delivers an event
only to a user who reads every class of it (``(readperm & category) ==
category``, ``process_events`` in main/manager.c) and runs an action when the
user writes any one of its classes (``process_message``); the class of every
event and action named here, with its source file, is in
``ivr/emulator/ami_classes.py``, and ``tests/unit/ami/test_permissions.py``
fails if the code subscribes to an event or sends an action these do not cover.
Action responses, event lists included (``CoreShowChannel``, ``DeviceStateList``'s
``DeviceStateChange`` items), are written to the asking session whatever it reads.
"""

from __future__ import annotations

from typing import Final

__all__ = ["AMI_READ", "AMI_WRITE"]

#: AMI classes the engine's user may read. Only ``call``: ``DeviceStateChange``
#: (presence: an unreachable PJSIP endpoint is UNAVAILABLE, chan_pjsip.c), ``DialEnd``
#: (the answer tracker, callbacks), ``Hangup`` (callbacks) and ``OriginateResponse``
#: (the end of every Async Originate: callbacks, supervision). Not ``system``
#: (ContactStatus, PeerStatus, FullyBooted: presence needs none of them), not
#: ``dtmf`` (every key pressed on the PBX), not ``agent``, ``user``, ``dialplan``
#: (VarSet, Newexten) or ``reporting``: nothing here reads their events.
AMI_READ: Final = ("call",)
#: AMI classes the engine's user may write; an action needs any one of its classes.
#: ``originate``: Originate (callbacks, ChanSpy for supervisors; never ``system``, which
#: Originate of AGI/System/Exec... would need). ``call``: Hangup (system|call: an earlier
#: supervisor spy), DeviceStateList (call|reporting: resync after a reconnect), and
#: Setvar / Getvar for the client's helpers. ``reporting``: CoreShowChannels
#: (system|reporting: resync, finding an agent's call and a supervisor's spy).
AMI_WRITE: Final = ("originate", "call", "reporting")
