"""The console's users: a JSON file of names, roles, scopes and argon2 password hashes.

The file (``IVR_USERS_FILE``, default ``var/users.json``) is written by
``ivr users`` and read by the engine on every request that carries a session
(re-read only when it changed), so a disabled user or a changed role takes
effect at once, in every engine that shares the file. It is written whole to
a new file opened with mode 0600 and renamed over the old one: a reader never
sees half a file, and the hashes are never readable by others, not even for
the instant between creating and chmod-ing.

Passwords are hashed with argon2id (``argon2-cffi``'s defaults, which follow
RFC 9106's second recommendation); a hash made with older parameters is
replaced at the next successful login.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ivr.auth import ENDPOINT
from ivr.console.roles import Role, Scope, User
from ivr.errors import ConfigError

__all__ = [
    "MIN_PASSWORD",
    "NAME",
    "ROLES",
    "UserRecord",
    "UserStore",
    "hash_password",
]

ROLES: Final[tuple[Role, ...]] = get_args(Role)
MIN_PASSWORD: Final = 12
#: A user's name (and a site, queue, team or agent id in a scope).
NAME: Final = re.compile(r"^[A-Za-z0-9_.@\-]{1,64}$")

_HASHER: Final = PasswordHasher()
#: Verified when the name is unknown, so that the answer takes as long as for a real user.
_DUMMY: Final = _HASHER.hash("not a password: only here to spend the same time")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (refused when it is too short)."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password has at least {MIN_PASSWORD} characters")
    return _HASHER.hash(password)


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One user as the file holds it."""

    name: str
    role: Role
    password: str  # the argon2 hash
    scope: Scope = field(default_factory=Scope)
    agent_id: str | None = None
    #: The person's own phones: where their listening, whispering and barging ring.
    phones: tuple[str, ...] = ()
    disabled: bool = False

    @property
    def user(self) -> User:
        return User(self.name, self.role, self.scope, self.agent_id, self.phones)

    @property
    def stamp(self) -> str:
        """Changes when the password does: a session made before it is no longer valid."""
        return hashlib.sha256(self.password.encode()).hexdigest()[:16]

    def verify(self, password: str) -> bool:
        try:
            return _HASHER.verify(self.password, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    @property
    def needs_rehash(self) -> bool:
        try:
            return _HASHER.check_needs_rehash(self.password)
        except InvalidHashError:
            return False

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "password": self.password,
            "sites": sorted(self.scope.sites),
            "queues": sorted(self.scope.queues),
            "teams": sorted(self.scope.teams),
            "agent": self.agent_id,
            "phones": list(self.phones),
            "disabled": self.disabled,
        }


def verify_unknown(password: str) -> bool:
    """Spend the time a real verification takes; always False."""
    with contextlib.suppress(VerificationError):
        _HASHER.verify(_DUMMY, password)
    return False


def check_role(role: object) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise ValueError(f"role {role!r} is unknown; allowed: {', '.join(ROLES)}")


def _check_hash(password: object) -> str:
    if not isinstance(password, str) or not password.startswith("$argon2"):
        raise ValueError("the password is not an argon2 hash; set it with ivr users passwd")
    return password


def check_agent(agent: object) -> str | None:
    if agent is not None and (not isinstance(agent, str) or not NAME.match(agent)):
        raise ValueError(f"agent {agent!r} is not an agent id")
    return agent


def check_names(kind: str, names: Iterable[str]) -> frozenset[str]:
    out = frozenset(n.strip() for n in names if n.strip())
    for name in out:
        if not NAME.match(name):
            raise ValueError(f"{kind} {name!r}: use letters, digits, '_', '.', '@', '-'")
    return out


def check_phones(phones: Iterable[str]) -> tuple[str, ...]:
    out = tuple(p.strip() for p in phones if p.strip())
    for phone in out:
        if not ENDPOINT.match(phone):
            raise ValueError(
                f"{phone!r} is not a phone; write TECHNOLOGY/resource, e.g. PJSIP/2001"
            )
    return out


def _record(name: str, raw: Any, where: str) -> UserRecord:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: user {name!r} is not an object")
    try:
        return UserRecord(
            name,
            check_role(raw.get("role")),
            _check_hash(raw.get("password")),
            Scope(
                sites=check_names("site", raw.get("sites") or ()),
                queues=check_names("queue", raw.get("queues") or ()),
                teams=check_names("team", raw.get("teams") or ()),
            ),
            check_agent(raw.get("agent") or None),
            check_phones(raw.get("phones") or ()),
            bool(raw.get("disabled", False)),
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: user {name!r}: {exc}") from None


class UserStore:
    """The users file: read when it changed, written atomically with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._users: dict[str, UserRecord] = {}

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> dict[str, UserRecord]:
        """Every user by name; none when the file does not exist."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._seen, self._users = None, {}
            return {}
        seen = (info.st_mtime_ns, info.st_size, info.st_ino)
        if seen != self._seen:
            self._users = self._read()
            self._seen = seen
        return dict(self._users)

    def get(self, name: str) -> UserRecord | None:
        return self.load().get(name)

    def _read(self) -> dict[str, UserRecord]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the users file ({exc.strerror})") from None
        except ValueError as exc:
            raise ConfigError(f"{self.path}: not valid JSON ({exc})") from None
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, dict):
            raise ConfigError(f'{self.path}: expected {{"users": {{NAME: {{...}}}}}}')
        out = {}
        for name, raw in users.items():
            if not NAME.match(name):
                raise ConfigError(f"{self.path}: user name {name!r} is not allowed")
            out[name] = _record(name, raw, str(self.path))
        return out

    def save(self, users: Mapping[str, UserRecord]) -> None:
        """Write every user: a new 0600 file renamed over the old one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {"users": {name: users[name].to_json() for name in sorted(users)}}, indent=2
        )
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(body + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        self._seen = None

    def put(self, record: UserRecord) -> None:
        users = self.load()
        users[record.name] = record
        self.save(users)

    def change(self, name: str, **changes: Any) -> UserRecord:
        """Change fields of an existing user; KeyError when there is none."""
        users = self.load()
        record = replace(users[name], **changes)
        users[name] = record
        self.save(users)
        return record
