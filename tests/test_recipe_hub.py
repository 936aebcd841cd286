"""A recipe's base or checkpoint named by hub id: read from the local Hugging Face cache, offline, following a
snapshot link only into that repo's own blobs folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from taskarith.groundwork.errors import TaskarithError
from taskarith.recipes.hub_cache import cached_snapshot

COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILES = {"config.json": b'{"model_type": "bert"}', "model.safetensors": b"weights", "vocab.txt": b"[PAD]\n"}


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty cache that huggingface_hub (and so this module) reads, as HF_HUB_CACHE would set it at start."""
    from huggingface_hub import constants

    root = tmp_path / "hub"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))  # read once, when huggingface_hub is imported
    return root


def cache_model(hub: Path, repo_id: str, files: dict[str, bytes] = FILES) -> Path:
    """The layout a download leaves: refs/main holds the commit, each snapshot file is a relative link to its
    blob (named by the content's hash); returns the snapshot folder."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "blobs").mkdir()
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name, content in files.items():
        blob = hashlib.sha256(content).hexdigest()
        (repo / "blobs" / blob).write_bytes(content)
        (snapshot / name).symlink_to(f"../../blobs/{blob}")
    return snapshot


def test_cache_layout_is_what_huggingface_hub_reads(hub):
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    snapshot = cache_model(hub, "org/name")
    assert snapshot_download("org/name", local_files_only=True) == str(snapshot)
    assert try_to_load_from_cache("org/name", "config.json") == str(snapshot / "config.json")


def test_hub_id_gives_its_blobs_sorted_by_name(hub):
    snapshot = cache_model(hub, "org/name")
    (snapshot / "1_Pooling").mkdir()  # a sub-folder is no part of the model folder
    files = cached_snapshot("org/name", "base")
    assert list(files) == sorted(FILES)
    for name, path in files.items():
        assert path.parent == (hub / "models--org--name" / "blobs").resolve()
        assert not path.is_symlink() and path.read_bytes() == FILES[name]


def test_id_without_owner_and_copied_files(hub):
    snapshot = cache_model(hub, "gpt2", {"config.json": b"{}"})
    (snapshot / "tokenizer.json").write_bytes(b"{}")  # a cache that copies instead of linking
    files = cached_snapshot("gpt2", "checkpoint")
    assert list(files) == ["config.json", "tokenizer.json"]
    assert files["tokenizer.json"] == snapshot / "tokenizer.json"


@pytest.mark.parametrize("name", ["./x", "a/b/c", "~/m", "../x", "/abs/m", "x/..", "a\\b", "org/", "/org",
                                  "a..b", "a--b", "", "a b", "org/m\n", "org/\x1b[2Jm", "é/m", "m.git", ".hidden"])
def test_a_name_not_shaped_like_a_hub_id_is_a_path(hub, name):
    assert cached_snapshot(name, "base") is None


@pytest.mark.parametrize("name", ["org/missing", "missing"])
def test_an_id_not_in_the_cache_is_refused(hub, name):
    with pytest.raises(TaskarithError) as e:
        cached_snapshot(name, "base")
    assert str(e.value) == f"base '{name}': not a folder, and not a model in the local Hugging Face cache"


def test_a_missing_snapshot_or_ref_is_not_cached(hub):
    snapshot = cache_model(hub, "org/name")
    for entry in snapshot.iterdir():
        entry.unlink()
    snapshot.rmdir()
    with pytest.raises(TaskarithError, match="checkpoint 'org/name': not a folder, and not a model in the"):
        cached_snapshot("org/name", "checkpoint")


def _absolute(tmp: Path, repo: Path) -> str:
    (tmp / "secret").write_text("key")
    return str(tmp / "secret")


def _other_repo(tmp: Path, repo: Path) -> str:
    other = cache_model(tmp / "hub", "org/other", {"config.json": b"other"})
    return str(next(other.iterdir()).resolve())


def _blob_folder(tmp: Path, repo: Path) -> str:
    (repo / "blobs" / "sub").mkdir()
    return "../../blobs/sub"


def _fifo_blob(tmp: Path, repo: Path) -> str:
    os.mkfifo(repo / "blobs" / "fifo")
    return "../../blobs/fifo"


def _nested_blob(tmp: Path, repo: Path) -> str:
    (repo / "blobs" / "sub").mkdir()
    (repo / "blobs" / "sub" / "x").write_text("{}")
    return "../../blobs/sub/x"


def _chained(tmp: Path, repo: Path) -> str:
    """A link inside blobs to a file outside: the fully resolved target counts, not the first hop."""
    (tmp / "secret").write_text("key")
    (repo / "blobs" / "hop").symlink_to(tmp / "secret")
    return "../../blobs/hop"


@pytest.mark.parametrize("target, says", [
    (lambda tmp, repo: "/etc/passwd", "links outside the model's blobs folder"),
    (lambda tmp, repo: os.devnull, "links outside the model's blobs folder"),
    (_absolute, "links outside the model's blobs folder"),
    (_other_repo, "links outside the model's blobs folder"),
    (_nested_blob, "links outside the model's blobs folder"),
    (_chained, "links outside the model's blobs folder"),
    (lambda tmp, repo: "../../blobs", "links outside the model's blobs folder"),
    (_blob_folder, "not a regular file"),
    (_fifo_blob, "not a regular file"),
    (lambda tmp, repo: "../../blobs/absent", "dangling or looping link"),
    (lambda tmp, repo: "config.json", "dangling or looping link"),
], ids=["etc", "device", "absolute", "other-repo", "nested", "chained", "blobs-itself", "folder", "fifo",
        "dangling", "loop"])
def test_a_snapshot_link_out_of_its_blobs_is_refused(hub, tmp_path, target, says):
    snapshot = cache_model(hub, "org/name")
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").symlink_to(target(tmp_path, snapshot.parent.parent))
    with pytest.raises(TaskarithError) as e:
        cached_snapshot("org/name", "base")
    assert str(e.value).startswith(f"base 'org/name': {snapshot / 'config.json'} ") and says in str(e.value)


def test_a_special_file_in_the_snapshot_is_refused(hub):
    snapshot = cache_model(hub, "org/name")
    os.mkfifo(snapshot / "tokenizer.json")
    with pytest.raises(TaskarithError, match=r"tokenizer\.json is not a regular file"):
        cached_snapshot("org/name", "base")


def test_a_file_name_is_printed_without_its_control_characters(hub, tmp_path):
    snapshot = cache_model(hub, "org/name")
    (tmp_path / "secret").write_text("key")
    (snapshot / "x\n\x1b[2Jy").symlink_to(tmp_path / "secret")
    with pytest.raises(TaskarithError) as e:
        cached_snapshot("org/name", "base")
    assert "\n" not in str(e.value) and "\x1b" not in str(e.value) and "x\\n\\x1b[2Jy" in str(e.value)


def _linked_blobs(tmp: Path, repo: Path) -> Path:
    """blobs/ a link to another folder: a link into it would pass as "inside blobs"."""
    (tmp / "elsewhere").mkdir()
    (tmp / "elsewhere" / "x").write_text("{}")
    os.rename(repo / "blobs", tmp / "real-blobs")
    (repo / "blobs").symlink_to(tmp / "elsewhere")
    return repo / "blobs"


def _linked_ref(tmp: Path, repo: Path) -> Path:
    (tmp / "ref").write_text(COMMIT)
    (repo / "refs" / "main").unlink()
    (repo / "refs" / "main").symlink_to(tmp / "ref")
    return repo / "refs" / "main"


def _linked_snapshot(tmp: Path, repo: Path) -> Path:
    snapshot = repo / "snapshots" / COMMIT
    os.rename(snapshot, tmp / "snap")
    snapshot.symlink_to(tmp / "snap")
    return snapshot


def _fifo_ref(tmp: Path, repo: Path) -> Path:
    (repo / "refs" / "main").unlink()
    os.mkfifo(repo / "refs" / "main")
    return repo / "refs" / "main"


def _path_in_ref(tmp: Path, repo: Path) -> Path:
    (repo / "refs" / "main").write_text("../../../../etc")
    return repo / "refs" / "main"


@pytest.mark.parametrize("plant, says", [
    (_linked_blobs, "is not a folder; a link is not followed"),
    (_linked_snapshot, "is not a folder; a link is not followed"),
    (_linked_ref, "a link is not followed"),
    (_fifo_ref, "is not a regular file"),
    (_path_in_ref, "does not hold a commit hash"),
], ids=["blobs", "snapshot", "ref-link", "ref-fifo", "ref-path"])
def test_a_planted_cache_folder_or_ref_is_refused(hub, tmp_path, plant, says):
    repo = cache_model(hub, "org/name").parent.parent
    planted = plant(tmp_path, repo)
    with pytest.raises(TaskarithError) as e:
        cached_snapshot("org/name", "base")
    assert str(e.value).startswith(f"base 'org/name': {planted}") and says in str(e.value)


def test_a_recipe_merges_models_named_by_hub_id(hub, tmp_path):
    """base: and checkpoint: as cached hub ids export the same weights as the same models given as folders."""
    import json

    import torch
    import yaml
    from safetensors.torch import load_file, save
    from typer.testing import CliRunner

    from taskarith.cli.app import app

    config = json.dumps({"model_type": "llama"}).encode()
    weights = [{"w": torch.full((4, 4), float(i)), "b": torch.arange(4.0) * i} for i in range(3)]
    for i, tensors in enumerate(weights):
        files = {"config.json": config, "model.safetensors": save(tensors, metadata={"format": "pt"})}
        cache_model(hub, f"org/m{i}", files)
        (tmp_path / f"m{i}").mkdir()
        for name, content in files.items():
            (tmp_path / f"m{i}" / name).write_bytes(content)
    outputs = {}
    for kind, names in {"hub": ["org/m0", "org/m1", "org/m2"], "folder": ["m0", "m1", "m2"]}.items():
        recipe = tmp_path / f"{kind}.yaml"
        recipe.write_text(yaml.safe_dump({"base": names[0], "method": "ties", "density": 0.5,
                                          "inputs": [{"checkpoint": n} for n in names[1:]]}))
        out = tmp_path / f"out-{kind}"
        result = CliRunner().invoke(app, ["export", str(recipe), "--out", str(out)], env={"HF_HUB_OFFLINE": "1"})
        assert result.exit_code == 0, result.output
        outputs[kind] = load_file(str(out / "model.safetensors"))
        assert (out / "config.json").read_bytes() == config and not any(p.is_symlink() for p in out.iterdir())
    assert outputs["hub"].keys() == outputs["folder"].keys()
    assert all(torch.equal(outputs["hub"][k], outputs["folder"][k]) for k in outputs["hub"])


def test_a_recipe_naming_an_uncached_hub_id_is_one_line(hub, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from taskarith.cli.app import app

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"base": "org/absent", "inputs": [{"checkpoint": "org/absent2"}]}))
    result = CliRunner().invoke(app, ["export", str(recipe), "--out", str(tmp_path / "o")], env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 2 and "not a model in the local Hugging Face cache" in result.output
