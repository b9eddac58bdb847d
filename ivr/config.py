"""Engine settings, layered: command line > file > environment > defaults.

Validated once at start-up; a bad value stops the engine with a message that
names the key (``IVR_AGI_PORT``, ``agi_port`` in the file, or ``--port``)
and what is allowed. Secrets never come from here but from the environment
or a secrets file (see the AMI issue). So do the peers allowed to reach
FastAGI and AudioSocket (``IVR_AGI_ALLOW``, :mod:`ivr.peers`), read by the
listeners themselves: a listener bound beyond loopback without them stops
the engine here, before any port is opened.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ivr.errors import ConfigError
from ivr.flows.services import parse_services
from ivr.peers import ALLOW_VARIABLE, exposed, loopback_only, parse_allow

__all__ = ["Settings", "load_settings", "service_urls", "speech_languages"]

ENV_PREFIX = "IVR_"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``ivr serve`` needs to start."""

    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    max_calls: int = 5000
    command_timeout: float = 10.0
    env_timeout: float = 5.0
    hangup_grace: float = 5.0
    drain_timeout: float = 30.0
    log_format: str = "auto"
    log_level: str = "info"
    #: The event loop: ``asyncio`` (default) or ``uvloop`` (``pip install 'ivr[uvloop]'``;
    #: measured side by side with panoramisk in bench/README.md).
    event_loop: str = "asyncio"
    flows_dir: Path = Path("dialplans")
    prompts_dir: Path = Path("var/prompts")
    #: Where RECORD FILE puts callers' answers for recognition (shared with Asterisk).
    spool_dir: Path = Path("/var/spool/asterisk/ivr")
    #: Vosk models installed with ``ivr speech models install`` (Korean is built in).
    models_dir: Path = Path("var/models")
    #: Which languages' recognition models load (``IVR_SPEECH_LANGUAGES=ko,en``);
    #: empty: every language a flow uses. Each model costs memory (the Korean one
    #: about 480 MB), so an engine that serves one language loads one.
    speech_languages: str = ""
    #: The AudioSocket server for speech (Asterisk streams the caller's audio to it);
    #: port 0 turns speech over AudioSocket off (RECORD FILE is used instead).
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int = 4574
    #: How Asterisk reaches the AudioSocket server (host:port); empty: the two above.
    audiosocket_advertise: str = ""
    #: The demo account service for the billing flow; 0 turns it off. It is the
    #: HTTP service ``demo`` (``${service:demo}``) unless ``services`` names one.
    demo_api_port: int = 8089
    #: Named HTTP services flows reach by ``${service:NAME}``: ``IVR_SERVICES=
    #: crm=https://crm.example.com,other=http://10.0.0.5:8080/api`` (in the file: a
    #: mapping of names to base URLs, or the same text).
    services: str = ""
    #: The HTTP API (agents, queues, KPIs; tokens in IVR_API_TOKENS); port 0 turns it off.
    api_host: str = "127.0.0.1"
    api_port: int = 8090
    #: The console's users (``ivr users add``): names, roles, scopes, argon2 hashes.
    users_file: Path = Path("var/users.json")
    #: The console's session cookie is ``Secure``: ``auto`` over https (as a trusted
    #: proxy's X-Forwarded-Proto says), ``always`` (TLS ends before a proxy that
    #: does not say so). Plain http on 127.0.0.1 gets none, so the demo works.
    console_secure_cookie: str = "auto"
    #: The console's alerts: seconds a caller may wait for an agent (``IVR_ALERT_WAIT``;
    #: None, or empty: each queue's service-level seconds), and seconds a call with an
    #: agent may last (``IVR_ALERT_CALL``).
    alert_wait: float | None = None
    alert_call: float = 600.0
    #: Redis for routing (``redis://host:6379/0``, ``unix:///path``); empty: the
    #: engine runs its own redis-server in ``redis_dir``.
    redis_url: str = ""
    redis_dir: Path = Path("var/redis")
    #: Agents and queues (skills, service levels, escalation steps).
    routing_file: Path = Path("routing.yaml")
    #: Switches for ``announcement`` nodes (``ivr announcement on NAME``).
    announcements_file: Path = Path("var/announcements.json")
    #: Outside numbers a ``transfer`` may dial: comma-separated patterns
    #: (``+8210*,+1800*``). Empty: no outside transfers at all.
    transfer_allow: str = ""
    #: This engine's site, when several centres work as one pool (``IVR_SITE``):
    #: queues with ``prefer_site`` offer its callers to agents of the same site first.
    site: str = ""
    #: The number a callback's customer sees (the centre's; ``IVR_CALLBACK_CALLER_ID``).
    callback_caller_id: str = ""
    #: Where queues with ``record: true`` have their agent calls recorded (Asterisk
    #: writes there, the QA worker reads: one folder both see); never served over HTTP.
    recordings_dir: Path = Path("var/recordings")
    #: Rule packs for the checks after each recorded call, one per language
    #: (``<qa_rules>/ko.yaml``); a language without one is recorded, not checked.
    qa_rules: Path = Path("qa")
    #: A URL that gets each QA result with a violation (POST, JSON); empty: none.
    qa_webhook: str = ""
    #: Threads transcribing recorded calls (each leg of a call on its own).
    qa_workers: int = 2
    #: Dial strings for transfers: internal extensions and outside numbers.
    internal_dial: str = "PJSIP/{to}"
    external_dial: str = "PJSIP/{to}@trunk"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
