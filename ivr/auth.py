"""Who may use the engine's HTTP API: bearer tokens with a role each.

Tokens come from the environment or a file, never from flows or settings
files kept in git::

    IVR_API_TOKENS="ops:admin:s3cret-one;lee:supervisor:s3cret-two"
    IVR_API_TOKENS_FILE=/run/secrets/ivr-tokens     # lines: NAME ROLE TOKEN

Roles, each including the ones below it:

* ``admin``: change queues and agents' skills and endpoints;
* ``supervisor``: change agents' states (log in/out, pause, resume), listen,
  whisper and barge;
* ``viewer``: read agents, queues and KPIs.

Tokens are compared in constant time; a token shorter than 12 characters is
refused at start so that a guessable one never goes live.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ivr.errors import ConfigError

__all__ = ["ROLES", "Principal", "TokenBook"]

ROLES: Final = ("viewer", "supervisor", "admin")
MIN_TOKEN = 12


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str

    def may(self, role: str) -> bool:
        """True when this principal's role includes ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)


class TokenBook:
    """The configured tokens; :meth:`who` tells whose a presented token is."""

    def __init__(self, entries: Mapping[str, Principal] | None = None) -> None:
        self._entries = dict(entries or {})

    def __bool__(self) -> bool:
        return bool(self._entries)

    def who(self, token: str) -> Principal | None:
        found = None
        presented = token.encode()
        for secret, principal in self._entries.items():
            # Every entry is compared, so the time says nothing about which matched.
            if hmac.compare_digest(secret.encode(), presented):
                found = principal
        return found

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> TokenBook:
        env = os.environ if environ is None else environ
        entries: dict[str, Principal] = {}
        inline = env.get("IVR_API_TOKENS", "")
        for number, item in enumerate(filter(None, (p.strip() for p in inline.split(";"))), 1):
            parts = item.split(":", 2)
            cls._add(entries, parts, f"IVR_API_TOKENS entry {number}")
        path = env.get("IVR_API_TOKENS_FILE", "")
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"IVR_API_TOKENS_FILE={path}: cannot read it ({exc.strerror}); "
                    "give a readable file of lines 'NAME ROLE TOKEN'"
                ) from None
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    cls._add(entries, line.split(), f"{path}:{number}")
        return cls(entries)

    @staticmethod
    def _add(entries: dict[str, Principal], parts: list[str], where: str) -> None:
        if len(parts) != 3 or not all(parts):
            raise ConfigError(f"{where}: write NAME ROLE TOKEN (three parts)")
        name, role, token = parts
        if role not in ROLES:
            raise ConfigError(f"{where}: role {role!r} is unknown; allowed: {', '.join(ROLES)}")
        if len(token) < MIN_TOKEN:
            raise ConfigError(f"{where}: the token of {name!r} is shorter than {MIN_TOKEN}")
        if token in entries:
            raise ConfigError(f"{where}: the token of {name!r} is already someone else's")
        entries[token] = Principal(name, role)
