"""Errors of the AMI client; each says what to do."""

from __future__ import annotations

from ivr.errors import IvrError, UnsafeArgumentError

__all__ = [
    "AmiActionError",
    "AmiConnectionError",
    "AmiError",
    "AmiInjectionError",
    "AmiLoginError",
    "AmiSetupError",
    "AmiTimeout",
]


class AmiError(IvrError):
    """Base class of the AMI client's errors."""


class AmiInjectionError(AmiError, UnsafeArgumentError):
    """A value for an AMI action holds CR, LF or NUL and would start a new header or action."""

    def __init__(self, header: str, bad: str, *, in_name: bool = False) -> None:
        where = "header name" if in_name else "header"
        allowed = "CR, LF, NUL or ':'" if in_name else "CR, LF or NUL"
        super().__init__(
            f"AMI {where} {header!r} holds {bad!r}: it may not contain {allowed} "
            "(that would inject another header or action); strip it before sending"
        )
        self.header = header


class AmiConnectionError(AmiError, ConnectionError):
    """The AMI connection is down (or dropped while an action waited for its reply)."""


class AmiLoginError(AmiError, PermissionError):
    """Asterisk refused the AMI login."""


class AmiTimeout(AmiError, TimeoutError):  # noqa: N818 - reads like TimeoutError
    """Asterisk did not answer an action (or an Originate did not end) in time."""


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error`` to an action."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"AMI action {action} failed: {message}")
        self.action = action
        self.reason = message


#: Modules that register the AMI actions the engine sends outside Asterisk's core
#: (res/res_manager_devicestate.c registers DeviceStateList and forwards
#: DeviceStateChange to the AMI; with ``autoload=no`` it must be loaded).
ACTION_MODULES = {"DeviceStateList": "res_manager_devicestate.so"}


class AmiSetupError(AmiActionError):
    """Asterisk is up and the login worked, but it lacks something the engine needs:
    an action's module is not loaded, or the user may not run it."""

    def __init__(self, action: str, message: str) -> None:
        if "unknown command" in message.lower():
            module = ACTION_MODULES.get(action)
            hint = (
                f"load {module} in modules.conf (ivr asterisk-conf render does)"
                if module
                else "load the module that provides it in modules.conf"
            )
            text = f"Asterisk has no AMI action {action}: {hint}"
        else:
            text = (
                f"the AMI user may not run {action} ({message}): grant it in manager.conf "
                "as ivr asterisk-conf render does (write=originate,call,reporting)"
            )
        AmiError.__init__(self, text)
        self.action = action
        self.reason = message
