"""Named HTTP services: a flow names a service, each site says where it is.

A CRM's base URL differs per site (and the demo account service's port per
engine), so it is never written into a flow: an ``http`` node's ``url``
starts with ``${service:crm}`` and the engine's setting ``IVR_SERVICES``
(``crm=https://crm.example.com,billing=http://10.0.0.5:8080/api``) gives the
base URL it stands for. The placeholder is allowed only at the very start of a
``url`` (:mod:`ivr.flows.checks`), so a service's address decides the host
a lookup goes to and nothing else: never a path, a query or a header.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Collection

__all__ = [
    "EXAMPLE",
    "PLACEHOLDER",
    "leading",
    "misplaced",
    "parse_services",
    "unknown",
]

#: A service's name: a letter, then letters, digits, '_' or '-'.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
#: ``${service:...}`` anywhere in a text, whatever its name.
PLACEHOLDER = re.compile(r"\$\{service:([^}]*)\}")
#: What the setting looks like, for messages.
EXAMPLE = "crm=https://crm.example.com,demo=http://127.0.0.1:8089"
_FORM = "NAME=http(s)://host[:port][/path], comma-separated"


def parse_services(text: str) -> dict[str, str]:
    """``name=base,...`` as base URLs by name (no trailing '/'); ValueError says what is
    wrong with which item."""
    services: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, equals, base = (s.strip() for s in item.partition("="))
        if not equals:
            raise ValueError(f"{item!r} is not NAME=URL; use {_FORM} ({EXAMPLE})")
        if not NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a service name: a letter, then letters, digits, '_' or '-' "
                f"({_FORM})"
            )
        if name in services:
            raise ValueError(f"service {name!r} is named twice; give each service once")
        services[name] = _base(name, base)
    return services


def _base(name: str, url: str) -> str:
    problem = ""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        problem = "is not a URL"
    else:
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "is not an http:// or https:// URL with a host"
        elif parts.query or parts.fragment or url.endswith(("?", "#")):
            problem = "has a query or fragment; a base URL ends at its path"
        elif any(c.isspace() or c in "${}" for c in url):
            problem = "holds spaces or ${...}; a base URL is plain"
    if problem:
        raise ValueError(f"{name}: {url!r} {problem}; use {_FORM} ({EXAMPLE})")
    return url.rstrip("/")


def leading(template: str) -> tuple[str, str] | None:
    """(service name, the rest of the URL) when ``template`` opens with ``${service:NAME}``."""
    match = PLACEHOLDER.match(template)
    if match is None:
        return None
    return match.group(1), template[match.end() :]


def misplaced(text: str, *, url: bool) -> str | None:
    """What is wrong with the ``${service:...}`` placeholders in ``text`` (``url``: the text
    is an http node's url), or None."""
    for match in PLACEHOLDER.finditer(text):
        placeholder, name = match.group(0), match.group(1)
        if not url:
            return (
                f"{placeholder} is only allowed at the very start of an http node's url, "
                "e.g. url: ${service:crm}/accounts/${account}"
            )
        if match.start() != 0:
            return (
                f"{placeholder} must open the url: the service gives its scheme and host, "
                "e.g. url: ${service:crm}/accounts/${account}"
            )
        if not NAME.fullmatch(name):
            return (
                f"{placeholder}: {name!r} is not a service name; a letter, then letters, "
                "digits, '_' or '-'"
            )
        if text[match.end() : match.end() + 1] not in ("", "/", "?"):
            return (
                f"{placeholder} is followed by {text[match.end() :][:12]!r}; a path starts "
                "with '/' (or a query with '?'), e.g. ${service:crm}/accounts"
            )
    return None


def unknown(name: str, known: Collection[str]) -> str:
    """The message for a service the engine does not know."""
    names = ", ".join(sorted(known)) or "none"
    return (
        f"${{service:{name}}}: no service named {name!r}; services: {names} "
        f"(IVR_SERVICES={name}=https://... adds it)"
    )
