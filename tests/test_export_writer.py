"""The merged-model writer: shards planned from the layout, headers first, each tensor written in place as it
comes; the files read back equal to what was added and, for one shard, equal byte for byte to safetensors'."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save

from taskarith.groundwork.errors import TaskarithError
from taskarith.recipes.hf_folder import ModelFolderWriter
from taskarith.groundwork.tensor_files import DTYPES, check_safetensors, open_regular, read_header

TENSORS = {  # name order, as a merge adds them: the writer must still align each to its width
    "a.bias": torch.randn(3).to(torch.bfloat16),
    "b.empty": torch.empty(0, 4),
    "c.ids": torch.arange(5),
    "d.scalar": torch.tensor(2.5),
    "e.weight": torch.randn(4, 6),
    "f.mask": torch.tensor([True, False, True]),
}


def _layout(tensors):
    return [(name, t.dtype, tuple(t.shape)) for name, t in tensors.items()]


def _write(out, max_shard_bytes, tensors=TENSORS):
    writer = ModelFolderWriter(out, max_shard_bytes, _layout(tensors))
    for name in reversed(list(tensors)):  # any order of adding lands each tensor at its place
        writer.add(name, tensors[name])
    return writer.finish()


def _read_back(folder):
    read = {}
    for path in sorted(folder.glob("*.safetensors")):
        entries = check_safetensors(path)
        fd = open_regular(path)
        try:
            _, metadata = read_header(path, fd)
        finally:
            os.close(fd)
        assert metadata == {"format": "pt"}
        for entry in entries.values():  # every tensor aligned to its width (safetensors maps the file)
            assert entry.start % DTYPES[entry.dtype].itemsize == 0
        assert os.path.getsize(path) == max(e.end for e in entries.values())
        with safe_open(str(path), framework="pt") as f:
            assert sorted(f.keys()) == sorted(entries)
            read.update({name: f.get_tensor(name) for name in f.keys()})
    return read


def test_one_shard_is_what_safetensors_writes(tmp_path):
    out = _write(tmp_path / "out", 1 << 30)
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == save(TENSORS, metadata={"format": "pt"})
    read = _read_back(out)
    assert read.keys() == TENSORS.keys()
    assert all(read[n].dtype == t.dtype and torch.equal(read[n], t) for n, t in TENSORS.items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no hidden folder left


def test_shards_follow_the_limit_and_the_index_names_them(tmp_path):
    out = _write(tmp_path / "out", 48)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    names = [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
    # greedy in name order: bf16[3] 6 B + empty 0 B + int64[5] 40 B | f32 4 B | f32[4,6] 96 B, over the limit,
    # alone | bool[3] 3 B
    assert index["weight_map"] == {"a.bias": names[0], "b.empty": names[0], "c.ids": names[0],
                                   "d.scalar": names[1], "e.weight": names[2], "f.mask": names[3]}
    assert list(index["weight_map"]) == sorted(index["weight_map"])
    assert index["metadata"]["total_size"] == 6 + 40 + 4 + 96 + 3
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "model.safetensors.index.json"])
    read = _read_back(out)
    assert read.keys() == TENSORS.keys()
    assert all(read[n].dtype == t.dtype and torch.equal(read[n], t) for n, t in TENSORS.items())


def test_a_model_with_no_tensors_is_one_empty_shard(tmp_path):
    out = _write(tmp_path / "out", 16, {})
    assert (out / "model.safetensors").read_bytes() == save({}, metadata={"format": "pt"})


def test_a_tensor_never_added_fails_the_finish_and_abort_removes_all(tmp_path):
    writer = ModelFolderWriter(tmp_path / "out", 16, _layout(TENSORS))
    for name in list(TENSORS)[:-1]:
        writer.add(name, TENSORS[name])
    with pytest.raises(TaskarithError, match="'f.mask'.*never written"):
        writer.finish()
    assert not (tmp_path / "out").exists()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, tensor, problem", [
    ("e.weight", torch.randn(6, 4), "shape"),
    ("e.weight", torch.randn(4, 6, dtype=torch.float64), "float64"),
    ("d.scalar", torch.tensor([2.5]), "shape"),
    ("unplanned", torch.randn(2), "not in the planned layout"),
    ("a.bias", TENSORS["a.bias"], "added twice"),
])
def test_a_tensor_off_the_plan_is_refused(tmp_path, name, tensor, problem):
    writer = ModelFolderWriter(tmp_path / "out", 1 << 30, _layout(TENSORS))
    writer.add("a.bias", TENSORS["a.bias"])
    with pytest.raises(TaskarithError, match=f"'{name}'.*{problem}"):
        writer.add(name, tensor)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_layout_naming_a_tensor_twice_writes_nothing(tmp_path):
    with pytest.raises(TaskarithError, match="'w' of the merged model is planned twice"):
        ModelFolderWriter(tmp_path / "out", 1 << 30, [("w", torch.float32, (2,)), ("w", torch.float32, (2,))])
    assert list(tmp_path.iterdir()) == []


def test_a_link_planted_as_the_hidden_folder_is_not_followed(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.mkdir()
    monkeypatch.setattr(os, "getpid", lambda: 4242)
    (tmp_path / ".out.4242.partial").symlink_to(victim)  # our own folder's name, planted before it is made
    with pytest.raises(TaskarithError, match="cannot write here"):
        ModelFolderWriter(tmp_path / "out", 1 << 30, _layout(TENSORS))
    assert list(victim.iterdir()) == []


def test_short_writes_are_resumed(tmp_path, monkeypatch):
    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: real(fd, data[:5], offset))  # as for over 2 GiB
    out = _write(tmp_path / "out", 1 << 30)
    assert (out / "model.safetensors").read_bytes() == save(TENSORS, metadata={"format": "pt"})


def test_a_full_disk_is_one_line(tmp_path, monkeypatch):
    writer = ModelFolderWriter(tmp_path / "out", 1 << 30, _layout(TENSORS))

    def full(fd, data, offset):
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(TaskarithError, match=r"cannot write model\.safetensors \(No space left on device\)"):
        writer.add("e.weight", TENSORS["e.weight"])
    writer.abort()
    assert list(tmp_path.iterdir()) == []