#: The longest alert threshold, in seconds (a day); NaN and infinity are refused too.
_ALERT_MAX = 86400


def _coerce(name: str, raw: Any, source: str) -> Any:
    kind = _FIELDS[name].type
    if name == "services" and isinstance(raw, dict):  # a mapping in the settings file
        raw = ",".join(f"{key}={value}" for key, value in raw.items())
    try:
        if kind == "int":
            value: Any = int(raw)
        elif kind == "float":
            value = float(raw)
        elif kind == "float | None":
            value = None if raw is None or str(raw).strip() == "" else float(raw)
        elif kind == "Path":
            value = Path(str(raw))
        else:
            value = str(raw)
    except (TypeError, ValueError):
        shown = "float (or empty)" if kind == "float | None" else kind
        raise ConfigError(f"{source}: {raw!r} is not a valid {shown}") from None
    return value


def _check_peers(
    settings: Settings, sources: Mapping[str, str], environ: Mapping[str, str]
) -> None:
    """FastAGI and AudioSocket have no authentication: beyond loopback, only allowed peers."""
    if parse_allow(environ.get(ALLOW_VARIABLE, "")):
        return
    listeners = [("FastAGI", "agi_host")]
    if settings.audiosocket_port:
        listeners.append(("AudioSocket", "audiosocket_host"))
    for listener, key in listeners:
        host = getattr(settings, key)
        if not loopback_only(host):
            raise exposed(listener, host, sources.get(key, key))


def _check_languages(settings: Settings, where: str) -> None:
    for language in speech_languages(settings):
        if not re.fullmatch(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})?", language):
            raise ConfigError(
                f"{where}: {language!r} is not a language code; give codes such as ko or "
                "en, comma-separated"
            )


def _check_services(settings: Settings, where: str) -> None:
    try:
        parse_services(settings.services)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_console(settings: Settings, where: Callable[[str], str]) -> None:
    cookie = settings.console_secure_cookie
    if cookie not in ("auto", "always"):
        raise ConfigError(f"{where('console_secure_cookie')}: {cookie!r}; use auto or always")
    wait, call = settings.alert_wait, settings.alert_call
    if wait is not None and not 0 < wait <= _ALERT_MAX:
        raise ConfigError(
            f"{where('alert_wait')}: {wait:g}; give seconds, more than 0 and at most "
            f"{_ALERT_MAX} (or leave it empty: each queue's service-level seconds)"
        )
    if not 0 < call <= _ALERT_MAX:
        raise ConfigError(
            f"{where('alert_call')}: {call:g}; give seconds, more than 0 and at most {_ALERT_MAX}"
        )


def _check_qa(settings: Settings, where: Callable[[str], str]) -> None:
    if settings.qa_workers < 1:
        raise ConfigError(f"{where('qa_workers')}: must be at least 1")
    if settings.qa_webhook and not re.match(r"https?://", settings.qa_webhook):
        raise ConfigError(f"{where('qa_webhook')}: {settings.qa_webhook!r}; give an http(s) URL")


