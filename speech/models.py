"""Installed recognition models: one folder per language and name, and which one is in use.

Layout: ``<directory>/<language>/<name>/`` holds an unpacked Vosk model and
``<directory>/models.json`` records what is installed and which model each
language uses. ``install`` takes an official Vosk zip (URL or path) or an
unpacked model folder, refuses archives that would write outside their folder
(``..``, absolute names, links), and checks that Vosk loads the result before
recording it. The CLI (``ivr speech models list|install|use``) calls these.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from speech.errors import ModelArchiveError, ModelInstallError

__all__ = ["InstalledModel", "ModelStore", "check_model", "is_model_dir"]

STATE_FILE = "models.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})?$")


@dataclass(frozen=True, slots=True)
class InstalledModel:
    """One installed model."""

    language: str
    name: str
    path: Path
    source: str
    selected: bool


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` looks like an unpacked Vosk model (``am/`` and ``conf/``)."""
    return (path / "am").is_dir() and (path / "conf").is_dir()


def check_model(path: Path) -> None:
    """Load the model with Vosk once; raises ModelInstallError if Vosk cannot."""
    import vosk  # type: ignore[import-untyped]

    vosk.SetLogLevel(-1)
    try:
        vosk.Model(str(path))
    except Exception as error:  # vosk raises a bare Exception
        raise ModelInstallError(
            f"Vosk cannot load the model in {path}: {error}; give an official model "
            "from the Vosk model list (a zip or its unpacked folder)"
        ) from error


class ModelStore:
    """The models installed under ``directory`` and the one each language uses."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    # -- reading ----------------------------------------------------------------

    def list(self) -> list[InstalledModel]:
        """Every installed model, by language then name."""
        state = self._state()
        out = []
        for language, models in sorted(state["models"].items()):
            for name, info in sorted(models.items()):
                out.append(
                    InstalledModel(
                        language,
                        name,
                        self.directory / language / name,
                        str(info.get("source", "")),
                        state["selected"].get(language) == name,
                    )
                )
        return out

    def path_for(self, language: str) -> Path | None:
        """The folder of the model ``language`` uses, or None if none is installed."""
        state = self._state()
        name = state["selected"].get(language)
        if name is None:
            return None
        path = self.directory / language / name
        return path if is_model_dir(path) else None

    # -- changing ---------------------------------------------------------------

    def install(self, source: str, language: str, name: str | None = None) -> InstalledModel:
        """Install a model from a zip (URL or path) or a model folder; checks it loads.

        The first model of a language is selected for it; later ones need ``use``.
        Blocking (download, unpack, load): call it from a thread in async code.
        """
        _check_language(language)
        with tempfile.TemporaryDirectory(dir=self._tmp_parent()) as scratch:
            work = Path(scratch)
            local = self._fetch(source, work)
            if local.is_dir():
                root = _model_root(local, source)
                staged = work / "model"
                shutil.copytree(root, staged, symlinks=False)
            elif zipfile.is_zipfile(local):
                staged = _unpack(local, work / "unpacked", source)
            else:
                raise ModelInstallError(
                    f"{source} is neither a zip archive nor a model folder; give an official "
                    "Vosk model zip (vosk-model-*.zip) or its unpacked folder"
                )
            name = name or _default_name(source, staged)
            if not _NAME.match(name):
                raise ModelInstallError(
                    f"model name {name!r} is not allowed; use letters, digits, '.', '_' or '-'"
                )
            check_model(staged)
            target = self.directory / language / name
            if target.exists():
                raise ModelInstallError(
                    f"a model named {name!r} is already installed for {language!r}; pick "
                    "another name (--name) or remove it first"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.rename(target)  # the scratch folder is inside the store: same file system
        state = self._state()
        state["models"].setdefault(language, {})[name] = {"source": source}
        state["selected"].setdefault(language, name)
        self._save(state)
        return next(m for m in self.list() if m.language == language and m.name == name)

    def use(self, language: str, name: str) -> InstalledModel:
        """Make ``name`` the model of ``language``."""
        state = self._state()
        installed = state["models"].get(language, {})
        if name not in installed:
            known = ", ".join(sorted(installed)) or "none"
            raise ModelInstallError(
                f"no model named {name!r} is installed for {language!r} (installed: {known}); "
                f"install it with `ivr speech models install <URL-or-path> --language {language}`"
            )
        state["selected"][language] = name
        self._save(state)
        return next(m for m in self.list() if m.language == language and m.name == name)

    # -- internals --------------------------------------------------------------

    def _tmp_parent(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory

    def _fetch(self, source: str, work: Path) -> Path:
        scheme = urllib.parse.urlsplit(source).scheme
        if scheme in {"http", "https"}:
            target = work / "download.zip"
            try:
                with urllib.request.urlopen(source, timeout=60) as reply, target.open("wb") as f:  # noqa: S310
                    shutil.copyfileobj(reply, f, 1 << 20)
            except OSError as error:
                raise ModelInstallError(f"cannot download {source}: {error}") from error
            return target
        if scheme not in {"", "file"} and not re.match(r"^[A-Za-z]$", scheme):
            raise ModelInstallError(f"{source}: only http(s) URLs and local paths are supported")
        path = Path(urllib.parse.urlsplit(source).path if scheme == "file" else source)
        if not path.exists():
            raise ModelInstallError(f"{path} does not exist; give a model zip or folder")
        return path

    def _state(self) -> dict[str, Any]:
        path = self.directory / STATE_FILE
        if not path.exists():
            return {"models": {}, "selected": {}}
        try:
            state: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ModelInstallError(f"{path} is unreadable ({error}); fix or delete it") from error
        state.setdefault("models", {})
        state.setdefault("selected", {})
        return state

    def _save(self, state: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f"{STATE_FILE}.{os.getpid()}.part"
        partial.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        partial.replace(self.directory / STATE_FILE)


def _check_language(language: str) -> None:
    if not _LANGUAGE.match(language):
        raise ModelInstallError(
            f"language {language!r} is not a language code; use e.g. 'ko', 'en' or 'en-us'"
        )


def _unpack(archive: Path, into: Path, source: str) -> Path:
    """Extract ``archive`` into ``into`` after checking every member; returns the model root."""
    into.mkdir()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            member = PurePosixPath(info.filename.replace("\\", "/"))
            mode = info.external_attr >> 16
            if member.is_absolute() or ".." in member.parts or re.match(r"^[A-Za-z]:", str(member)):
                raise ModelArchiveError(
                    f"{source}: member {info.filename!r} would be written outside the model "
                    "folder; refusing the archive"
                )
            if stat.S_ISLNK(mode):
                raise ModelArchiveError(
                    f"{source}: member {info.filename!r} is a symbolic link; refusing the archive"
                )
        zf.extractall(into)
    return _model_root(into, source)


def _model_root(folder: Path, source: str) -> Path:
    if is_model_dir(folder):
        return folder
    candidates = [p for p in folder.iterdir() if p.is_dir() and is_model_dir(p)]
    if len(candidates) != 1:
        raise ModelArchiveError(
            f"{source} holds no Vosk model (a folder with am/ and conf/); give an official "
            "Vosk model zip or its unpacked folder"
        )
    return candidates[0]


def _default_name(source: str, staged: Path) -> str:
    stem = PurePosixPath(urllib.parse.urlsplit(source).path).name
    for suffix in (".zip",):
        stem = stem.removesuffix(suffix)
    return stem or staged.name
