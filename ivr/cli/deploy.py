"""``ivr asterisk-conf render OUTDIR``: Asterisk's configuration from the deployment file.

Hooked into ``ivr`` by :func:`add_commands`. Exit codes: 0 written, 2 the
deployment file (or a secret it names) is wrong, each problem printed as
``file:line:col: message``, or modules.conf names something Asterisk's module
table (``ivr/deploy/asterisk_modules.json``) does not know.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ivr.deploy.errors import DeploymentError, ModuleTableError

__all__ = ["DEFAULT_DEPLOY_FILE", "add_commands", "render_command"]

DEFAULT_DEPLOY_FILE = Path("asterisk_conf/deploy.example.yaml")


def render_command(args: argparse.Namespace) -> int:
    """Render the deployment into ``args.outdir``; print what was written."""
    from ivr.deploy.model import load_deployment
    from ivr.deploy.render import write

    deploy = args.deploy or Path(os.environ.get("IVR_DEPLOY_FILE") or DEFAULT_DEPLOY_FILE)
    try:
        deployment = load_deployment(deploy)
        environ: dict[str, str] = dict(os.environ)
        if args.demo:
            filled = _demo_secrets(deployment.model_dump(), environ)
            if filled:
                print(
                    f"ivr: --demo: placeholder secrets for {', '.join(sorted(filled))} "
                    "(DEMO-ONLY values: never use these files with a real Asterisk)",
                    file=sys.stderr,
                )
        written = write(deployment, args.outdir, environ=environ)
    except DeploymentError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"ivr: nothing written; fix {deploy} and run again", file=sys.stderr)
        return 2
    except ModuleTableError as exc:
        print(f"ivr: nothing written: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ivr: cannot write to {args.outdir}: {exc.strerror}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    print(
        f"{len(written)} files written from {deploy}; they hold secrets: "
        "mount them read-only into Asterisk and do not commit them",
        file=sys.stderr,
    )
    return 0


def _demo_secrets(data: object, environ: dict[str, str]) -> list[str]:
    """Fill every secret variable the deployment names (``*_env``) that is not set with a
    marked placeholder; the names filled."""
    filled: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key.endswith("_env") and isinstance(value, str) and value not in environ:
                environ[value] = "0000" if "PIN" in value.upper() else f"DEMO-ONLY-{value.lower()}"
                filled.append(value)
            else:
                filled += _demo_secrets(value, environ)
    elif isinstance(data, list):
        for item in data:
            filled += _demo_secrets(item, environ)
    return filled


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``asterisk-conf render`` to the ``ivr`` command."""
    conf = subparsers.add_parser(
        "asterisk-conf",
        help="Asterisk configuration for the engine, from the deployment file",
        description="Render extensions.conf, manager.conf, pjsip.conf, modules.conf and the rest.",
    )
    conf_commands = conf.add_subparsers(dest="asterisk_conf_command", required=True)
    render = conf_commands.add_parser(
        "render",
        help="write the configuration files into OUTDIR",
        description=(
            "Render Asterisk's configuration into OUTDIR. Secrets are read from the "
            "environment variables or files the deployment file names."
        ),
    )
    render.add_argument("outdir", type=Path, metavar="OUTDIR")
    render.add_argument(
        "--deploy",
        type=Path,
        metavar="FILE",
        help=f"deployment file (default: $IVR_DEPLOY_FILE or {DEFAULT_DEPLOY_FILE})",
    )
    render.add_argument(
        "--demo",
        action="store_true",
        help="fill secrets that are not set with marked placeholders (to look at the files)",
    )
    render.set_defaults(func=render_command)
