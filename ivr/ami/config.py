"""Where the AMI is and who the engine logs in as.

Credentials come from the environment (``IVR_AMI_USER``, ``IVR_AMI_SECRET``)
or a secrets file (``IVR_AMI_SECRET_FILE``, first line), never from a flow
or the settings file. The AMI user needs, in manager.conf, exactly the classes
of :mod:`ivr.ami.permissions` (``read=call``, ``write=originate,call,reporting``,
as ``ivr asterisk-conf render`` writes them); never ``system``: Originate of
``ChanSpy`` or ``Dial`` needs only ``originate`` (``is_originate_app_permitted``
in main/manager.c lists the applications that need ``system``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ivr.errors import ConfigError

__all__ = ["AmiConfig"]


@dataclass(frozen=True, slots=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = field(default="", repr=False)
    #: Seconds for the TCP connect plus the login reply.
    connect_timeout: float = 5.0
    #: Seconds an ordinary action may take to be answered.
    action_timeout: float = 10.0
    #: A keep-alive Ping every so many seconds; no Pong within action_timeout drops the link.
    ping_interval: float = 10.0
    #: Reconnect backoff: first delay, cap (at most 30 s), and +/- jitter fraction.
    #: The default cap of 4 s keeps a returning Asterisk resynced within 5 s
    #: (cap + jitter + resync); raise it only if stale agent states may last longer.
    backoff_initial: float = 0.5
    backoff_max: float = 4.0
    backoff_jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"IVR_AMI_PORT: {self.port} is not a TCP port (1-65535)")
        if not 0 < self.backoff_max <= 30:
            raise ConfigError("ami backoff_max: must be more than 0 and at most 30 seconds")
        if self.backoff_initial <= 0 or self.backoff_initial > self.backoff_max:
            raise ConfigError("ami backoff_initial: must be more than 0 and at most backoff_max")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> AmiConfig:
        """Read ``IVR_AMI_HOST``, ``IVR_AMI_PORT``, ``IVR_AMI_USER`` and the secret."""
        env = os.environ if environ is None else environ
        secret = env.get("IVR_AMI_SECRET", "")
        secret_file = env.get("IVR_AMI_SECRET_FILE", "")
        if secret_file:
            try:
                secret = Path(secret_file).read_text(encoding="utf-8").splitlines()[0].strip()
            except (OSError, IndexError) as exc:
                raise ConfigError(
                    f"IVR_AMI_SECRET_FILE: cannot read a secret from {secret_file!r} ({exc}); "
                    "point it at a readable file whose first line is the AMI secret"
                ) from exc
        port_text = env.get("IVR_AMI_PORT", "5038")
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(f"IVR_AMI_PORT: {port_text!r} is not a number") from None
        values: dict[str, object] = {
            "host": env.get("IVR_AMI_HOST", "127.0.0.1"),
            "port": port,
            "username": env.get("IVR_AMI_USER", ""),
            "secret": secret,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def require_credentials(self) -> None:
        if not self.username or not self.secret:
            raise ConfigError(
                "IVR_AMI_USER / IVR_AMI_SECRET: the AMI login is not set; export both "
                "(or IVR_AMI_SECRET_FILE with the secret on its first line)"
            )
