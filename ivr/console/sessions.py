"""Server-side console sessions and the login rate limit, in the routing store's Redis.

A session id is 256 random bits, sent to the browser once in the
``ivr_session`` cookie; Redis keeps only its SHA-256 (``<ns>:console:session:
<hash>``), so a look at Redis (or a dump of it) gives nobody a live session.
A session lasts while it is used (``IDLE`` seconds since the last request)
and at most ``LIFETIME`` seconds (a wall screen's viewer ``KIOSK_LIFETIME``:
a read-only board should not fall back to the login every morning), and
holds its own CSRF token. Every engine
sharing the store knows every session, so a console behind several engines
needs no stickiness.

Failed logins are counted per user name and per address for ``WINDOW``
seconds; at ``LIMIT`` failures either count refuses logins (HTTP 429 with
``Retry-After``) until the window ends, before a password is even checked.
A successful login clears the user's count, never the address's (so an
attacker with one account cannot reset the count they spend on others).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Final

from routing.redis import RedisRouter
from routing.redis.core import decode

__all__ = [
    "IDLE",
    "KIOSK_LIFETIME",
    "LIFETIME",
    "LIMIT",
    "WINDOW",
    "LoginLimiter",
    "Session",
    "Sessions",
]

#: A session unused for this long ends (seconds).
IDLE: Final = 12 * 3600
#: A session ends this long after the login, used or not (a wall screen logs in daily).
LIFETIME: Final = 24 * 3600
#: The longest session of a viewer (read-only: a wall screen).
KIOSK_LIFETIME: Final = 30 * 24 * 3600
#: Failed logins per user name, and per address, within WINDOW seconds.
LIMIT: Final = 5
WINDOW: Final = 300


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # the cookie's value; never stored
    user: str
    csrf: str
    #: The user's password stamp at login: a new password ends older sessions.
    stamp: str
    created: float
    address: str
    #: Seconds after ``created`` when the session ends, used or not.
    lifetime: float = LIFETIME


class Sessions:
    """Create, find and end sessions."""

    def __init__(
        self, router: RedisRouter, *, idle: float = IDLE, lifetime: float = LIFETIME
    ) -> None:
        self.router = router
        self.idle = idle
        self.lifetime = lifetime

    def _key(self, session_id: str) -> str:
        digest = hashlib.sha256(session_id.encode()).hexdigest()
        return f"{self.router.ns}:console:session:{digest}"

    async def create(
        self, user: str, stamp: str, address: str, *, lifetime: float | None = None
    ) -> Session:
        session = Session(
            secrets.token_urlsafe(32),
            user,
            secrets.token_urlsafe(32),
            stamp,
            time.time(),
            address,
            self.lifetime if lifetime is None else lifetime,
        )
        key, redis = self._key(session.id), self.router.redis
        fields = {
            "user": user,
            "csrf": session.csrf,
            "stamp": stamp,
            "created": repr(session.created),
            "address": address,
            "lifetime": repr(session.lifetime),
        }
        await self.router.read(redis.hset(key, mapping=fields))
        await self.router.read(redis.expire(key, int(self.idle)))
        return session

    async def get(self, session_id: str) -> Session | None:
        """The session, its idle time restarted; None when unknown, expired or ended."""
        if not session_id or len(session_id) > 128:
            return None
        key, redis = self._key(session_id), self.router.redis
        raw = await self.router.read(redis.hgetall(key))
        if not raw:
            return None
        fields = {decode(k): decode(v) for k, v in raw.items()}
        created = float(fields.get("created") or 0)
        lifetime = float(fields.get("lifetime") or self.lifetime)
        if time.time() - created > lifetime:
            await self.router.read(redis.delete(key))
            return None
        await self.router.read(redis.expire(key, int(self.idle)))
        return Session(
            session_id,
            fields.get("user", ""),
            fields.get("csrf", ""),
            fields.get("stamp", ""),
            created,
            fields.get("address", ""),
            lifetime,
        )

    async def end(self, session_id: str) -> None:
        await self.router.read(self.router.redis.delete(self._key(session_id)))

    async def flash(self, session: Session, message: str) -> None:
        """A one-line notice shown on the next page (after a redirect)."""
        await self.router.read(self.router.redis.hset(self._key(session.id), "flash", message))

    async def take_flash(self, session: Session) -> str:
        key, redis = self._key(session.id), self.router.redis
        raw = await self.router.read(redis.hget(key, "flash"))
        if raw is None:
            return ""
        await self.router.read(redis.hdel(key, "flash"))
        return decode(raw)


class LoginLimiter:
    """Failed logins per user and per address; :meth:`retry_after` says when to try."""

    def __init__(self, router: RedisRouter, *, limit: int = LIMIT, window: int = WINDOW) -> None:
        self.router = router
        self.limit = limit
        self.window = window

    def _keys(self, user: str, address: str) -> tuple[str, str]:
        prefix = f"{self.router.ns}:console:fails"
        name = hashlib.sha256(user.encode()).hexdigest()[:32]  # any text the form sent
        return f"{prefix}:user:{name}", f"{prefix}:addr:{address}"

    async def retry_after(self, user: str, address: str) -> int:
        """Seconds until a login may be tried (0: now)."""
        wait = 0
        for key in self._keys(user, address):
            count = await self.router.read(self.router.redis.get(key))
            if count is not None and int(count) >= self.limit:
                ttl = int(await self.router.read(self.router.redis.ttl(key)))
                wait = max(wait, ttl if ttl > 0 else self.window)
        return wait

    async def failed(self, user: str, address: str) -> None:
        redis = self.router.redis
        for key in self._keys(user, address):
            # The window starts with the first failure (SET NX EX; INCR keeps the expiry),
            # so a count can never be left without one.
            await self.router.read(redis.set(key, 0, ex=self.window, nx=True))
            await self.router.read(redis.incr(key))

    async def succeeded(self, user: str) -> None:
        await self.router.read(self.router.redis.delete(self._keys(user, "")[0]))
