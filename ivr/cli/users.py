"""``ivr users add|passwd|roles|disable|enable|list``: the console's users file.

The file is ``IVR_USERS_FILE`` (default ``var/users.json``; ``--file`` or a
settings file's ``users_file`` too); the engine re-reads it when it changes,
so a disabled user is out at their next request. Passwords are asked twice
without echo, or read as one line with ``--password-stdin`` (scripts); they
are never taken from the command line, where ``ps`` and the shell's history
would show them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from ivr.config import load_settings
from ivr.console.roles import Scope
from ivr.console.users import (
    MIN_PASSWORD,
    NAME,
    ROLES,
    UserRecord,
    UserStore,
    check_agent,
    check_names,
    check_phones,
    check_role,
    hash_password,
)

__all__ = ["add_commands"]


def _store(args: argparse.Namespace) -> UserStore:
    if args.file is not None:
        return UserStore(args.file)
    return UserStore(load_settings(config_file=args.config).users_file)


def _password(args: argparse.Namespace) -> str | None:
    """The new password (None: refused, the reason printed)."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("ivr: the two passwords differ; nothing changed", file=sys.stderr)
            return None
    if len(password) < MIN_PASSWORD:
        print(f"ivr: a password has at least {MIN_PASSWORD} characters", file=sys.stderr)
        return None
    return password


def _split(raw: str | None) -> list[str]:
    return [p for p in (raw or "").split(",") if p.strip()]


def _fields(args: argparse.Namespace, current: UserRecord | None) -> dict[str, Any]:
    """The role, scope, agent and phones the arguments give (the current ones otherwise)."""
    role = check_role(args.role) if args.role else (current.role if current else "viewer")
    old = current.scope if current and role != "admin" else Scope()  # an admin sees all
    scope = Scope(
        sites=check_names("site", _split(args.sites)) if args.sites is not None else old.sites,
        queues=check_names("queue", _split(args.queues)) if args.queues is not None else old.queues,
        teams=check_names("team", _split(args.teams)) if args.teams is not None else old.teams,
    )
    agent = check_agent(args.agent or None) if args.agent is not None else None
    if args.agent is None and current is not None:
        agent = current.agent_id
    phones = check_phones(_split(args.phones)) if args.phones is not None else None
    if phones is None:
        phones = current.phones if current else ()
    if role == "agent" and not agent:
        raise ValueError("an agent user names their agent: --agent AGENT_ID")
    if role == "admin" and (scope.sites or scope.queues or scope.teams):
        raise ValueError("an admin sees everything; leave out --sites, --queues and --teams")
    return {"role": role, "scope": scope, "agent_id": agent, "phones": phones}


def _add(args: argparse.Namespace) -> int:
    store = _store(args)
    if not NAME.match(args.name):
        print(f"ivr: {args.name!r}: use letters, digits, '_', '.', '@', '-'", file=sys.stderr)
        return 2
    if store.get(args.name) is not None:
        print(
            f"ivr: user {args.name!r} exists; ivr users roles or passwd change it", file=sys.stderr
        )
        return 1
    try:
        fields = _fields(args, None)
    except ValueError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    password = _password(args)
    if password is None:
        return 1
    store.put(UserRecord(args.name, password=hash_password(password), **fields))
    print(f"added {args.name} ({fields['role']}; {fields['scope'].describe()}) to {store.path}")
    return 0


def _existing(store: UserStore, name: str) -> UserRecord | None:
    record = store.get(name)
    if record is None:
        print(f"ivr: no user {name!r} in {store.path}; ivr users add creates one", file=sys.stderr)
    return record


def _passwd(args: argparse.Namespace) -> int:
    store = _store(args)
    if _existing(store, args.name) is None:
        return 1
    password = _password(args)
    if password is None:
        return 1
    store.change(args.name, password=hash_password(password))
    print(f"{args.name}'s password changed; their sessions have ended")
    return 0


def _roles(args: argparse.Namespace) -> int:
    store = _store(args)
    current = _existing(store, args.name)
    if current is None:
        return 1
    try:
        fields = _fields(args, current)
    except ValueError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    store.change(args.name, **fields)
    phones = ", ".join(fields["phones"]) or "none"
    print(f"{args.name}: {fields['role']}; {fields['scope'].describe()}; phones {phones}")
    return 0


def _switch(args: argparse.Namespace) -> int:
    store = _store(args)
    if _existing(store, args.name) is None:
        return 1
    store.change(args.name, disabled=args.disabled)
    print(f"{args.name} {'disabled' if args.disabled else 'enabled'}")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    users = store.load()
    if not users:
        print(f"no users in {store.path}; add the first admin: ivr users add admin --role admin")
        return 0
    for name, user in sorted(users.items()):
        parts = [f"{name:<16} {user.role:<10} {user.scope.describe()}"]
        if user.agent_id:
            parts.append(f"agent {user.agent_id}")
        if user.phones:
            parts.append(f"phones {', '.join(user.phones)}")
        if user.disabled:
            parts.append("DISABLED")
        print("; ".join(parts))
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, help="the users file (default: IVR_USERS_FILE)")
    parser.add_argument("--config", type=Path, help="YAML settings file (its users_file)")


def _scoping(parser: argparse.ArgumentParser, *, role_required: bool) -> None:
    parser.add_argument("--role", choices=ROLES, required=role_required)
    parser.add_argument("--sites", metavar="A,B", help="only these sites (empty: every site)")
    parser.add_argument("--queues", metavar="Q1,Q2", help="only these queues (empty: every)")
    parser.add_argument("--teams", metavar="T1,T2", help="only these teams (empty: every team)")
    parser.add_argument("--agent", metavar="AGENT_ID", help="an agent user's own agent")
    parser.add_argument(
        "--phones", metavar="PJSIP/2001,...", help="the person's phones (supervision rings one)"
    )


def add_commands(commands: Any) -> None:
    users = commands.add_parser(
        "users",
        help="the console's users: add, passwd, roles, disable, enable, list",
        description="Console users with argon2-hashed passwords, roles and scopes.",
    )
    sub = users.add_subparsers(dest="users_command", required=True)

    add = sub.add_parser("add", help="add a user (asks for the password)")
    add.add_argument("name")
    _scoping(add, role_required=True)
    add.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    _common(add)
    add.set_defaults(func=_add)

    passwd = sub.add_parser("passwd", help="set a user's password (ends their sessions)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    _common(passwd)
    passwd.set_defaults(func=_passwd)

    roles = sub.add_parser("roles", help="change a user's role, scope, agent or phones")
    roles.add_argument("name")
    _scoping(roles, role_required=False)
    _common(roles)
    roles.set_defaults(func=_roles)

    for verb, disabled, text in (
        ("disable", True, "stop a user logging in (their sessions end at once)"),
        ("enable", False, "let a disabled user log in again"),
    ):
        switch = sub.add_parser(verb, help=text)
        switch.add_argument("name")
        _common(switch)
        switch.set_defaults(func=_switch, disabled=disabled)

    listing = sub.add_parser("list", help="every user with role and scope")
    _common(listing)
    listing.set_defaults(func=_list)
