"""Exceptions of the ``ivr`` package.

Every error derives from :class:`IvrError`; those that resemble a built-in
also subclass it (a dropped connection is a :class:`ConnectionError`), so
callers can catch either. Messages say what went wrong and what to do.
"""

from __future__ import annotations


class IvrError(Exception):
    """Base class of every error raised by the engine."""


class ConfigError(IvrError, ValueError):
    """A configuration value is missing or invalid; the message names the key."""


class AgiProtocolError(IvrError, ValueError):
    """Bytes from Asterisk do not follow the FastAGI protocol."""


class UnsafeArgumentError(IvrError, ValueError):
    """A value cannot be sent to Asterisk without changing the command's meaning."""


class AgiError(IvrError):
    """An AGI command did not do what it was asked."""

    def __init__(self, message: str, *, command: str = "", reply: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.reply = reply


class CommandTimeout(AgiError, TimeoutError):  # noqa: N818 - reads like TimeoutError
    """Asterisk did not answer a command within the per-command timeout."""


class UnknownCommandError(AgiError):
    """Asterisk answered 510: it does not know the command."""


class UsageError(AgiError):
    """Asterisk answered 520: the command's arguments are wrong."""


class ApplicationNotFoundError(AgiError):
    """``EXEC`` named a dialplan application Asterisk does not have (result -2)."""


class PlaybackError(AgiError):
    """A prompt could not be played on a live channel (a missing sound file, say)."""


class ChannelHangup(IvrError, ConnectionError):  # noqa: N818 - the name reads as the event it is
    """The caller's channel is gone.

    Raised the same way whichever way Asterisk shows it: the ``HANGUP``
    notice, a ``511`` reply on a dead channel, or the socket closing.
    """

    def __init__(self, message: str = "the channel hung up", *, how: str = "") -> None:
        super().__init__(message)
        self.how = how
