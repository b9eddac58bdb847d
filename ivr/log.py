"""Logging, configured once: structlog, JSON in production, console in development.

Call context (``uniqueid``, ``flow``, ``node``) is bound through contextvars
with :func:`bind_call`, so every line a call's task logs carries it; the
FastAGI server sets :data:`current_call` instead, once per call, and the call's
``uniqueid`` and ``flow`` are read from it only when a line is logged. A
processor masks values the flow marks sensitive before anything renders.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from typing import Any, Final, Protocol

import structlog

__all__ = [
    "MASK",
    "CallIdentity",
    "bind_call",
    "configure",
    "current_call",
    "debug_enabled",
    "mask_keys",
    "mask_sensitive",
    "masked_keys",
    "masking",
    "merge_call",
    "sensitive_keys",
]

_debug = False
#: The same as :func:`debug_enabled`, as an attribute: per-command paths read it
#: without a call (``ivr.agi.channel``).
debug_on = False


def debug_enabled() -> bool:
    """True when debug lines are logged; hot paths check it before building them."""
    return _debug


MASK: Final = "***"
#: Keys whose values must never reach a log line in this context: the variables
#: a call's flow marks sensitive, and, while a sensitive node listens, the keys
#: that carry what the caller said. A context variable, so it follows the call's
#: task (and the tasks and threads it starts), never another call's.
sensitive_keys: ContextVar[frozenset[str]] = ContextVar("sensitive_keys", default=frozenset())
_ALWAYS_MASKED: Final = frozenset({"password", "secret", "pin", "token"})


def masked_keys() -> frozenset[str]:
    """Every key masked in the current context."""
    return sensitive_keys.get() | _ALWAYS_MASKED


def mask_keys(*keys: str) -> None:
    """Mask ``keys`` from now on in the current context (the rest of a call's task)."""
    current = sensitive_keys.get()
    if not current.issuperset(keys):
        sensitive_keys.set(current | frozenset(keys))


@contextlib.contextmanager
def masking(*keys: str) -> Iterator[None]:
    """Mask ``keys`` within the block (a sensitive node hearing the caller); keys
    :func:`mask_keys` adds meanwhile stay masked after it."""
    added = frozenset(keys) - sensitive_keys.get()
    sensitive_keys.set(sensitive_keys.get() | added)
    try:
        yield
    finally:
        sensitive_keys.set(sensitive_keys.get() - added)


def mask_sensitive(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace sensitive values with ``***``."""
    masked = masked_keys()
    for key in list(event_dict):
        if key in masked:
            event_dict[key] = MASK
    return event_dict


class CallIdentity(Protocol):
    """What names a call in its log lines (``ivr.agi``'s ``Environment`` is one)."""

    @property
    def uniqueid(self) -> str: ...

    @property
    def script(self) -> str: ...


#: The call the current task serves, set once per call by the FastAGI server. One
#: context variable set, where binding ``uniqueid`` and ``flow`` cost 11,700
#: instructions per call (callgrind, issue 13) for lines most calls never log.
current_call: ContextVar[CallIdentity | None] = ContextVar("current_call", default=None)


def merge_call(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current call's ``uniqueid`` and ``flow`` (its script),
    unless the line or a binding (:func:`bind_call`: a subflow's id) names them."""
    call = current_call.get()
    if call is not None:
        if "uniqueid" not in event_dict:
            event_dict["uniqueid"] = call.uniqueid
        if "flow" not in event_dict:
            event_dict["flow"] = call.script
    return event_dict


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was set up
    (a test runner or a daemon may replace it, and close the old one)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(*, json: bool | None = None, level: str = "info") -> None:
    """Set up structlog and the stdlib root logger. ``json=None``: JSON unless a TTY."""
    global _debug, debug_on  # noqa: PLW0603 - logging is configured once per process
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
            merge_call,  # after the bindings: a bound flow (a subflow's) wins
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_sensitive,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]  # TextIO duck
        # Not cached: tests capture logs (structlog.testing) after configure();
        # the per-command hot path only logs behind debug_enabled() anyway.
        cache_logger_on_first_use=False,
    )
    _debug = debug_on = numeric <= logging.DEBUG
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(name)s %(message)s")
    # httpx logs every request's full URL at info (an http node's URL may hold what
    # a caller typed); the http node logs its outcome itself, with the flow's template.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def bind_call(**values: str) -> None:
    """Bind call context (``uniqueid``, ``flow``, ``node``) for the current task."""
    structlog.contextvars.bind_contextvars(**values)
