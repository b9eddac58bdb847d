"""``ivr asterisk-conf render`` never lets a secret sit in a file others can read, not even
for a moment: secret-bearing files are opened with mode 0600, and an existing file is
narrowed before a byte is written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ivr.deploy import Deployment, write
from ivr.deploy.render import FILES

SECRET_FILES = ("manager.conf", "pjsip.conf", "voicemail.conf")


class Recorder:
    """Wraps ``os.open`` and ``os.fchmod`` to see, per file, the mode asked at creation
    and what the file held when its mode was set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened: dict[str, tuple[int, int]] = {}
        self.narrowed: dict[str, tuple[int, int]] = {}
        self.names: dict[int, str] = {}
        real_open, real_fchmod = os.open, os.fchmod

        def recording_open(path: object, flags: int, mode: int = 0o777, **kw: object) -> int:
            fd = real_open(path, flags, mode, **kw)  # type: ignore[arg-type]
            name = os.path.basename(os.fsdecode(path))  # type: ignore[arg-type]
            if name in FILES:
                self.opened[name] = (flags, mode)
                self.names[fd] = name
            return fd

        def recording_fchmod(fd: int, mode: int) -> None:
            name = self.names.get(fd)
            if name is not None:
                self.narrowed[name] = (os.fstat(fd).st_size, mode)
            real_fchmod(fd, mode)

        monkeypatch.setattr(os, "open", recording_open)
        monkeypatch.setattr(os, "fchmod", recording_fchmod)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestSecretFileModes:
    def test_secret_files_are_created_0600(
        self,
        example: Deployment,
        secrets: dict[str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Each secret file is opened with O_CREAT and mode 0600: it never exists wider."""
        recorder = Recorder(monkeypatch)
        write(example, tmp_path, environ=secrets)
        for name in SECRET_FILES:
            flags, asked = recorder.opened[name]
            assert flags & os.O_CREAT and flags & os.O_TRUNC, name
            assert asked == 0o600, (name, oct(asked))
            assert mode(tmp_path / name) == 0o600
        assert mode(tmp_path / "extensions.conf") == 0o644

    def test_an_existing_wider_file_is_narrowed_before_the_secret_goes_in(
        self,
        example: Deployment,
        secrets: dict[str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A manager.conf left at 0644 (an old render, a copy) is set to 0600 while it is
        still empty, then written."""
        for name in SECRET_FILES:
            (tmp_path / name).write_text("; an old file\n")
            (tmp_path / name).chmod(0o644)
        recorder = Recorder(monkeypatch)
        write(example, tmp_path, environ=secrets)
        for name in SECRET_FILES:
            assert recorder.narrowed[name] == (0, 0o600), name  # empty when narrowed
            assert mode(tmp_path / name) == 0o600
        assert secrets["AMI_SECRET"] in (tmp_path / "manager.conf").read_text()

    def test_a_symlink_in_place_of_a_secret_file_is_refused(
        self, example: Deployment, secrets: dict[str, str], tmp_path: Path
    ) -> None:
        """The secrets are not written through a link to somewhere else."""
        elsewhere = tmp_path / "elsewhere"
        elsewhere.write_text("")
        out = tmp_path / "out"
        out.mkdir()
        (out / "manager.conf").symlink_to(elsewhere)
        with pytest.raises(OSError):  # noqa: PT011 - ELOOP, as the platform words it
            write(example, out, environ=secrets)
        assert elsewhere.read_text() == ""

    def test_the_command_reports_an_unwritable_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`ivr asterisk-conf render` into a folder holding such a link says it cannot write."""
        from ivr.cli import main

        out = tmp_path / "out"
        out.mkdir()
        (out / "pjsip.conf").symlink_to(tmp_path / "nowhere")
        assert main(["asterisk-conf", "render", str(out), "--demo"]) == 2
        assert f"cannot write to {out}" in capsys.readouterr().err
        assert not (tmp_path / "nowhere").exists()
