"""The deployment file: where the engine runs, which numbers reach which flow, the
phones, the trunk, the AMI user and the safe path for each entry.

Loaded like flows (``yaml.safe_load`` semantics, positions kept, duplicate keys
refused) and validated by frozen pydantic models that forbid unknown keys, so a
bad file is reported as ``file:line:col: key: what is wrong; what is allowed``.
Every value that ends up in Asterisk's dialplan or configuration is held to a
pattern here: the grammar of those files has no general escape, so a value that
could change their meaning (``,`` ``;`` ``(`` newlines, ``${``) is refused, never
escaped. Secrets are never in the file, only the name of an environment
variable or a file that holds them; they are read at render time.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    model_validator,
)

from ivr.deploy.errors import DeploymentError
from ivr.flows.problems import FlowError, Problem, problem_at, read_source, validate_model
from ivr.flows.source import PathKey, Source

__all__ = [
    "Agent",
    "Ami",
    "Deployment",
    "Engine",
    "Entry",
    "Fallback",
    "Mailbox",
    "Paths",
    "Queue",
    "Sip",
    "Trunk",
    "load_deployment",
]


def _text_only(value: Any) -> Any:
    # YAML reads 1001 as a number and +8225550100 as 8225550100: a dropped '+'
    # or leading 0 would silently change which calls match, so insist on quotes.
    if isinstance(value, int | float) and not isinstance(value, bool):
        message = f"write it in quotes ('{value}'): YAML reads it as a number"
        raise ValueError(message)  # noqa: TRY004 - pydantic reports ValueError, not TypeError
    return value


_Q = BeforeValidator(_text_only)


def _not_ivr(name: str) -> str:
    if name.startswith("IVR_"):
        raise ValueError(
            f"{name}: a secret may not be an IVR_* variable: flows can read those; "
            "name it without the IVR_ prefix"
        )
    return name


def _p(pattern: str) -> StringConstraints:
    return StringConstraints(pattern=pattern, max_length=256)


#: Section, context, queue, class and endpoint names: letters, digits, '_' and '-'.
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"
Name = Annotated[str, _Q, _p(_NAME)]
#: What a caller dials: digits with an optional leading '+', or 's' (no number).
_NUMBER = r"^(\+?[0-9]{1,20}|s)$"
Number = Annotated[str, _Q, _p(_NUMBER)]
#: A flow id as ``agi://host:port/<flow>`` carries it.
_FLOW_ID = r"^[a-z][a-z0-9_-]{0,39}$"
FlowId = Annotated[str, _Q, _p(_FLOW_ID)]
#: A host name or IPv4 address (no ports, no spaces, no URL syntax).
_HOST = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,200}[A-Za-z0-9])?$"
Host = Annotated[str, _Q, _p(_HOST)]
#: A SIP user part.
_SIP_USER = r"^[A-Za-z0-9._+-]{1,64}$"
SipUser = Annotated[str, _Q, _p(_SIP_USER)]
#: A name shown as caller ID: no quotes, commas, semicolons or brackets.
_DISPLAY_NAME = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}$"
DisplayName = Annotated[str, _Q, _p(_DISPLAY_NAME)]
#: Absolute paths inside the Asterisk container.
_ABS_PATH = r"^/[A-Za-z0-9._/-]{0,200}$"
AbsPath = Annotated[str, _Q, _p(_ABS_PATH)]
#: ``box`` or ``box@context`` as VoiceMail() takes it.
_MAILBOX_REF = r"^[0-9]{1,10}(@[A-Za-z0-9][A-Za-z0-9_-]{0,39})?$"
MailboxRef = Annotated[str, _Q, _p(_MAILBOX_REF)]
_BOX = r"^[0-9]{1,10}$"
Box = Annotated[str, _Q, _p(_BOX)]
_ENV_NAME = r"^[A-Z_][A-Z0-9_]{0,63}$"
EnvName = Annotated[str, _Q, _p(_ENV_NAME), AfterValidator(_not_ivr)]
Port = Annotated[int, Field(ge=1, le=65535)]

_PATTERN_HELP = {
    _NAME: "letters, digits, '_' and '-' (up to 40)",
    _NUMBER: "digits with an optional leading '+' (in quotes), or 's'",
    _FLOW_ID: "a flow id: lower-case letters, digits, '_' and '-'",
    _HOST: "a host name or IPv4 address, nothing else",
    _SIP_USER: "letters, digits and . _ + -",
    _DISPLAY_NAME: "letters, digits, blanks and . _ -",
    _ABS_PATH: "an absolute path of letters, digits and . _ / -",
    _MAILBOX_REF: "box or box@context, e.g. 100@acme",
    _BOX: "digits",
    _ENV_NAME: "an environment variable name: A-Z, 0-9 and _",
}

#: Names Asterisk reserves for its own sections in the files we write.
RESERVED = frozenset({"general", "globals", "zonemessages", "modules", "logfiles"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_source(kind: str, env: str | None, file: str | None) -> None:
    if (env is None) == (file is None):
        raise ValueError(
            f"give exactly one of {kind}_env (an environment variable) or "
            f"{kind}_file (a file holding it); never the secret itself"
        )


class Engine(_Model):
    """How Asterisk reaches the engine."""

    host: Host = "127.0.0.1"
    agi_port: Port = 4573
    audiosocket_port: Port = 4574


class Paths(_Model):
    """Folders shared between the engine and Asterisk (as Asterisk sees them)."""

    prompts: AbsPath = "/var/lib/ivr/prompts"
    spool: AbsPath = "/var/spool/asterisk/ivr"
    moh: AbsPath = "/var/lib/ivr/moh"


class Sip(_Model):
    """The SIP transport and the RTP port range."""

    bind: Host = "127.0.0.1"  # phones elsewhere need 0.0.0.0: say so in the file
    port: Port = 5060
    rtp_start: Port = 10000
    rtp_end: Port = 10099
    external_address: Host | None = None
    local_nets: list[ipaddress.IPv4Network] = Field(default_factory=list)

    @model_validator(mode="after")
    def _range(self) -> Sip:
        if self.rtp_end <= self.rtp_start:
            raise ValueError("rtp_end must be above rtp_start")
        return self


class Ami(_Model):
    """The engine's AMI user: events, Originate; never system, command or config."""

    user: Name = "ivr"
    secret_env: EnvName | None = None
    secret_file: str | None = None
    bindaddr: ipaddress.IPv4Address = ipaddress.IPv4Address("127.0.0.1")
    port: Port = 5038
    permit: list[ipaddress.IPv4Network] = Field(
        default_factory=lambda: [ipaddress.IPv4Network("127.0.0.1/32")], min_length=1
    )

    @model_validator(mode="after")
    def _secret(self) -> Ami:
        _one_source("secret", self.secret_env, self.secret_file)
        return self


