"""Asterisk's modules as its own sources define them, read from ``asterisk_modules.json``.

The table is generated from Asterisk's git tree by
``python -m ivr.deploy.asterisk_modules_gen`` (see that module for how each
field is read) and says, per module: what it ``.requires`` (the loader refuses
to start it otherwise: ``Error loading module 'res_agi.so', missing
dependency: res_speech``), the dialplan applications and functions it
registers, the file extensions its formats play, its codec translators, the
``type=`` objects it adds to a sorcery file (pjsip.conf), its channel
technologies, the configuration files it reads, the AMI actions it registers,
the AMI events it raises by name and those it makes reach the manager by
forwarding a core topic to it (``DeviceStateChange``: res_manager_devicestate).
Modules built into the
``asterisk`` binary (``builtin``) and what ``main/`` registers (``core``) are
always there. :class:`ModuleTable` answers "which module do I load for this"
and closes a set of modules over ``.requires``; a name the table cannot place
raises :class:`~ivr.deploy.errors.ModuleTableError` rather than being guessed.
Dialplan names are matched without regard to case, as Asterisk does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ivr.deploy.errors import ModuleTableError

__all__ = [
    "TABLE_FILE",
    "Module",
    "ModuleTable",
    "default_table",
    "dialplan_names",
]

TABLE_FILE = Path(__file__).with_name("asterisk_modules.json")

_REGENERATE = (
    "regenerate it with `python -m ivr.deploy.asterisk_modules_gen --git-dir PATH --ref TAG` "
    "from a clone of github.com/asterisk/asterisk"
)


@dataclass(frozen=True)
class Module:
    """One row of the table."""

    name: str
    source: str
    builtin: bool
    requires: tuple[str, ...]
    optional: tuple[str, ...]
    applications: tuple[str, ...]
    functions: tuple[str, ...]
    file_extensions: tuple[str, ...]
    translators: tuple[tuple[str, str], ...]
    sorcery_types: tuple[str, ...]
    channel_types: tuple[str, ...]
    config_files: tuple[str, ...]
    ami_actions: tuple[str, ...]
    ami_events: tuple[str, ...]
    ami_forwards: tuple[str, ...]
    variant_of: str | None

    @classmethod
    def from_json(cls, name: str, row: Mapping[str, Any]) -> Module:
        def names(key: str) -> tuple[str, ...]:
            return tuple(row.get(key, ()))

        return cls(
            name=name,
            source=row["source"],
            builtin=bool(row.get("builtin", False)),
            requires=names("requires"),
            optional=names("optional"),
            applications=names("applications"),
            functions=names("functions"),
            file_extensions=names("file_extensions"),
            translators=tuple((src, dst) for src, dst in row.get("translators", ())),
            sorcery_types=names("sorcery_types"),
            channel_types=names("channel_types"),
            config_files=names("config_files"),
            ami_actions=names("ami_actions"),
            ami_events=names("ami_events"),
            ami_forwards=names("ami_forwards"),
            variant_of=row.get("variant_of"),
        )


class ModuleTable:
    """The modules of one Asterisk version, and the questions the renderer asks of them."""

    def __init__(self, data: Mapping[str, Any], *, origin: str = str(TABLE_FILE)) -> None:
        self.origin = origin
        self.ref: str = data["asterisk"]["ref"]
        self.commit: str = data["asterisk"]["commit"]
        self.modules = {name: Module.from_json(name, row) for name, row in data["modules"].items()}
        core = data.get("core", {})
        self.core_applications = frozenset(a.casefold() for a in core.get("applications", ()))
        self.core_functions = frozenset(f.casefold() for f in core.get("functions", ()))
        self.core_config_files = frozenset(core.get("config_files", ()))
        self.core_channel_types = frozenset(t.casefold() for t in core.get("channel_types", ()))
        self.core_ami_actions = frozenset(a.casefold() for a in core.get("ami_actions", ()))
        self.core_ami_events = frozenset(e.casefold() for e in core.get("ami_events", ()))

    @classmethod
    def load(cls, path: Path = TABLE_FILE) -> ModuleTable:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            message = f"{path}: cannot read the module table ({exc}); {_REGENERATE}"
            raise ModuleTableError(message) from exc
        return cls(data, origin=str(path))

    @property
    def version(self) -> str:
        return f"Asterisk {self.ref} ({self.commit[:12]})"

    def _unknown(self, what: str, wanted_by: str) -> ModuleTableError:
        return ModuleTableError(
            f"{self.origin}: {what}, wanted by {wanted_by}, is not in the table of "
            f"{self.version}; check the spelling, or if it is new in Asterisk, {_REGENERATE}"
        )

    def module(self, name: str, *, wanted_by: str) -> Module:
        """The module called ``name`` (``res_agi``; a trailing ``.so`` is allowed)."""
        found = self.modules.get(name.removesuffix(".so"))
        if found is None:
            raise self._unknown(f"module {name!r}", wanted_by)
        return found

    def _only(self, kind: str, name: str, found: list[str], wanted_by: str) -> str | None:
        if any(self.modules[m].builtin for m in found):
            return None
        if not found:
            raise self._unknown(f"{kind} {name!r}", wanted_by)
        if len(found) > 1:
            raise ModuleTableError(
                f"{self.origin}: {kind} {name!r}, wanted by {wanted_by}, is registered by "
                f"{', '.join(sorted(found))} in {self.version}; name the one to load "
                "explicitly in ivr/deploy/render.py"
            )
        return found[0]

    def _registering(self, attribute: str, name: str) -> list[str]:
        key = name.casefold()
        return [
            m.name
            for m in self.modules.values()
            if m.variant_of is None and key in (v.casefold() for v in getattr(m, attribute))
        ]

    def application(self, name: str, *, wanted_by: str) -> str | None:
        """The module registering dialplan application ``name``; None when the core does."""
        if name.casefold() in self.core_applications:
            return None
        return self._only("application", name, self._registering("applications", name), wanted_by)

    def function(self, name: str, *, wanted_by: str) -> str | None:
        """The module registering dialplan function ``name``; None when the core does."""
        if name.casefold() in self.core_functions:
            return None
        return self._only("function", name, self._registering("functions", name), wanted_by)

    def channel_type(self, name: str, *, wanted_by: str) -> str | None:
        """The channel driver of ``PJSIP`` in ``PJSIP/1001``; None for the core's (Local)."""
        if name.casefold() in self.core_channel_types:
            return None
        return self._only(
            "channel technology", name, self._registering("channel_types", name), wanted_by
        )

    def ami_action(self, name: str, *, wanted_by: str) -> str | None:
        """The module registering AMI action ``name``; None when the core (or a built-in
        module: ``Originate`` is main/manager.c's) does. Matched without regard to case,
        as ``action_find`` in main/manager.c does; an action no loaded module registers
        is answered ``Invalid/unknown command``."""
        if name.casefold() in self.core_ami_actions:
            return None
        return self._only("AMI action", name, self._registering("ami_actions", name), wanted_by)

    def ami_event(self, name: str, *, wanted_by: str) -> str | None:
        """The module without which AMI event ``name`` never reaches a manager session.

        First a module that forwards the event's core topic to the manager
        (``DeviceStateChange`` is made in main/devicestate.c but only
        res_manager_devicestate forwards it); then None for an event the core raises;
        then the module raising it.
        """
        forwarders = self._registering("ami_forwards", name)
        if forwarders:
            return self._only("AMI event", name, forwarders, wanted_by)
        if name.casefold() in self.core_ami_events:
            return None
        return self._only("AMI event", name, self._registering("ami_events", name), wanted_by)

    def file_format(self, extension: str, *, wanted_by: str) -> str | None:
        """The format module that reads and writes files ending ``.extension``."""
        found = [
            m.name
            for m in self.modules.values()
            if m.variant_of is None and extension in m.file_extensions
        ]
        return self._only("file format", extension, found, wanted_by)

    def translators(self, codec: str, *, wanted_by: str) -> list[str]:
        """The modules translating ``codec`` to and from signed linear (``slin``)."""
        found = sorted(
            m.name
            for m in self.modules.values()
            if {(codec, "slin"), ("slin", codec)} & set(m.translators)
        )
        if not found:
            raise self._unknown(f"a codec translator for {codec!r}", wanted_by)
        return found

    def sorcery_type(self, type_: str, *, prefix: str, wanted_by: str) -> str:
        """The module (named ``prefix...``) that registers object type ``type_``."""
        found = [
            m.name
            for m in self.modules.values()
            if m.name.startswith(prefix) and type_ in m.sorcery_types
        ]
        module = self._only(f"{prefix}* object type", type_, found, wanted_by)
        assert module is not None  # no built-in module is named res_pjsip*
        return module

    def config_readers(self, file: str) -> list[str] | None:
        """The modules naming ``file`` in their sources; None when the core reads it."""
        readers = [
            m.name for m in self.modules.values() if m.variant_of is None and file in m.config_files
        ]
        if file in self.core_config_files or any(self.modules[r].builtin for r in readers):
            return None
        return sorted(readers)

    def closure(self, wanted: Mapping[str, str]) -> dict[str, str]:
        """``wanted`` (module -> why) plus every module they require, transitively.

        Built-in modules are left out (they are always loaded). A required module
        that the table does not know raises :class:`ModuleTableError` naming the
        module that requires it.
        """
        out: dict[str, str] = {}
        pending = [(name.removesuffix(".so"), why) for name, why in wanted.items()]
        while pending:
            name, why = pending.pop(0)
            if name in out:
                continue
            module = self.module(name, wanted_by=why)
            if module.builtin:
                continue
            out[name] = why
            for dep in module.requires:
                pending.append((dep, f"required by {name}"))
        return out

    def missing_requirements(self, loaded: Iterable[str]) -> dict[str, list[str]]:
        """For each loaded module, the modules it requires that are neither loaded nor built in."""
        names = {n.removesuffix(".so") for n in loaded}
        missing: dict[str, list[str]] = {}
        for name in sorted(names):
            module = self.module(name, wanted_by="modules.conf")
            for dep in module.requires:
                if dep not in names and not self.module(dep, wanted_by=name).builtin:
                    missing.setdefault(name, []).append(dep)
        return missing


