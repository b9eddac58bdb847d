"""``ivr supervise listen|whisper|barge AGENT --from ENDPOINT``: through the engine's API.

The engine holds the AMI connection and the audit trail, so the command asks
it (``POST /api/supervise``) with the supervisor's token from
``IVR_API_TOKEN`` (or ``--token-file``); the supervisor's phone rings, and
once answered it hears (or speaks into) exactly the agent's call. Asking for
another mode on the same call replaces the supervisor's earlier spy on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ivr.centre.supervise import MODES

__all__ = ["add_commands"]


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        try:
            return Path(args.token_file).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            print(f"ivr: cannot read {args.token_file}: {exc.strerror}", file=sys.stderr)
            return None
    return os.environ.get("IVR_API_TOKEN") or None


def _supervise(args: argparse.Namespace) -> int:
    token = _token(args)
    if token is None:
        print(
            "ivr: no API token: export IVR_API_TOKEN (a supervisor's token from the engine's "
            "IVR_API_TOKENS) or give --token-file",
            file=sys.stderr,
        )
        return 2
    if not args.api.startswith(("http://", "https://")):
        print(f"ivr: --api must be an http(s) URL, not {args.api!r}", file=sys.stderr)
        return 2
    body = json.dumps({"agent": args.agent, "mode": args.mode, "from": args.source}).encode()
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        args.api.rstrip("/") + "/api/supervise",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as reply:  # noqa: S310
            done: dict[str, Any] = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        print(f"ivr: {message}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        print(
            f"ivr: cannot reach the engine's API at {args.api} ({exc}); is it running?",
            file=sys.stderr,
        )
        return 2
    answered = "answered" if done.get("answered") else "did not answer"
    replaced = done.get("replaced") or []
    instead = f", instead of the earlier spy {', '.join(replaced)}" if replaced else ""
    print(
        f"{args.mode}: {args.source} on {done.get('channel')} (agent {args.agent}{instead}); "
        f"the supervisor's phone {answered}"
    )
    return 0 if done.get("answered") else 1


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "supervise",
        help="listen to, whisper to or barge into an agent's call",
        description="Ring the supervisor's phone and join the agent's current call "
        "(needs the engine running with AMI, and a supervisor's API token).",
    )
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("agent", help="the agent's id")
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="ENDPOINT",
        help="the supervisor's phone, e.g. PJSIP/2001",
    )
    parser.add_argument("--api", default="http://127.0.0.1:8090", help="the engine's API")
    parser.add_argument("--token-file", help="read the API token from this file")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the phone to answer"
    )
    parser.set_defaults(func=_supervise)
