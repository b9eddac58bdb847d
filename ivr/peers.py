"""Who may connect to the engine's FastAGI and AudioSocket listeners.

Neither protocol has any authentication: whoever connects to FastAGI runs a
flow (and reaches routing, transfers, HTTP lookups), whoever connects to
AudioSocket may speak into a caller's recognition. A listener bound to
loopback can only be reached from this host and admits every peer. A listener
bound beyond loopback (``0.0.0.0``, a LAN address, a host name) admits only
the peers in ``IVR_AGI_ALLOW`` (addresses or CIDRs, comma-separated, read
from the environment like the API's tokens) and closes every other
connection at once, before a byte is read or sent; each refusal is logged as
``agi.peer_refused`` with the peer's address, at most :data:`LOG_BURST` lines a
minute per listener (a scan cannot flood the log; the next line counts the
refusals it left out). Bound beyond loopback without ``IVR_AGI_ALLOW``, the
engine does not start.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Mapping, Sequence
from typing import Final

import structlog

from ivr.errors import ConfigError

__all__ = ["ALLOW_VARIABLE", "Network", "PeerFilter", "loopback_only", "parse_allow"]

log = structlog.get_logger("ivr.peers")

ALLOW_VARIABLE: Final = "IVR_AGI_ALLOW"
#: Lines logged per listener and window; the rest are counted.
LOG_BURST: Final = 10
LOG_WINDOW: Final = 60.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allow(text: str, source: str = ALLOW_VARIABLE) -> tuple[Network, ...]:
    """The networks of ``text`` (``172.30.60.0/24,10.0.0.5``); a bad one names ``source``."""
    networks: list[Network] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"{source}: {item!r} is not an address or a network; write addresses or "
                "CIDRs separated by commas, e.g. 172.30.60.0/24,10.0.0.5"
            ) from None
    return tuple(networks)


def loopback_only(host: str) -> bool:
    """True when a listener on ``host`` can be reached from this host only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # 0.0.0.0 is an address; a host name may resolve anywhere


def exposed(listener: str, host: str, where: str = "") -> ConfigError:
    """The start-up error of a listener bound beyond loopback with no allowed peers."""
    said = f"{where}: " if where else ""
    return ConfigError(
        f"{said}the {listener} listener on {host} is reachable beyond this host and "
        f"{listener} has no authentication; set {ALLOW_VARIABLE} to the addresses or "
        "networks Asterisk connects from (CIDRs, comma-separated, e.g. 172.30.60.0/24), "
        "or listen on 127.0.0.1"
    )


def _address(peername: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer's IP address from a socket's ``peername`` (IPv4-mapped IPv6 as IPv4)."""
    if not isinstance(peername, tuple) or not peername or not isinstance(peername[0], str):
        return None
    try:
        address = ipaddress.ip_address(peername[0].partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _shown(peername: object) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:  # (host, port, ...)
        return f"{peername[0]}:{peername[1]}"
    return str(peername)


class PeerFilter:
    """One listener's admission rule; :meth:`admits` on each new connection."""

    def __init__(
        self,
        listener: str,
        host: str,
        allow: str | Sequence[Network] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if allow is None:
            allow = (os.environ if environ is None else environ).get(ALLOW_VARIABLE, "")
        self.listener = listener
        self.networks = parse_allow(allow) if isinstance(allow, str) else tuple(allow)
        #: Bound to loopback: only this host can connect, every peer is admitted.
        self.open = loopback_only(host)
        if not self.open and not self.networks:
            raise exposed(listener, host)
        self.refused = 0
        self._window = -LOG_WINDOW
        self._logged = 0
        self._unlogged = 0

    def admits(self, peername: object) -> bool:
        """True when the peer may talk to this listener."""
        if self.open:
            return True
        address = _address(peername)
        return address is not None and any(address in network for network in self.networks)

    def refuse(self, peername: object) -> None:
        """Count a refused peer and log it, rate-limited."""
        self.refused += 1
        now = time.monotonic()
        if now - self._window >= LOG_WINDOW:
            self._window, self._logged = now, 0
        if self._logged >= LOG_BURST:
            self._unlogged += 1
            return
        self._logged += 1
        fields: dict[str, object] = {"listener": self.listener, "peer": _shown(peername)}
        if self._unlogged:
            fields["unlogged"] = self._unlogged  # refused since the last line, not logged
            self._unlogged = 0
        log.warning("agi.peer_refused", allowed=ALLOW_VARIABLE, **fields)
