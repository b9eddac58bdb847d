"""Exceptions of the ``routing`` package."""

from __future__ import annotations


class RoutingError(Exception):
    """Base class of routing errors."""


class RoutingUnavailable(RoutingError, ConnectionError):  # noqa: N818 - reads as the condition
    """Routing cannot take calls now (its store is unreachable); use the flow's fallback."""


class UnknownTicket(RoutingError, KeyError):  # noqa: N818
    """The waiting call is not (or no longer) in any queue."""
