"""Errors of the AMI client; each says what to do."""

from __future__ import annotations

from ivr.errors import IvrError, UnsafeArgumentError

__all__ = [
    "AmiActionError",
    "AmiConnectionError",
    "AmiError",
    "AmiInjectionError",
    "AmiLoginError",
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
