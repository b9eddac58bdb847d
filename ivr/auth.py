"""Who may use the engine's HTTP API: bearer tokens with a role each.

Tokens come from the environment or a file, never from flows or settings
files kept in git::

    IVR_API_TOKENS="ops:admin:s3cret-one;lee:supervisor:s3cret-two:PJSIP/2001"
    IVR_API_TOKENS_FILE=/run/secrets/ivr-tokens     # lines: NAME ROLE TOKEN [PHONES]

Each entry may end with the person's own phones, comma-separated endpoints
(``PJSIP/2001,PJSIP/2002``): after a fourth ``:`` in ``IVR_API_TOKENS`` (the
part after a token's last ``:`` is read as phones only when it holds a ``/``,
so older tokens that contain a ``:`` keep working), after a space in the file.
Listening, whispering and barging ring one of the supervisor's own phones and
no other device, so a supervisor without phones cannot supervise.

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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ivr.errors import ConfigError

__all__ = ["ENDPOINT", "ROLES", "Principal", "TokenBook"]

ROLES: Final = ("viewer", "supervisor", "admin")
MIN_TOKEN = 12
#: A person's own phone: a device, never a Local channel, a context or a trunk ('@')
#: (the same form :mod:`ivr.centre.supervise` accepts as the phone that rings).
ENDPOINT: Final = re.compile(r"^(?:PJSIP|SIP|IAX2|DAHDI)/[A-Za-z0-9_.+\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    #: The person's own phones (endpoints): where their supervision may ring.
    phones: tuple[str, ...] = ()

    def may(self, role: str) -> bool:
        """True when this principal's role includes ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def owns(self, endpoint: str) -> bool:
        """True when ``endpoint`` is one of this principal's phones."""
        return endpoint in self.phones


class TokenBook:
    """The configured tokens; :meth:`who` tells whose a presented token is."""

    def __init__(self, entries: Mapping[str, Principal] | None = None) -> None:
        self._entries = dict(entries or {})

    def __bool__(self) -> bool:
        return bool(self._entries)

    @property
    def principals(self) -> tuple[Principal, ...]:
        """Who holds a token (never the tokens themselves)."""
        return tuple(self._entries.values())

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
            if len(parts) == 3 and ":" in parts[2]:
                token, _, phones = parts[2].rpartition(":")
                if "/" in phones:  # NAME:ROLE:TOKEN:PHONES (a token may hold ':' itself)
                    parts[2:] = [token, phones]
            cls._add(entries, parts, f"IVR_API_TOKENS entry {number}")
        path = env.get("IVR_API_TOKENS_FILE", "")
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"IVR_API_TOKENS_FILE={path}: cannot read it ({exc.strerror}); "
                    "give a readable file of lines 'NAME ROLE TOKEN [PHONE,...]'"
                ) from None
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    cls._add(entries, line.split(None, 3), f"{path}:{number}")
        return cls(entries)

    @staticmethod
    def _add(entries: dict[str, Principal], parts: list[str], where: str) -> None:
        if len(parts) not in (3, 4) or not all(parts):
            raise ConfigError(
                f"{where}: write NAME ROLE TOKEN, then optionally the person's phones "
                "(PJSIP/2001,PJSIP/2002)"
            )
        name, role, token = parts[:3]
        if role not in ROLES:
            raise ConfigError(f"{where}: role {role!r} is unknown; allowed: {', '.join(ROLES)}")
        if len(token) < MIN_TOKEN:
            raise ConfigError(f"{where}: the token of {name!r} is shorter than {MIN_TOKEN}")
        if token in entries:
            raise ConfigError(f"{where}: the token of {name!r} is already someone else's")
        phones = tuple(p.strip() for p in parts[3].split(",")) if len(parts) == 4 else ()
        for phone in phones:
            if not ENDPOINT.match(phone):
                raise ConfigError(
                    f"{where}: {phone!r} (a phone of {name!r}) is not an endpoint; write "
                    "TECHNOLOGY/resource, e.g. PJSIP/2001, several separated by commas"
                )
        entries[token] = Principal(name, role, phones)