class Agent(_Model):
    """An agent's phone: a PJSIP endpoint named ``id`` reached at ``extension``."""

    id: Name
    extension: Number
    name: DisplayName | None = None
    password_env: EnvName | None = None
    password_file: str | None = None

    @model_validator(mode="after")
    def _secret(self) -> Agent:
        _one_source("password", self.password_env, self.password_file)
        return self


class Trunk(_Model):
    """The SIP provider: a registration, an identify by host, and an endpoint."""

    name: Name = "trunk"
    host: Host
    port: Port = 5060
    user: SipUser
    secret_env: EnvName | None = None
    secret_file: str | None = None
    registration: bool = True

    @model_validator(mode="after")
    def _secret(self) -> Trunk:
        _one_source("secret", self.secret_env, self.secret_file)
        return self


class Queue(_Model):
    """A plain Asterisk queue, used when the engine cannot take a call."""

    name: Name
    members: list[Name] | None = None  # agent ids; all agents when left out
    strategy: Literal["ringall", "leastrecent", "fewestcalls", "random", "rrmemory"] = "ringall"
    ring_timeout: Annotated[int, Field(ge=5, le=300)] = 20


class Mailbox(_Model):
    """A voicemail box (for fallbacks and the flows' ``voicemail`` nodes)."""

    box: Box
    context: Name = "ivr"
    name: DisplayName
    pin_env: EnvName | None = None
    pin_file: str | None = None

    @model_validator(mode="after")
    def _secret(self) -> Mailbox:
        _one_source("pin", self.pin_env, self.pin_file)
        return self