@cache
def default_table() -> ModuleTable:
    """The table shipped with the package (``ivr/deploy/asterisk_modules.json``)."""
    return ModuleTable.load()


_PRIORITY = re.compile(r"^\s*(?:exten|same)\s*=>?\s*(.*)$", re.IGNORECASE)
_FUNCTION_CALL = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\(")
_ASSIGNED_FUNCTION = re.compile(r"(?:^|,)\s*([A-Za-z_][A-Za-z0-9_]*)\([^=]*\)\s*=")


def dialplan_names(text: str) -> tuple[dict[str, int], dict[str, int]]:
    """Applications and functions an extensions.conf uses, each with its first line.

    Reads ``exten => ext,prio,App(args)`` and ``same => prio,App(args)``;
    functions are ``${NAME(...)}`` anywhere in a priority and ``NAME(...)=`` as
    the target of ``Set``/``MSet``.
    """
    applications: dict[str, int] = {}
    functions: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0]
        m = _PRIORITY.match(line)
        if m is None:
            continue
        fields = m.group(1).split(",", 2 if line.lstrip().lower().startswith("exten") else 1)
        step = fields[-1].strip()
        app = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", step)
        if app is None:
            continue
        applications.setdefault(app.group(1), number)
        for name in _FUNCTION_CALL.findall(step):
            functions.setdefault(name, number)
        if app.group(1).casefold() in ("set", "mset") and app.group(2):
            for name in _ASSIGNED_FUNCTION.findall(app.group(2)):
                functions.setdefault(name, number)
    return applications, functions