def _check(settings: Settings, sources: Mapping[str, str]) -> None:
    def where(key: str) -> str:
        return sources.get(key, key)

    if not 0 <= settings.agi_port <= 65535:
        raise ConfigError(f"{where('agi_port')}: {settings.agi_port} is not a port; use 0-65535")
    try:
        ipaddress.ip_address(settings.agi_host)
    except ValueError:
        if not settings.agi_host or any(c.isspace() for c in settings.agi_host):
            raise ConfigError(
                f"{where('agi_host')}: {settings.agi_host!r} is not an address; "
                "use 127.0.0.1 (default), 0.0.0.0 or a host name"
            ) from None
    _check_qa(settings, where)
    if settings.max_calls < 1:
        raise ConfigError(f"{where('max_calls')}: must be at least 1")
    for key in ("command_timeout", "drain_timeout"):
        if getattr(settings, key) < 0:
            raise ConfigError(f"{where(key)}: must be zero or more seconds (0: no limit)")
    for key in ("env_timeout", "hangup_grace"):
        if getattr(settings, key) <= 0:
            raise ConfigError(f"{where(key)}: must be more than zero seconds")
    if settings.log_format not in ("auto", "json", "console"):
        raise ConfigError(f"{where('log_format')}: use auto, json or console")
    if settings.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{where('log_level')}: use debug, info, warning or error")
    _check_loop(settings.event_loop, where("event_loop"))
    caller_id = settings.callback_caller_id
    if caller_id and not re.fullmatch(r"\+?[0-9]{3,20}", caller_id):
        raise ConfigError(
            f"{where('callback_caller_id')}: {caller_id!r} is not a number; give the "
            "centre's number, 3 to 20 digits with an optional '+'"
        )
    _check_languages(settings, where("speech_languages"))
    _check_console(settings, where)
    _check_services(settings, where("services"))
    if settings.site and not re.fullmatch(r"[A-Za-z0-9_.\-]{1,40}", settings.site):
        raise ConfigError(f"{where('site')}: {settings.site!r}; use letters, digits, '_', '-', '.'")


def _check_loop(loop: str, where: str) -> None:
    if loop not in ("asyncio", "uvloop"):
        raise ConfigError(f"{where}: {loop!r}; use asyncio or uvloop")
    if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ConfigError(
            f"{where}: uvloop is not installed; pip install 'ivr[uvloop]' (or leave it at asyncio)"
        )


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build and validate settings from the layers (``overrides`` are the CLI's)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in _FIELDS:
        key = ENV_PREFIX + name.upper()
        if key in environ:
            values[name] = _coerce(name, environ[key], key)
            sources[name] = f"environment variable {key}"
    if config_file is not None:
        try:
            data = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"{config_file}: cannot read it ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_file}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{config_file}: expected a mapping of settings")
        for name, raw in data.items():
            if name not in _FIELDS:
                allowed = ", ".join(sorted(_FIELDS))
                raise ConfigError(f"{config_file}: unknown key {name!r}; allowed: {allowed}")
            values[name] = _coerce(name, raw, f"{config_file}: {name}")
            sources[name] = f"{config_file}: {name}"
    for name, raw in (overrides or {}).items():
        if raw is not None:
            flag = "--" + name.removeprefix("agi_").replace("_", "-")
            values[name] = _coerce(name, raw, flag)
            sources[name] = flag
    settings = Settings(**values)
    _check(settings, sources)
    _check_peers(settings, sources, environ)
    return settings


def service_urls(settings: Settings) -> dict[str, str]:
    """The engine's HTTP services: base URLs by name. The demo account service is
    ``demo`` on its port, unless ``services`` names ``demo`` itself (or the port is 0)."""
    services = parse_services(settings.services)
    if "demo" not in services and settings.demo_api_port:
        services["demo"] = f"http://127.0.0.1:{settings.demo_api_port}"
    return services


def speech_languages(settings: Settings) -> frozenset[str]:
    """The languages whose models may load; empty: no limit."""
    return frozenset(p.strip() for p in settings.speech_languages.split(",") if p.strip())
