"""The engine's AMI user is granted exactly what the code consumes.

The events the engine subscribes to (``ami.on(...)``, ``ami.events(...)``) and the
actions it sends (``action(...)``, ``action_list(...)``, ``_send(...)``) are read from
the source; each is looked up in the class table of Asterisk's sources
(``ivr/emulator/ami_classes.py``) and must be covered by AMI_READ / AMI_WRITE, and
every class granted must be needed by one of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ivr.ami.permissions import AMI_READ, AMI_WRITE
from ivr.emulator.ami import AmiUser, users_from_manager_conf
from ivr.emulator.ami_classes import (
    ALL_CLASSES,
    EVENT_CLASSES,
    action_allowed,
    event_class,
    parse_classes,
)

ROOT = Path(__file__).resolve().parents[3]
ENGINE = ROOT / "ivr"
SUBSCRIBE = {"on", "events"}
SEND = {"action", "action_list", "_send"}
#: Events the client waits for as the end of its own actions (not through ``on``):
#: an Async Originate ends with OriginateResponse, an event like any other (class call).
AWAITED = {"OriginateResponse"}


def scan(source: str) -> tuple[set[str], set[str]]:
    """(events subscribed to, actions sent) in ``source``: string literals only."""
    events: set[str] = set()
    actions: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        literals = [
            a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
        ]
        if node.func.attr in SUBSCRIBE:  # whatever the receiver is called
            events.update(name for name in literals if name != "*")
        elif node.func.attr in SEND and literals:
            actions.add(literals[0])
    return events, actions


def engine_sources() -> dict[Path, str]:
    """Every module of the engine; the emulator plays Asterisk, so it is not the engine."""
    return {
        path: path.read_text(encoding="utf-8")
        for path in sorted(ENGINE.rglob("*.py"))
        if "emulator" not in path.parts and path.name != "testing.py"
    }


def consumed() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    events: dict[str, list[str]] = {name: ["ivr/ami/client.py"] for name in AWAITED}
    actions: dict[str, list[str]] = {}
    for path, source in engine_sources().items():
        found_events, found_actions = scan(source)
        where = str(path.relative_to(ROOT))
        for name in found_events:
            events.setdefault(name, []).append(where)
        for name in found_actions:
            actions.setdefault(name, []).append(where)
    return events, actions


class TestTheScan:
    def test_finds_what_the_engine_uses(self) -> None:
        """The scan sees the known subscriptions and actions (so it is not vacuous)."""
        events, actions = consumed()
        assert {"DeviceStateChange", "DialEnd", "Hangup"} <= set(events)
        assert {"Originate", "Hangup", "CoreShowChannels", "DeviceStateList", "Login"} <= set(
            actions
        )

    def test_a_system_subscription_is_caught(self) -> None:
        """The old presence subscribed ContactStatus (class system): the check rejects it."""
        events, _ = scan('def attach(ami):\n    ami.on("ContactStatus", handler)\n')
        assert events == {"ContactStatus"}
        assert event_class("ContactStatus") not in AMI_READ


class TestGranted:
    def test_every_subscribed_event_is_readable(self) -> None:
        """An event the engine waits for, in a class the user does not read, never comes."""
        events, _ = consumed()
        unknown = {name: where for name, where in events.items() if name not in EVENT_CLASSES}
        assert not unknown, f"look these events' classes up in Asterisk's source: {unknown}"
        unread = {
            name: (EVENT_CLASSES[name], where)
            for name, where in events.items()
            if EVENT_CLASSES[name] not in AMI_READ
        }
        assert not unread, f"subscribed, but their class is not in AMI_READ: {unread}"

    def test_every_action_sent_is_writable(self) -> None:
        """Asterisk answers Permission denied to an action none of whose classes is granted."""
        _, actions = consumed()
        denied = {n: w for n, w in actions.items() if not action_allowed(AMI_WRITE, n)}
        assert not denied, f"sent, but AMI_WRITE does not allow them: {denied}"

    def test_read_has_no_class_nothing_consumes(self) -> None:
        """No dtmf (every key on the PBX), agent, user, system ... unless the code reads it."""
        events, _ = consumed()
        needed = {EVENT_CLASSES[name] for name in events}
        assert set(AMI_READ) == needed
        assert AMI_READ == ("call",)

    def test_write_has_no_class_nothing_needs(self) -> None:
        """Each write class is the only one granted that allows some action sent."""
        _, actions = consumed()
        for granted in AMI_WRITE:
            fewer = [c for c in AMI_WRITE if c != granted]
            lost = [name for name in actions if not action_allowed(fewer, name)]
            assert lost, f"write class {granted!r} is not needed by any action"

    @pytest.mark.parametrize("dangerous", ["system", "command", "config", "all", "dtmf"])
    def test_never_dangerous(self, dangerous: str) -> None:
        assert dangerous not in AMI_READ and dangerous not in AMI_WRITE

    def test_emulator_default_user_is_the_engine_s(self) -> None:
        """Tests log in with exactly what production gets."""
        user = AmiUser("x")
        assert (user.read, user.write) == (frozenset(AMI_READ), frozenset(AMI_WRITE))

    def test_rendered_manager_conf_grants_the_same(self) -> None:
        """The manager.conf ``ivr asterisk-conf render`` writes, read back as Asterisk does."""
        from ivr.deploy import load_deployment, render
        from tests.unit.deploy.conftest import EXAMPLE, SECRETS

        deployment = load_deployment(EXAMPLE)
        users = users_from_manager_conf(render(deployment, environ=SECRETS)["manager.conf"])
        user = users[deployment.ami.user]
        assert user.secret == SECRETS["AMI_SECRET"]
        assert (user.read, user.write) == (frozenset(AMI_READ), frozenset(AMI_WRITE))


class TestClassNames:
    def test_get_perm(self) -> None:
        """read=/write= as manager.c's get_perm reads them."""
        assert parse_classes("call,originate") == {"call", "originate"}
        assert parse_classes("all") == set(ALL_CLASSES)
        assert parse_classes("none") == set()
        assert parse_classes("Call") == set()  # case-sensitive
        assert parse_classes("sys,call") == {"system", "call"}  # ast_instring's prefix quirk

    def test_manager_conf_last_key_wins_and_templates_are_skipped(self) -> None:
        users = users_from_manager_conf(
            "[general]\nenabled=yes\n[tpl](!)\nread=all\n"
            "[eng]\nsecret = s3 ; comment\nread=system\nread=call\nwrite=originate,call\n"
        )
        assert set(users) == {"eng"}
        assert (users["eng"].secret, users["eng"].read) == ("s3", {"call"})
        assert users["eng"].write == {"originate", "call"}
