"""Logging, configured once: structlog, JSON in production, console in development.

Call context (``uniqueid``, ``flow``, ``node``) is bound through contextvars
with :func:`bind_call`, so every line a call's task logs carries it. A
processor masks values the flow marks sensitive before anything renders.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any, Final

import structlog

__all__ = ["MASK", "bind_call", "configure", "debug_enabled", "mask_sensitive", "sensitive_keys"]

_debug = False


def debug_enabled() -> bool:
    """True when debug lines are logged; hot paths check it before building them."""
    return _debug


MASK: Final = "***"
#: Keys whose values must never reach a log line in this context (a PIN, say).
sensitive_keys: ContextVar[frozenset[str]] = ContextVar("sensitive_keys", default=frozenset())
_ALWAYS_MASKED: Final = frozenset({"password", "secret", "pin", "token"})


def mask_sensitive(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace sensitive values with ``***``."""
    masked = sensitive_keys.get() | _ALWAYS_MASKED
    for key in list(event_dict):
        if key in masked:
            event_dict[key] = MASK
    return event_dict


def configure(*, json: bool | None = None, level: str = "info") -> None:
    """Set up structlog and the stdlib root logger. ``json=None``: JSON unless a TTY."""
    global _debug  # noqa: PLW0603 - logging is configured once per process
    if json is None:
        json = not sys.stderr.isatty()
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        message = f"log level {level!r}: use debug, info, warning or error"
        raise ValueError(message)  # noqa: TRY004 - a bad name, not a bad type
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_sensitive,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        # Not cached: tests capture logs (structlog.testing) after configure();
        # the per-command hot path only logs behind debug_enabled() anyway.
        cache_logger_on_first_use=False,
    )
    _debug = numeric <= logging.DEBUG
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(name)s %(message)s")


def bind_call(**values: str) -> None:
    """Bind call context (``uniqueid``, ``flow``, ``node``) for the current task."""
    structlog.contextvars.bind_contextvars(**values)