class Fallback(_Model):
    """Where a call goes when the engine is down or refuses it."""

    queue: Name | None = None
    voicemail: MailboxRef | None = None

    @model_validator(mode="after")
    def _one(self) -> Fallback:
        if (self.queue is None) == (self.voicemail is None):
            raise ValueError("give exactly one of queue (a queue name) or voicemail (box@context)")
        return self


class Entry(_Model):
    """Numbers that start one flow, and the safe path if the engine cannot run it."""

    name: Name
    flow: FlowId
    numbers: list[Number] = Field(min_length=1)
    fallback: Fallback


class Deployment(_Model):
    """The whole deployment file."""

    engine: Engine = Engine()
    flows_dir: str = "dialplans"
    audiosocket: bool = True
    music_on_hold: Name = "default"
    paths: Paths = Paths()
    sip: Sip = Sip()
    ami: Ami
    agents: list[Agent] = Field(default_factory=list)
    trunk: Trunk | None = None
    queues: list[Queue] = Field(default_factory=list)
    voicemail: list[Mailbox] = Field(default_factory=list)
    entries: list[Entry] = Field(min_length=1)

    _source: Source | None = PrivateAttr(default=None)

    @property
    def source(self) -> Source:
        """The file this came from, with positions (for errors found while rendering)."""
        if self._source is None:
            return Source("<deployment>", None)
        return self._source

    @property
    def base(self) -> Path:
        """The folder relative paths in the file are taken from."""
        return Path(self.source.file).parent

    def where(self, path: PathKey, message: str) -> Problem:
        """A problem at ``path`` in the file, the message prefixed with the dotted key."""
        key = ".".join(str(part) for part in path)
        return problem_at(self.source, path, f"{key}: {message}", key=True)

    def agent_ids(self) -> list[str]:
        return [agent.id for agent in self.agents]

    def queue_members(self, queue: Queue) -> list[str]:
        return queue.members if queue.members is not None else self.agent_ids()


