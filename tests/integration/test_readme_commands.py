"""Every command line in the README's examples that needs no running engine runs as
written, on any day of the week, in a copy of the project's files.

The commands are read from the README itself: a new example is either run here
or named in ``NEEDS_ENGINE`` / ``NOT_RUN`` with the reason, so the README cannot
drift from what works.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IVR = Path(sys.executable).parent / "ivr"

#: Examples that talk to a running engine (its API, its AGI port, AMI): the
#: integration tests start one for those paths.
NEEDS_ENGINE = {
    "ivr call billing --engine 127.0.0.1:4573 --press 12345# 0000",
    "ivr agents list",
    "ivr agents pause demo --reason lunch",
    "ivr queues stats",
    "ivr agents staffing --queue billing --interval 1h",
    "ivr supervise barge demo --from PJSIP/2001",
}
#: Examples not run here, and why.
NOT_RUN = {
    # interactive: waits for keys typed at the terminal
    'ivr call main --at "2026-12-02 10:00"',
    # downloads a model from the Internet (not reachable from CI)
    "ivr speech models install "
    "https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip --language en",
    # interactive: ask for a password twice, without echo (tests/integration/
    # test_console_users_cli.py adds users with --password-stdin)
    "ivr users add admin --role admin",
    "ivr users add lee --role supervisor --teams north --phones PJSIP/2001",
    "ivr users add ann --role agent --agent ann",
    "ivr users add wall --role viewer",
}
#: What the output of a command must show (beyond exit status 0).
EXPECT = {
    'ivr call main --at "2026-12-02 10:00" --press 1 1 12345# 0000 5 --fast': "> menu > billing",
    'ivr call main --at "2026-12-02 10:00" --press 2 say:안내 "say:반품 안내" --fast': "> menu",
    'ivr call main --at "2026-12-06 15:00" --fast --press 1': "> closed",
    "ivr validate": "0 problems",
    "ivr test": "0 failed",
    "ivr graph main --svg main.svg": "picture written to main.svg",
    "ivr prompts build": "prompts of",
    "ivr speech models list": "ko",
    "ivr agents staffing --calls 360 --interval 1h --aht 4m --target 80/20": "agents",
    "ivr announcement on outage": "outage: on",
    "ivr asterisk-conf render /tmp/asterisk --demo": "files written",
    "ivr users list": "add the first admin: ivr users add admin --role admin",
}


def readme_commands() -> list[str]:
    """The ``.venv/bin/ivr ...`` lines of the README's shell blocks, comments cut."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        for raw in block.splitlines():
            line = raw.strip()
            if not line.startswith(".venv/bin/ivr "):
                continue
            # A comment starts with a '#' at the start of a word, as in the shell
            # ("12345#" is a word).
            words = shlex.split(re.sub(r"(^|\s)#.*$", "", line))
            commands.append(shlex.join(["ivr", *words[1:]]).replace("'", '"'))
    return commands


def _normal(command: str) -> str:
    return shlex.join(shlex.split(command))


def test_every_readme_example_is_classified() -> None:
    """A new README example is run below or named here with its reason."""
    known = {_normal(c) for c in (*NEEDS_ENGINE, *NOT_RUN, *EXPECT)}
    found = {_normal(c) for c in readme_commands()}
    assert found, "no .venv/bin/ivr examples found in README.md"
    assert found - known == set(), "README examples nobody runs or explains"
    assert known - found == set(), "examples listed here that the README no longer has"


RUNNABLE = list(EXPECT)


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files a newcomer's checkout has, in a folder of their own (var/ starts empty)."""
    folder = tmp_path_factory.mktemp("readme")
    for name in ("dialplans", "asterisk_conf"):
        shutil.copytree(ROOT / name, folder / name)
    shutil.copy(ROOT / "routing.yaml", folder / "routing.yaml")
    return folder


@pytest.mark.parametrize("command", RUNNABLE)
def test_readme_example_runs(command: str, project_copy: Path, tmp_path: Path) -> None:
    words = shlex.split(command)
    if words[1] == "asterisk-conf":  # the README's /tmp/asterisk, kept inside the test's folder
        words[words.index("/tmp/asterisk")] = str(tmp_path / "asterisk")
    done = subprocess.run(  # the project's own CLI, arguments from its README
        [str(IVR), *words[1:]],
        cwd=project_copy,
        capture_output=True,
        text=True,
        timeout=240,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"},
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{output[-3000:]}"
    assert EXPECT[command] in output, f"{command}: no {EXPECT[command]!r} in:\n{output[-3000:]}"
