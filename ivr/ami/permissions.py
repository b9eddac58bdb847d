"""The AMI classes the engine's user is granted: exactly what the code consumes.

``ivr asterisk-conf render`` writes these into ``manager.conf``; the emulated
AMI delivers an event only to users whose read classes include its class, so
a test cannot pass on a privilege that production never gets.
"""

from __future__ import annotations

from typing import Final

__all__ = ["AMI_READ", "AMI_WRITE"]

#: AMI classes the engine's user may read: channel and bridge events and
#: DeviceStateChange (call), Queue/Agent events (agent), DTMF (dtmf), status
#: lists (reporting), UserEvent (user). Never system, command or config.
AMI_READ: Final = ("call", "agent", "dtmf", "reporting", "user")
#: Originate (originate), Hangup / Redirect / Setvar / Getvar / Status (call),
#: CoreShowChannels to resynchronise after a reconnect (reporting).
AMI_WRITE: Final = ("originate", "call", "reporting")