def load_deployment(path: Path | str, text: str | None = None) -> Deployment:
    """Read, validate and cross-check a deployment file.

    Raises :class:`DeploymentError` listing every problem as ``file:line:col: ...``.
    """
    try:
        source = read_source(path, text)
        deployment = validate_model(source, Deployment, _hint)
    except FlowError as exc:
        raise DeploymentError(exc.problems) from None
    deployment._source = source
    problems = _cross_check(deployment)
    if problems:
        raise DeploymentError(problems)
    return deployment


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class that holds the value at ``loc`` (for "allowed keys" hints)."""
    model: type[BaseModel] = Deployment
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        found = [
            arg
            for arg in (field.annotation, *getattr(field.annotation, "__args__", ()))
            if isinstance(arg, type) and issubclass(arg, BaseModel)
        ]
        for arg in getattr(field.annotation, "__args__", ()):
            found += [a for a in getattr(arg, "__args__", ()) if isinstance(a, type)]
        models = [m for m in found if issubclass(m, BaseModel)]
        if not models:
            return None
        model = models[0]
    return model


def _hint(error: dict[str, Any]) -> str | None:
    if error["type"] == "extra_forbidden":
        model = _model_at(error["loc"])
        allowed = (
            ", ".join(model.model_fields) if model else "see asterisk_conf/deploy.example.yaml"
        )
        secret = (
            " (secrets never go in this file: use *_env or *_file)"
            if any(word in str(error["loc"][-1]).lower() for word in ("password", "secret", "pin"))
            else ""
        )
        return f"unknown key{secret}; allowed: {allowed}"
    if error["type"] == "string_pattern_mismatch":
        allowed = _PATTERN_HELP.get(error["ctx"]["pattern"], "see the example")
        return f"{error['input']!r} is not allowed here; use {allowed}"
    return None


def _unique(d: Deployment, items: Sequence[tuple[PathKey, str]], what: str) -> list[Problem]:
    seen: dict[str, PathKey] = {}
    problems = []
    for path, value in items:
        if value in seen:
            first = d.source.where(seen[value])
            problems.append(d.where(path, f"{what} {value!r} is already used (line {first.line})"))
        else:
            seen[value] = path
    return problems


def _cross_check(d: Deployment) -> list[Problem]:
    problems: list[Problem] = []
    agents = d.agent_ids()
    problems += _unique(d, [(("agents", i, "id"), a.id) for i, a in enumerate(d.agents)], "id")
    entries = [(("entries", i, "name"), e.name) for i, e in enumerate(d.entries)]
    problems += _unique(d, entries, "name")
    queues_named = [(("queues", i, "name"), q.name) for i, q in enumerate(d.queues)]
    problems += _unique(d, queues_named, "queue")
    numbers: list[tuple[PathKey, str]] = [
        (("agents", i, "extension"), a.extension) for i, a in enumerate(d.agents)
    ]
    for i, entry in enumerate(d.entries):
        numbers += [(("entries", i, "numbers", j), n) for j, n in enumerate(entry.numbers)]
    problems += _unique(d, numbers, "number")
    for path, name in [
        *((("queues", i, "name"), q.name) for i, q in enumerate(d.queues)),
        *((("voicemail", i, "context"), m.context) for i, m in enumerate(d.voicemail)),
        *((("agents", i, "id"), a.id) for i, a in enumerate(d.agents)),
        (("music_on_hold",), d.music_on_hold),
    ]:
        if name.lower() in RESERVED:
            problems.append(d.where(path, f"{name!r} is a name Asterisk reserves; choose another"))
    if d.trunk is not None and d.trunk.name in agents:
        problems.append(d.where(("trunk", "name"), "the trunk's name is also an agent's id"))
    for i, queue in enumerate(d.queues):
        for j, member in enumerate(queue.members or []):
            if member not in agents:
                problems.append(
                    d.where(("queues", i, "members", j), f"no agent {member!r}; agents: {agents}")
                )
    queues = [q.name for q in d.queues]
    boxes = [f"{m.box}@{m.context}" for m in d.voicemail]
    for i, entry in enumerate(d.entries):
        fallback = entry.fallback
        if fallback.queue is not None and fallback.queue not in queues:
            problems.append(
                d.where(
                    ("entries", i, "fallback", "queue"),
                    f"no queue {fallback.queue!r} under queues; declared: {queues}",
                )
            )
        if fallback.voicemail is not None:
            box = fallback.voicemail if "@" in fallback.voicemail else f"{fallback.voicemail}@ivr"
            if box not in boxes:
                problems.append(
                    d.where(
                        ("entries", i, "fallback", "voicemail"),
                        f"no mailbox {box!r} under voicemail; declared: {boxes}",
                    )
                )
    problems += _check_flows(d)
    return problems


def _check_flows(d: Deployment) -> list[Problem]:
    from ivr.flows.loader import load_flows

    folder = d.base / d.flows_dir
    if not folder.is_dir():
        return [d.where(("flows_dir",), f"no folder {folder}; give the folder of the flow files")]
    flows, flow_problems = load_flows([folder])
    problems = []
    for i, entry in enumerate(d.entries):
        if entry.flow not in flows:
            broken = [str(p) for p in flow_problems if Path(p.file).stem == entry.flow]
            why = f" (it has problems: {broken[0]})" if broken else ""
            problems.append(
                d.where(
                    ("entries", i, "flow"),
                    f"no valid flow {entry.flow!r} in {folder}{why}; flows: {sorted(flows)}",
                )
            )
    return problems
