"""``ivr users``: the console's users file from the command line (argon2, mode 0600)."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from ivr.cli import main
from ivr.console.roles import Scope
from ivr.console.users import UserStore

SECRET = "correct horse battery"


def run(monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: str = SECRET + "\n") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["users", *args])


@pytest.fixture
def users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The users file, named by IVR_USERS_FILE as the engine reads it."""
    path = tmp_path / "var" / "users.json"
    monkeypatch.setenv("IVR_USERS_FILE", str(path))
    return path


class TestUsers:
    def test_add_writes_an_argon2_hash_in_a_0600_file(
        self, users: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run(monkeypatch, ["add", "admin", "--role", "admin", "--password-stdin"]) == 0
        assert stat.S_IMODE(users.stat().st_mode) == 0o600
        stored = json.loads(users.read_text())["users"]["admin"]
        assert stored["password"].startswith("$argon2id$") and SECRET not in users.read_text()
        record = UserStore(users).get("admin")
        assert record is not None and record.verify(SECRET) and not record.verify("wrong")
        assert "added admin (admin; everything)" in capsys.readouterr().out
        assert not list(users.parent.glob(".*.tmp"))  # written whole, then renamed

    def test_a_supervisor_with_scope_and_phones_then_roles_changes_them(
        self, users: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        args = ["add", "nina", "--role", "supervisor", "--teams", "north", "--sites", "seoul"]
        assert run(monkeypatch, [*args, "--phones", "PJSIP/2001", "--password-stdin"]) == 0
        assert run(monkeypatch, ["roles", "nina", "--queues", "sales,tv", "--teams", ""]) == 0
        record = UserStore(users).get("nina")
        assert record is not None
        assert record.scope.sites == {"seoul"} and record.scope.teams == frozenset()
        assert record.scope.queues == {"sales", "tv"} and record.phones == ("PJSIP/2001",)
        assert run(monkeypatch, ["list"]) == 0
        assert "nina             supervisor sites seoul; queues sales, tv; phones PJSIP/2001" in (
            capsys.readouterr().out
        )

    def test_an_agent_user_names_their_agent_and_an_admin_has_no_scope(
        self, users: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run(monkeypatch, ["add", "ann", "--role", "agent", "--password-stdin"]) == 2
        assert "--agent AGENT_ID" in capsys.readouterr().err
        assert (
            run(
                monkeypatch, ["add", "ann", "--role", "agent", "--agent", "ann", "--password-stdin"]
            )
            == 0
        )
        assert (
            run(monkeypatch, ["add", "boss", "--role", "admin", "--sites", "x", "--password-stdin"])
            == 2
        )
        assert "an admin sees everything" in capsys.readouterr().err
        assert run(monkeypatch, ["roles", "ann", "--phones", "2001"]) == 2
        assert "is not a phone" in capsys.readouterr().err
        args = ["add", "lee", "--role", "supervisor", "--teams", "north", "--password-stdin"]
        assert run(monkeypatch, args) == 0
        assert run(monkeypatch, ["roles", "lee", "--role", "admin"]) == 0  # scope dropped
        lee = UserStore(users).get("lee")
        assert lee is not None and lee.role == "admin" and lee.scope == Scope()
        assert run(monkeypatch, ["roles", "lee", "--role", "supervisor", "--sites", "x"]) == 0
        assert sorted(UserStore(users).load()) == ["ann", "lee"]

    def test_refusals_change_nothing(
        self, users: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert (
            run(monkeypatch, ["add", "a", "--role", "viewer", "--password-stdin"], "short\n") == 1
        )
        assert "at least 12 characters" in capsys.readouterr().err
        assert run(monkeypatch, ["add", "bad name", "--role", "viewer", "--password-stdin"]) == 2
        assert run(monkeypatch, ["add", "kim", "--role", "viewer", "--password-stdin"]) == 0
        assert run(monkeypatch, ["add", "kim", "--role", "viewer", "--password-stdin"]) == 1
        assert "exists" in capsys.readouterr().err
        assert run(monkeypatch, ["passwd", "nobody", "--password-stdin"]) == 1
        with pytest.raises(SystemExit):
            run(monkeypatch, ["add", "x", "--role", "owner"])
        assert sorted(UserStore(users).load()) == ["kim"]

    def test_passwd_asks_twice_and_disable_enable(
        self, users: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run(monkeypatch, ["add", "kim", "--role", "viewer", "--password-stdin"]) == 0
        before = UserStore(users).get("kim")
        answers = iter(["a new long password", "a different one!!"])
        monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
        assert run(monkeypatch, ["passwd", "kim"]) == 1
        assert "differ" in capsys.readouterr().err
        answers = iter(["a new long password"] * 2)
        assert run(monkeypatch, ["passwd", "kim"]) == 0
        after = UserStore(users).get("kim")
        assert before is not None and after is not None
        assert after.verify("a new long password") and after.stamp != before.stamp
        assert run(monkeypatch, ["disable", "kim"]) == 0
        assert UserStore(users).get("kim").disabled  # type: ignore[union-attr]
        assert run(monkeypatch, ["enable", "kim"]) == 0
        assert not UserStore(users).get("kim").disabled  # type: ignore[union-attr]
        assert run(monkeypatch, ["list"]) == 0
        assert "kim              viewer     everything" in capsys.readouterr().out

    def test_list_without_a_file_says_how_to_start(
        self, users: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run(monkeypatch, ["list"]) == 0
        assert "ivr users add admin --role admin" in capsys.readouterr().out
        assert not users.exists()

    def test_a_damaged_file_is_a_configuration_error_naming_it(
        self, users: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        users.parent.mkdir(parents=True)
        users.write_text('{"users": {"x": {"role": "root", "password": "$argon2id$..."}}}')
        assert run(monkeypatch, ["list"]) == 2
        err = capsys.readouterr().err
        assert str(users) in err and "role 'root' is unknown" in err
