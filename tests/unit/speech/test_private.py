"""Per-call prompt folders: random names, removed with the call, a dead engine's swept
at start and a running engine's never (several engines may share a prompts folder)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from speech.private import PrivateFolders


class TestPrivateFolders:
    def test_a_call_folder_holds_random_names_and_goes_with_the_call(self, tmp_path: Path) -> None:
        """Each call gets its own folder; file names say nothing; remove() deletes all."""
        folders = PrivateFolders(tmp_path / "per-call")
        call = folders.call_folder()
        first, second = call.new_file(), call.new_file()
        assert first != second and first.parent == call.path
        assert all(len(p.stem) == 20 and int(p.stem, 16) >= 0 for p in (first, second))
        first.write_bytes(b"RIFF")
        call.remove()
        assert not call.path.exists()
        folders.close()
        assert list((tmp_path / "per-call").iterdir()) == []

    def test_a_dead_engines_folder_is_swept_a_live_ones_is_not(self, tmp_path: Path) -> None:
        """An engine process that ended without closing leaves its folder: the next
        engine's sweep removes it; a folder whose engine still runs stays."""
        root = tmp_path / "per-call"
        script = textwrap.dedent(
            f"""
            import os, sys
            from speech.private import PrivateFolders
            folder = PrivateFolders({str(root)!r}).call_folder()
            folder.new_file().write_bytes(b"a PIN read back")
            print(folder.path, flush=True)
            if sys.argv[1] == "crash":
                os._exit(1)
            sys.stdin.read()  # runs until told to stop
            """
        )
        running = subprocess.Popen(
            [sys.executable, "-c", script, "run"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert running.stdout is not None
            alive = Path(running.stdout.readline().strip())
            crashed = subprocess.run(
                [sys.executable, "-c", script, "crash"], capture_output=True, text=True, check=False
            )
            dead = Path(crashed.stdout.strip())
            assert dead.exists() and alive.exists()
            assert PrivateFolders(root).sweep() == 1
            assert not dead.exists() and not dead.parent.exists()
            assert alive.exists()
        finally:
            running.communicate("", timeout=10)

    def test_a_sweep_of_a_missing_folder_does_nothing(self, tmp_path: Path) -> None:
        """No per-call folder yet (a first start): nothing to remove."""
        assert PrivateFolders(tmp_path / "none").sweep() == 0
