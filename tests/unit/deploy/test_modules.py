"""modules.conf against Asterisk's own module table: nothing the calls use is left out.

With ``autoload=no`` Asterisk loads only what modules.conf names, and refuses a
module whose ``.requires`` is not loaded (Asterisk 22.9.0: ``Error loading
module 'res_agi.so', missing dependency: res_speech``, then every ``AGI()`` is
``No application 'AGI'``). The checks here read the committed table
(ivr/deploy/asterisk_modules.json) directly, not through the renderer's code.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from ivr.cli.deploy import render_command
from ivr.deploy import Deployment, render
from ivr.deploy.asterisk_modules import TABLE_FILE, ModuleTable, dialplan_names
from ivr.deploy.errors import ModuleTableError
from ivr.deploy.render import (
    ENGINE_AMI_ACTIONS,
    ENGINE_AMI_EVENTS,
    ENGINE_APPLICATIONS,
    ENGINE_FUNCTIONS,
    FILES,
    PLANNED_APPLICATIONS,
    module_plan,
)
from tests.unit.deploy.conftest import EXAMPLE, ROOT

TABLE: dict[str, Any] = json.loads(TABLE_FILE.read_text())
MODULES: dict[str, dict[str, Any]] = TABLE["modules"]

#: modules.conf as rendered before this table existed (the example deployment).
OLD_MODULES = [
    "pbx_config",
    "res_agi",
    "chan_pjsip",
    "res_pjsip",
    "app_dial",
    "res_sorcery_config",
    "res_sorcery_memory",
    "res_sorcery_astdb",
    "res_pjproject",
    "res_pjsip_session",
    "res_pjsip_authenticator_digest",
    "res_pjsip_outbound_authenticator_digest",
    "res_pjsip_endpoint_identifier_user",
    "res_pjsip_endpoint_identifier_ip",
    "res_pjsip_registrar",
    "res_pjsip_outbound_registration",
    "res_pjsip_pubsub",
    "res_pjsip_sdp_rtp",
    "res_pjsip_caller_id",
    "res_pjsip_dtmf_info",
    "res_pjsip_nat",
    "res_pjsip_rfc3326",
    "res_pjsip_logger",
    "res_rtp_asterisk",
    "codec_ulaw",
    "codec_alaw",
    "format_wav",
    "format_pcm",
    "format_sln",
    "res_timing_timerfd",
    "res_musiconhold",
    "bridge_simple",
    "bridge_native_rtp",
    "bridge_softmix",
    "bridge_builtin_features",
    "app_playback",
    "app_verbose",
    "app_queue",
    "app_voicemail",
    "app_chanspy",
    "func_channel",
    "func_callerid",
    "res_audiosocket",
    "app_audiosocket",
]


#: modules.conf as rendered before AMI actions and events were looked up (the example
#: deployment): on a real 22.9.0 the engine's DeviceStateList got ``Invalid/unknown
#: command`` and its AMI connection never came up.
BEFORE_AMI_MODULES = [
    *("app_dial", "app_queue", "app_verbose", "app_voicemail", "chan_pjsip", "pbx_config"),
    *("res_agi", "res_pjproject", "res_pjsip", "res_pjsip_authenticator_digest"),
    *("res_pjsip_pubsub", "res_pjsip_session", "res_sorcery_astdb", "res_sorcery_config"),
    *("res_sorcery_memory", "res_speech", "app_audiosocket", "app_chanspy", "app_mixmonitor"),
    *("bridge_builtin_features", "bridge_native_rtp", "bridge_simple", "codec_alaw"),
    *("codec_gsm", "codec_ulaw", "format_gsm", "format_wav", "func_channel", "res_audiosocket"),
    *("res_musiconhold", "res_pjsip_caller_id", "res_pjsip_endpoint_identifier_ip"),
    *("res_pjsip_endpoint_identifier_user", "res_pjsip_nat"),
    *("res_pjsip_outbound_authenticator_digest", "res_pjsip_outbound_registration"),
    *("res_pjsip_registrar", "res_pjsip_sdp_rtp", "res_rtp_asterisk", "res_timing_timerfd"),
]

#: Calls of the engine's AMI client (ivr/ami/client.py) that subscribe to events and
#: send actions, as tests/unit/ami/test_permissions.py reads them.
SUBSCRIBE = {"on", "events"}
SEND = {"action", "action_list", "_send"}
#: Events the client waits for as the end of its own action, not through ``on``: every
#: Async Originate ends with OriginateResponse.
AWAITED = {"OriginateResponse"}


def engine_sources() -> dict[str, str]:
    """ivr/'s modules but the emulator's (it plays Asterisk), by relative path."""
    return {
        str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
        for p in sorted((ROOT / "ivr").rglob("*.py"))
        if "emulator" not in p.parts and p.name != "testing.py"
    }


def ami_used(source: str) -> tuple[set[str], set[str]]:
    """(AMI actions sent, AMI events subscribed to) in ``source``: string literals passed
    to ``x.action("Name", ...)``, ``x.action_list(...)``, ``x._send(...)`` (the first),
    ``x.on("Name", ...)`` and ``x.events("A", "B")`` (all but ``"*"``)."""
    actions: set[str] = set()
    events: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        literals = [
            a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
        ]
        if node.func.attr in SEND and literals:
            actions.add(literals[0])
        elif node.func.attr in SUBSCRIBE:
            events.update(name for name in literals if name != "*")
    return actions, events


def engine_ami() -> tuple[set[str], set[str]]:
    actions: set[str] = set()
    events: set[str] = set(AWAITED)
    for source in engine_sources().values():
        found_actions, found_events = ami_used(source)
        actions |= found_actions
        events |= found_events
    return actions, events


def unmet_ami(loaded: Iterable[str], actions: Iterable[str], events: Iterable[str]) -> list[str]:
    """Every AMI action no loaded module (nor the core, nor a built-in module) registers,
    and every AMI event that cannot reach the manager: one a module forwards there
    needs that module; else the core or a loaded module must raise it."""
    have = set(loaded)

    def owners(key: str, name: str) -> set[str]:
        low = name.casefold()
        return {m for m, row in MODULES.items() if low in {v.casefold() for v in row.get(key, ())}}

    def ok(found: set[str]) -> bool:
        return bool(found & have) or any(map(is_builtin, found))

    problems = []
    for name in actions:
        found = owners("ami_actions", name)
        core = name.casefold() in {a.casefold() for a in TABLE["core"]["ami_actions"]}
        assert found or core, f"AMI action {name} is registered by no module of the table"
        if not core and not ok(found):
            problems.append(f"AMI action {name}: needs one of {sorted(found)}")
    for name in events:
        forwarders = owners("ami_forwards", name)
        if forwarders:
            if not ok(forwarders):
                problems.append(f"AMI event {name}: needs one of {sorted(forwarders)}")
            continue
        found = owners("ami_events", name)
        core = name.casefold() in {e.casefold() for e in TABLE["core"]["ami_events"]}
        assert found or core, f"AMI event {name} is raised by no module of the table"
        if not core and not ok(found):
            problems.append(f"AMI event {name}: needs one of {sorted(found)}")
    return sorted(problems)


def loaded_modules(modules_conf: str) -> dict[str, str]:
    """``{module: "load" | "require"}`` from modules.conf text."""
    found = re.findall(r"^(load|require)\s*=>\s*(\w+)\.so\b", modules_conf, re.M)
    return {name: kind for kind, name in found}


def registered(kind: str, name: str) -> set[str]:
    """Modules registering application/function ``name`` ("core" for main/)."""
    key = name.casefold()
    found = {m for m, row in MODULES.items() if key in {v.casefold() for v in row.get(kind, ())}}
    if key in {v.casefold() for v in TABLE["core"][kind]}:
        found.add("core")
    return found


def is_builtin(name: str) -> bool:
    return bool(MODULES.get(name, {}).get("builtin"))


def unmet(
    loaded: Iterable[str], applications: Iterable[str], functions: Iterable[str]
) -> list[str]:
    """Every application / function not registered by a loaded module, and every
    ``.requires`` of a loaded module (transitively) that is not loaded."""
    have = set(loaded)
    problems = []
    for kind, names in (("applications", applications), ("functions", functions)):
        for name in names:
            owners = registered(kind, name)
            assert owners, f"{name} is registered by no module of the table"
            if not owners & have and "core" not in owners and not any(map(is_builtin, owners)):
                problems.append(f"{name}: needs one of {sorted(owners)}")
    for name in sorted(have):
        assert name in MODULES, f"modules.conf loads {name}, which Asterisk does not have"
        for dep in MODULES[name].get("requires", ()):
            if dep not in have and not is_builtin(dep):
                problems.append(f"{name} requires {dep}")
    return problems


def used_by_dialplan(extensions_conf: str) -> tuple[set[str], set[str]]:
    """Applications (``exten => x,1,App(`` / ``same => n,App(``) and ``${FUNC(`` used."""
    apps = set(re.findall(r"^\s*exten\s*=>\s*[^,]+,[^,]+,(\w+)\(", extensions_conf, re.M))
    apps |= set(re.findall(r"^\s*same\s*=>\s*[^,]+,(\w+)\(", extensions_conf, re.M))
    functions = set(re.findall(r"\$\{(\w+)\(", extensions_conf))
    return apps, functions


@pytest.fixture
def rendered(example: Deployment, secrets: dict[str, str]) -> dict[str, str]:
    return render(example, environ=secrets)


def engine_applications(example: Deployment) -> set[str]:
    return {a for a in ENGINE_APPLICATIONS if a != "AudioSocket" or example.audiosocket}


class TestModulesConf:
    def test_everything_the_calls_use_is_loaded_with_what_it_requires(
        self, rendered: dict[str, str], example: Deployment
    ) -> None:
        """extensions.conf's applications and functions, the engine's EXECs and
        functions, and every .requires of what is loaded, transitively."""
        apps, functions = used_by_dialplan(rendered["extensions.conf"])
        assert {"AGI", "Dial", "Queue", "VoiceMail", "Answer", "GotoIf"} <= apps
        loaded = loaded_modules(rendered["modules.conf"])
        problems = unmet(
            loaded, apps | engine_applications(example), functions | set(ENGINE_FUNCTIONS)
        )
        assert problems == []
        assert "res_speech" in loaded  # res_agi's .requires in Asterisk 22

    def test_the_check_fails_on_the_modules_conf_of_before(
        self, rendered: dict[str, str], example: Deployment
    ) -> None:
        """The old file loaded res_agi without res_speech: Asterisk 22 refused res_agi."""
        apps, functions = used_by_dialplan(rendered["extensions.conf"])
        problems = unmet(OLD_MODULES, apps | engine_applications(example), functions)
        assert "res_agi requires res_speech" in problems

    def test_a_required_module_has_its_requirements_required(
        self, rendered: dict[str, str]
    ) -> None:
        """`require` for the call path, and for what those modules require."""
        loaded = loaded_modules(rendered["modules.conf"])
        for name in ("pbx_config", "res_agi", "chan_pjsip", "res_pjsip", "app_dial"):
            assert loaded[name] == "require", name
        for name, kind in loaded.items():
            if kind == "require":
                for dep in MODULES[name].get("requires", ()):
                    assert is_builtin(dep) or loaded[dep] == "require", (name, dep)
        # Without a SIP authenticator res_pjsip takes every request unauthenticated.
        assert loaded["res_pjsip_authenticator_digest"] == "require"
        assert loaded["app_audiosocket"] == "load"  # some builds lack it: speech falls back

    def test_every_pjsip_object_type_is_registered_by_a_loaded_module(
        self, rendered: dict[str, str]
    ) -> None:
        loaded = loaded_modules(rendered["modules.conf"])
        types = set(re.findall(r"^type=(\S+)$", rendered["pjsip.conf"], re.M))
        assert {"endpoint", "aor", "auth", "identify", "registration"} <= types
        for type_ in types:
            owners = {m for m in loaded if type_ in MODULES[m].get("sorcery_types", ())} & {
                m for m in MODULES if m.startswith("res_pjsip")
            }
            assert owners, f"pjsip.conf type={type_} is registered by no loaded module"

    def test_every_rendered_file_is_read_by_something_loaded(
        self, rendered: dict[str, str]
    ) -> None:
        """Each file names a loaded module (or the core / a built-in module) as reader."""
        loaded = loaded_modules(rendered["modules.conf"])
        for name in FILES:
            if name == "modules.conf":
                continue  # main/loader.c reads it (AST_MODULE_CONFIG)
            readers = {m for m, row in MODULES.items() if name in row.get("config_files", ())}
            ok = name in TABLE["core"]["config_files"] or any(map(is_builtin, readers))
            assert ok or readers & set(loaded), f"{name}: read by {sorted(readers)}"

    def test_codecs_and_file_formats_are_loaded(self, rendered: dict[str, str]) -> None:
        """ulaw/alaw phones hear wav (signed linear) prompts; gsm sound files play."""
        loaded = loaded_modules(rendered["modules.conf"])
        for codec in ("ulaw", "alaw", "gsm"):
            assert any([codec, "slin"] in MODULES[m].get("translators", ()) for m in loaded), codec
        for ext in ("wav", "gsm"):
            assert any(ext in MODULES[m].get("file_extensions", ()) for m in loaded), ext

    def test_the_table_lookup_agrees_with_the_plan(
        self, example: Deployment, rendered: dict[str, str]
    ) -> None:
        """module_plan (what the renderer writes) is what modules.conf holds."""
        files = {k: v for k, v in rendered.items() if k != "modules.conf"}
        plan = module_plan(example, files)
        loaded = loaded_modules(rendered["modules.conf"])
        assert {n: "require" if m.required else "load" for n, m in plan.items()} == loaded

    def test_without_trunk_or_audiosocket_their_modules_stay_out(
        self, example: Deployment, secrets: dict[str, str]
    ) -> None:
        """No registration/identify sections, no outbound auth, no AudioSocket: not loaded,
        and what remains is still complete."""
        bare = example.model_copy(update={"trunk": None, "audiosocket": False})
        files = render(bare, environ=secrets)
        loaded = loaded_modules(files["modules.conf"])
        for name in (
            "res_pjsip_outbound_registration",
            "res_pjsip_endpoint_identifier_ip",
            "res_pjsip_outbound_authenticator_digest",
            "app_audiosocket",
            "res_audiosocket",
        ):
            assert name not in loaded, name
        apps, functions = used_by_dialplan(files["extensions.conf"])
        engine = set(ENGINE_APPLICATIONS) - {"AudioSocket"}
        assert unmet(loaded, apps | engine, functions | set(ENGINE_FUNCTIONS)) == []

    def test_every_ami_action_sent_and_event_consumed_has_its_module(
        self, rendered: dict[str, str]
    ) -> None:
        """What ivr/ sends and subscribes to (read from the code, not from
        ENGINE_AMI_*), checked against the table: a new action or event whose module is
        not loaded fails here."""
        actions, events = engine_ami()
        assert {"Login", "Originate", "CoreShowChannels", "DeviceStateList"} <= actions
        assert {"DeviceStateChange", "DialEnd", "Hangup", "OriginateResponse"} <= events
        loaded = loaded_modules(rendered["modules.conf"])
        assert unmet_ami(loaded, actions, events) == []
        assert "res_manager_devicestate" in loaded

    def test_the_ami_check_fails_on_the_modules_conf_of_before(self) -> None:
        """The file before: no res_manager_devicestate, so DeviceStateList was
        ``Invalid/unknown command`` and no DeviceStateChange came (a real 22.9.0)."""
        actions, events = engine_ami()
        assert unmet_ami(BEFORE_AMI_MODULES, actions, events) == [
            "AMI action DeviceStateList: needs one of ['res_manager_devicestate']",
            "AMI event DeviceStateChange: needs one of ['res_manager_devicestate']",
        ]

    def test_the_ami_modules_say_which_action_and_event(self, rendered: dict[str, str]) -> None:
        line = next(
            x for x in rendered["modules.conf"].splitlines() if "res_manager_devicestate" in x
        )
        assert line.startswith("load => res_manager_devicestate.so ; ")
        assert "engine: AMI action DeviceStateList (ivr/ami/client.py" in line
        assert "engine: AMI event DeviceStateChange (ivr/centre/presence.py" in line

    def test_a_loaded_module_says_why(self, rendered: dict[str, str]) -> None:
        lines = [line for line in rendered["modules.conf"].splitlines() if line.startswith("load")]
        assert lines
        assert all(re.fullmatch(r"load => \w+\.so ; \S.*", line) for line in lines)
        assert "require => res_speech.so ; required by res_agi" in rendered["modules.conf"]


def last_pass_result(modules_conf: str, failing: set[str]) -> int:
    """``res`` of ``load_resource_list`` (main/loader.c, 22.9.0) when the modules in
    ``failing`` cannot be loaded (their ``.so`` is absent) and the rest can.

    Every pass walks the load order (modules.conf's order, ``AST_LIST_INSERT_TAIL`` in
    ``add_to_load_order``); a module that loads leaves the list. A failing module gives
    ``AST_MODULE_LOAD_DECLINE`` (``res = -1``) or, when required,
    ``AST_MODULE_LOAD_FAILURE``, which sets ``res = -2`` only in the last pass, and
    nothing stops the walk there: a later DECLINE sets ``res`` back to -1. -2 stops
    start-up; -1 is ``Some non-required modules failed to load.`` and Asterisk goes on.
    """
    res = 0
    for kind, name in re.findall(r"^(load|require)\s*=>\s*(\w+)\.so\b", modules_conf, re.M):
        if name in failing:
            res = -2 if kind == "require" else -1
    return res


class TestRequiredModulesStopStartUp:
    """A failed ``require`` stops Asterisk only if no ``load`` line after it fails too
    (a real 22.9.0 started "Ready" with six required PJSIP modules missing)."""

    def test_require_lines_come_last(self, rendered: dict[str, str]) -> None:
        kinds = re.findall(r"^(load|require) =>", rendered["modules.conf"], re.M)
        assert kinds == sorted(kinds)  # every "load" before every "require"
        assert "require" in kinds and "load" in kinds

    def test_a_failed_require_with_a_failed_load_still_stops_start_up(
        self, rendered: dict[str, str]
    ) -> None:
        """app_audiosocket missing (a load) and res_pjsip_session missing (a require)."""
        text = rendered["modules.conf"]
        assert last_pass_result(text, {"app_audiosocket", "res_pjsip_session"}) == -2
        assert last_pass_result(text, {"app_audiosocket"}) == -1
        old_order = "\n".join(
            sorted(text.splitlines(), key=lambda line: not line.startswith("require"))
        )
        assert last_pass_result(old_order, {"app_audiosocket", "res_pjsip_session"}) == -1


class TestEngineListsCannotDrift:
    """ENGINE_APPLICATIONS and ENGINE_FUNCTIONS list what ivr/ runs in Asterisk."""

    @staticmethod
    def _source() -> str:
        files = sorted((ROOT / "ivr").rglob("*.py"))
        return "\n".join(
            p.read_text() for p in files if "emulator" not in p.parts and p.name != "testing.py"
        )

    def test_every_application_the_engine_runs_is_listed(self) -> None:
        source = self._source()
        used = set(re.findall(r"\.exec\(\s*\"(\w+)\"", source))
        used |= set(re.findall(r"\bapplication=\"(\w+)\"", source))
        assert {"Dial", "VoiceMail", "AudioSocket", "ChanSpy"} <= used
        assert used <= set(ENGINE_APPLICATIONS)
        assert set(ENGINE_APPLICATIONS) - used <= PLANNED_APPLICATIONS
        for app, where in ENGINE_APPLICATIONS.items():  # each says where: true still?
            for path in re.findall(r"ivr/[\w/]+\.py", where):
                assert f'"{app}"' in (ROOT / path).read_text(), (app, path)

    def test_every_function_the_engine_reads_or_writes_is_listed(self) -> None:
        source = self._source()
        used = set(re.findall(r"_variable\(\s*\"(?:\$\{)?(\w+)\(", source))
        assert used == set(ENGINE_FUNCTIONS)
        for func, where in ENGINE_FUNCTIONS.items():
            for path in re.findall(r"ivr/[\w/]+\.py", where):
                assert f'"{func}(' in (ROOT / path).read_text(), (func, path)

    def test_every_ami_action_the_engine_sends_is_listed(self) -> None:
        actions, _ = engine_ami()
        assert actions == set(ENGINE_AMI_ACTIONS)
        for action, where in ENGINE_AMI_ACTIONS.items():  # the file first named sends it
            path = re.match(r"ivr/[\w/]+\.py", where)
            assert path is not None, action
            assert f'"{action}"' in (ROOT / path.group()).read_text(), (action, path.group())

    def test_every_ami_event_the_engine_consumes_is_listed(self) -> None:
        _, events = engine_ami()
        assert events == set(ENGINE_AMI_EVENTS)
        for event, where in ENGINE_AMI_EVENTS.items():
            for path in re.findall(r"ivr/[\w/]+\.py", where):
                assert re.search(rf"\b{event}\b", (ROOT / path).read_text()), (event, path)

    def test_the_scan_sees_a_new_action_and_a_new_event(self) -> None:
        """So that the two tests above are not vacuous."""
        source = (
            "async def f(ami):\n"
            '    await ami.action("QueueStatus", {})\n'
            '    ami.on("QueueMemberStatus", h)\n'
            '    async with ami.events("PresenceStateChange", "DialEnd") as s:\n'
            "        pass\n"
        )
        assert ami_used(source) == (
            {"QueueStatus"},
            {"QueueMemberStatus", "PresenceStateChange", "DialEnd"},
        )

    def test_planned_applications_are_loaded_too(self, rendered: dict[str, str]) -> None:
        """MixMonitor / StopMixMonitor (call recording) need app_mixmonitor already."""
        assert "app_mixmonitor" in loaded_modules(rendered["modules.conf"])


def _table(modules: dict[str, dict[str, Any]]) -> ModuleTable:
    data = {
        "asterisk": {"ref": "22.9.0", "commit": "0" * 40},
        "core": {"applications": ["Answer"], "functions": [], "config_files": []},
        "modules": {name: {"source": f"res/{name}.c", **row} for name, row in modules.items()},
    }
    return ModuleTable(data, origin="test-table.json")


class TestUnknownNamesFailLoudly:
    def test_a_requires_naming_a_module_the_table_lacks(self) -> None:
        """res_a requires res_gone, which no source defines: the closure refuses."""
        table = _table({"res_a": {"requires": ["res_gone"]}})
        with pytest.raises(ModuleTableError) as caught:
            table.closure({"res_a": "the dialplan"})
        message = str(caught.value)
        assert "'res_gone'" in message and "required by res_a" in message
        assert "asterisk_modules_gen" in message and message.startswith("test-table.json:")

    def test_every_requires_in_the_committed_table_names_a_module_of_it(self) -> None:
        for name, row in MODULES.items():
            for dep in row.get("requires", ()):
                assert dep in MODULES, f"{name} requires {dep}, not in the table"

    def test_an_application_no_module_registers(self) -> None:
        table = _table({"app_x": {"applications": ["X"]}})
        assert table.application("x", wanted_by="t") == "app_x"  # Asterisk ignores case
        assert table.application("Answer", wanted_by="t") is None  # the core's
        with pytest.raises(ModuleTableError, match=r"application 'Dail', wanted by t"):
            table.application("Dail", wanted_by="t")

    def test_an_application_two_modules_register_must_be_chosen(self) -> None:
        table = _table({"app_a": {"applications": ["X"]}, "app_b": {"applications": ["X"]}})
        with pytest.raises(ModuleTableError, match="registered by app_a, app_b"):
            table.application("X", wanted_by="t")

    def test_build_variants_do_not_make_voicemail_ambiguous(self) -> None:
        """app_voicemail_imap/_odbc are symlinks to app_voicemail.c in Asterisk's tree."""
        table = ModuleTable.load()
        assert table.application("VoiceMail", wanted_by="t") == "app_voicemail"
        assert MODULES["app_voicemail_imap"]["variant_of"] == "app_voicemail"

    def test_an_ami_action_or_event_the_table_cannot_place(self) -> None:
        table = _table(
            {
                "res_fwd": {"ami_forwards": ["DevChange"], "ami_actions": ["DevList"]},
                "res_raiser": {"ami_events": ["DevChange", "Other"]},
                "manager": {"builtin": True, "ami_events": ["OriginateResponse"]},
            }
        )
        assert table.ami_action("devlist", wanted_by="t") == "res_fwd"  # strcasecmp
        assert table.ami_event("DevChange", wanted_by="t") == "res_fwd"  # forwarder first
        assert table.ami_event("Other", wanted_by="t") == "res_raiser"
        assert table.ami_event("OriginateResponse", wanted_by="t") is None  # built in
        with pytest.raises(ModuleTableError, match=r"AMI action 'NoSuchAction', wanted by t"):
            table.ami_action("NoSuchAction", wanted_by="t")
        with pytest.raises(ModuleTableError, match=r"AMI event 'NoSuchEvent', wanted by t"):
            table.ami_event("NoSuchEvent", wanted_by="t")

    def test_a_new_engine_ami_action_loads_its_module(
        self, example: Deployment, secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """QueueStatus (apps/app_queue.c) and PresenceStateChange (forwarded by
        res_manager_presencestate): their modules come in, each saying why."""
        render_module = importlib.import_module("ivr.deploy.render")
        monkeypatch.setattr(
            render_module, "ENGINE_AMI_ACTIONS", {**ENGINE_AMI_ACTIONS, "QueueStatus": "x"}
        )
        monkeypatch.setattr(
            render_module, "ENGINE_AMI_EVENTS", {**ENGINE_AMI_EVENTS, "PresenceStateChange": "y"}
        )
        text = render(example, environ=secrets)["modules.conf"]
        assert (
            "load => res_manager_presencestate.so ; engine: AMI event PresenceStateChange (y)"
            in text
        )
        assert re.search(
            r"^require => app_queue\.so ; .*engine: AMI action QueueStatus \(x\)", text, re.M
        )
        monkeypatch.setattr(render_module, "ENGINE_AMI_ACTIONS", {"NoSuchAction": "a typo"})
        with pytest.raises(ModuleTableError, match="AMI action 'NoSuchAction'"):
            render(example, environ=secrets)

    def test_render_refuses_an_engine_application_asterisk_lacks(
        self,
        example: Deployment,
        secrets: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        apps = {**ENGINE_APPLICATIONS, "NoSuchApp": "a typo"}
        render_module = importlib.import_module("ivr.deploy.render")
        monkeypatch.setattr(render_module, "ENGINE_APPLICATIONS", apps)
        with pytest.raises(ModuleTableError, match="application 'NoSuchApp'"):
            render(example, environ=secrets)
        for key, value in secrets.items():
            monkeypatch.setenv(key, value)
        args = type("Args", (), {"deploy": EXAMPLE, "outdir": tmp_path / "out", "demo": False})()
        assert render_command(args) == 2
        assert "NoSuchApp" in capsys.readouterr().err
        assert not (tmp_path / "out").exists()


class TestTableFromTheSources:
    """Facts read from Asterisk 22.9.0's sources, as the issue observed them."""

    def test_origin(self) -> None:
        assert TABLE["asterisk"] == {
            "ref": "22.9.0",
            "commit": "da123773c723ed1263ff74569544f7ee84626c1a",
        }

    def test_res_agi_requires_res_speech_and_registers_agi(self) -> None:
        assert MODULES["res_agi"]["requires"] == ["res_speech"]
        assert registered("applications", "AGI") == {"res_agi"}

    def test_where_the_dialplan_names_live(self) -> None:
        assert registered("functions", "CHANNEL") == {"func_channel"}
        assert registered("functions", "CALLERID") == {"func_callerid"}
        assert registered("applications", "Set") == {"core"}
        assert registered("applications", "MixMonitor") == {"app_mixmonitor"}
        assert MODULES["chan_pjsip"]["requires"] == [
            "res_pjsip",
            "res_pjsip_session",
            "res_pjsip_pubsub",
        ]
        assert MODULES["extconfig"]["builtin"] is True  # main/config.c's AST_MODULE

    def test_ami_actions_and_events(self) -> None:
        """DeviceStateList and DeviceStateChange's forwarding are res_manager_devicestate's;
        the engine's other actions are main/manager.c's (the built-in module manager)."""
        devstate = MODULES["res_manager_devicestate"]
        assert devstate["ami_actions"] == ["DeviceStateList"]
        assert devstate["ami_forwards"] == ["DeviceStateChange"]
        assert devstate["source"] == "res/res_manager_devicestate.c"
        presence = MODULES["res_manager_presencestate"]
        assert (presence["ami_actions"], presence["ami_forwards"]) == (
            ["PresenceStateList"],
            ["PresenceStateChange"],
        )
        assert MODULES["manager"]["builtin"] is True
        for action in ("Login", "Logoff", "Ping", "Originate", "Hangup", "CoreShowChannels"):
            assert action in MODULES["manager"]["ami_actions"], action
        assert "OriginateResponse" in MODULES["manager"]["ami_events"]
        assert {"DialEnd", "Hangup", "DeviceStateChange"} <= set(TABLE["core"]["ami_events"])
        assert "DeviceStateList" not in TABLE["core"]["ami_actions"]
        assert MODULES["chan_pjsip"]["ami_actions"] == ["PJSIPHangup"]  # through a variable
        assert "PJSIPShowEndpoints" in MODULES["res_pjsip"]["ami_actions"]  # a #define
        table = ModuleTable.load()
        assert table.ami_action("DeviceStateList", wanted_by="t") == "res_manager_devicestate"
        assert table.ami_event("DeviceStateChange", wanted_by="t") == "res_manager_devicestate"
        assert table.ami_action("Originate", wanted_by="t") is None

    def test_dialplan_names_reads_applications_and_functions(self) -> None:
        text = (
            "[c]\nexten => s,1,Set(CHANNEL(language)=ko)\n"
            " same => n,GotoIf($[${LEN(${X})} > 1]?a) ; Comment(x)\n"
            "exten => 5,n(x),NoOp\n"
        )
        apps, functions = dialplan_names(text)
        assert set(apps) == {"Set", "GotoIf", "NoOp"}
        assert set(functions) == {"CHANNEL", "LEN"}


class TestStartupFiles:
    NEW = ("cdr.conf", "cel.conf", "features.conf", "acl.conf", "udptl.conf", "ccss.conf")

    def test_rendered(self, rendered: dict[str, str]) -> None:
        for name in (*self.NEW, "indications.conf"):
            assert name in FILES and name in rendered

    def test_indications_have_a_default_country_zone(self, rendered: dict[str, str]) -> None:
        text = rendered["indications.conf"]
        country = re.search(r"^country=(\w+)$", text, re.M)
        assert country is not None
        zone = text.split(f"[{country.group(1)}]\n", 1)[1]
        keys = {line.split("=", 1)[0] for line in zone.splitlines() if "=" in line}
        assert {"ringcadence", "dial", "busy", "ring", "congestion"} <= keys

    @pytest.mark.parametrize("name", [*NEW, "indications.conf", "modules.conf"])
    def test_asterisklint_reads_them_without_a_word(
        self, example: Deployment, secrets: dict[str, str], tmp_path: Path, name: str
    ) -> None:
        """asterisklint's generic config parser (it has no per-file checks for these)."""
        (tmp_path / name).write_text(render(example, environ=secrets)[name])
        check = (
            "import sys\n"
            "from asterisklint import FileConfigParser\n"
            "from asterisklint.defines import MessageDefManager\n"
            "p = FileConfigParser(); p.include(sys.argv[1]); n = len(list(p))\n"
            "print(n, sorted(MessageDefManager.raised))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", check, name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert result.stderr == ""
        assert result.stdout.split(" ", 1)[1].strip() == "[]"

    def test_asterisklint_does_complain_about_a_bad_line(self, tmp_path: Path) -> None:
        (tmp_path / "x.conf").write_text("[general]\nthis is not a setting\n")
        check = (
            "import sys\n"
            "from asterisklint import FileConfigParser\n"
            "from asterisklint.defines import MessageDefManager\n"
            "p = FileConfigParser(); p.include(sys.argv[1]); list(p)\n"
            "print(sorted(MessageDefManager.raised))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", check, "x.conf"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "E_CONF_BAD_LINE" in result.stdout
