"""Hostile model folders, recipes and outputs: a write over an input, damaged safetensors headers on every path
that reads them, numbers that are not finite, merges that cancel, pickles that cannot be unpickled."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import pytest
import torch
import yaml

from taskarith.groundwork.atomic import save_safetensors
from taskarith.groundwork.errors import TaskarithError
from taskarith.groundwork.input_files import command_scope, note_input
from taskarith.groundwork.tensor_files import read_safetensors

from cli_cases import Ctx
from hostile_cases import Case, _absent, _vectors, check_hostile_input

WEIGHTS = "model.safetensors"


# --- builders --------------------------------------------------------------------------------------------

def _copy_model(c: Ctx, name: str, scale: float = 0.0) -> Path:
    """The tiny model copied into the case's folder; with `scale`, every weight moved by scale·noise."""
    folder = c.tmp / name
    shutil.copytree(c.model, folder)
    if scale:
        tensors, meta = read_safetensors(folder / WEIGHTS)
        g = torch.Generator().manual_seed(1)
        save_safetensors(folder / WEIGHTS, {k: v + scale * torch.randn(v.shape, generator=g) for k, v in tensors.items()},
                         meta)
    return folder


def _raw_safetensors(path: Path, header: str, data: bytes) -> Path:
    """A safetensors file with exactly this header text: lying offsets or a name twice, as a tool might write."""
    raw = header.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _twice(path: Path) -> Path:
    """One tensor `w` named twice in the header: a JSON parser keeping the last would read the second."""
    return _raw_safetensors(path, '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                                  '"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
                            struct.pack("<2f", 1.0, 2.0))


def _damage_weights(folder: Path, how: str) -> Path:
    """The folder's weights rewritten with a header entry whose offsets lie, or with a name stored twice."""
    path = folder / WEIGHTS
    data = path.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + length])
    name = next(k for k in header if k != "__metadata__")
    if how == "offsets":
        header[name]["data_offsets"][1] += 4
        text = json.dumps(header)
    else:
        entry = json.dumps(header[name])
        text = json.dumps(header)[:-1] + f', "{name}": {entry}' + "}"
    return _raw_safetensors(path, text, data[8 + length:])


def _extract(c: Ctx, base: Path, finetuned: Path, out: Path, *extra: str) -> list[str]:
    return ["vector", "extract", "--base", str(base), "--finetuned", str(finetuned), "--out", str(out), *extra]


def _extract_over(c: Ctx, which: str) -> list[str]:
    base, tuned = _copy_model(c, "base"), _copy_model(c, "tuned", scale=0.01)
    return _extract(c, base, tuned, (base if which == "base" else tuned) / WEIGHTS)


def _extract_over_link(c: Ctx) -> list[str]:
    base, tuned = _copy_model(c, "base"), _copy_model(c, "tuned", scale=0.01)
    os.link(base / WEIGHTS, c.tmp / "hard.safetensors")  # another name of the base's weights
    return _extract(c, base, tuned, c.tmp / "hard.safetensors")


def _merge_over(c: Ctx, link: bool) -> list[str]:
    paths = _vectors(c.tmp)
    out = paths[1]
    if link:
        os.link(paths[1], c.tmp / "again.safetensors")
        out = str(c.tmp / "again.safetensors")
    return ["vector", "merge", *paths, "--out", out]


def _extract_damaged(c: Ctx, side: str, how: str) -> list[str]:
    base, tuned = _copy_model(c, "base"), _copy_model(c, "tuned", scale=0.01)
    _damage_weights(base if side == "base" else tuned, how)
    return _extract(c, base, tuned, c.tmp / "tau.safetensors")


def _extract_bad_pickle(c: Ctx) -> list[str]:
    base, tuned = _copy_model(c, "base"), _copy_model(c, "tuned")
    (tuned / WEIGHTS).unlink()
    (tuned / "pytorch_model.bin").write_bytes(b"\x80\x04not a pickle at all")
    return _extract(c, base, tuned, c.tmp / "tau.safetensors", "--trust-pickle")


def _vector_file(path: Path, tensors: dict, base_hash: str) -> str:
    from taskarith.vectors import TaskVector

    meta = {"base_model": "m", "base_hash": base_hash, "paradigm": "nonlinear", "preset": "full", "task": path.stem}
    TaskVector(tensors, meta).save(path)
    return str(path)


def _recipe(c: Ctx, base: Path, inputs: list[dict], **fields) -> list[str]:
    path = c.tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump({"base": str(base), "inputs": inputs, **fields}))
    return ["export", str(path), "--out", str(c.tmp / "merged")]


def _base_vectors(c: Ctx, base: Path, scales=(1.0, 1.0), preset: str = "full") -> list[str]:
    """Non-linear vectors made on `base`: its change to a copy moved by noise, scaled."""
    from taskarith.extraction import extract_vector, load_weights

    tuned = _copy_model(c, "tuned", scale=0.01)
    tau = extract_vector(load_weights(str(base), "text-encoder"), load_weights(str(tuned), "text-encoder"),
                         preset).vector
    return [_vector_file(c.tmp / f"tau{i}.safetensors", {k: v * s for k, v in tau.tensors.items()},
                         tau.meta["base_hash"]) for i, s in enumerate(scales)]


def _recipe_weights(c: Ctx, weights: list[float], scales=(1.0, 1.0)) -> list[str]:
    base = _copy_model(c, "base")
    vectors = _base_vectors(c, base, scales)
    return _recipe(c, base, [{"vector": v, "weight": w} for v, w in zip(vectors, weights)])


def _recipe_one_file_twice(c: Ctx) -> list[str]:
    base = _copy_model(c, "base")
    vector = _base_vectors(c, base)[0]
    os.link(vector, c.tmp / "again.safetensors")
    return _recipe(c, base, [{"vector": vector}, {"vector": "./again.safetensors"}])


def _recipe_base_inf(c: Ctx) -> list[str]:
    base = _copy_model(c, "base")
    vectors = _base_vectors(c, base, preset="attention")
    tensors, meta = read_safetensors(base / WEIGHTS)
    name = next(k for k in sorted(tensors) if "LayerNorm" in k)  # outside the attention preset
    tensors[name] = tensors[name].clone()
    tensors[name][0] = float("inf")
    (base / WEIGHTS).write_bytes(_serialized(tensors, meta))
    return _recipe(c, base, [{"vector": v} for v in vectors], preset="attention")


def _serialized(tensors: dict, meta: dict) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata=meta)


def _recipe_damaged(c: Ctx, how: str) -> list[str]:
    base = _copy_model(c, "base")
    tuned = _copy_model(c, "tuned", scale=0.01)
    if how == "vector-twice":
        return _recipe(c, base, [{"vector": str(_twice(c.tmp / "twice.safetensors"))}])
    _damage_weights(tuned, how)
    return _recipe(c, base, [{"checkpoint": str(tuned)}])


def _run_model(c: Ctx, how: str) -> list[str]:
    folder = _copy_model(c, "model")
    _damage_weights(folder, how)
    return ["run", str(c.config(model={"name": str(folder)})), "--out", str(c.tmp / "run")]


def _nothing_merged(c: Ctx) -> None:
    _absent(c.tmp / "merged")
    assert not [p for p in c.tmp.iterdir() if p.name.startswith(".merged")]


CASES = [
    # class 1: no command writes over a file it reads
    Case("extract-out-is-the-base", lambda c: _extract_over(c, "base"), "is an input of this command"),
    Case("extract-out-is-the-finetune", lambda c: _extract_over(c, "tuned"), "is an input of this command"),
    Case("extract-out-is-a-hard-link", _extract_over_link, "is an input of this command"),
    Case("merge-out-is-an-input", lambda c: _merge_over(c, link=False), "is an input of this command"),
    Case("merge-out-is-a-hard-link-to-an-input", lambda c: _merge_over(c, link=True), "is an input of this command"),
    # class 4: damaged folders are refused in one line by every reader, not by a library's traceback
    Case("extract-base-lying-offsets", lambda c: _extract_damaged(c, "base", "offsets"), "damaged entry"),
    Case("extract-finetune-lying-offsets", lambda c: _extract_damaged(c, "tuned", "offsets"), "damaged entry"),
    Case("extract-base-name-twice", lambda c: _extract_damaged(c, "base", "twice"), "appears twice"),
    Case("extract-finetune-name-twice", lambda c: _extract_damaged(c, "tuned", "twice"), "appears twice"),
    Case("extract-unpicklable-pickle", _extract_bad_pickle, "cannot load the encoder"),
    Case("run-model-lying-offsets", lambda c: _run_model(c, "offsets"), "damaged entry"),
    Case("run-model-name-twice", lambda c: _run_model(c, "twice"), "appears twice"),
    # class 3: the recipe path reads headers with the vector path's checks
    Case("recipe-vector-name-twice", lambda c: _recipe_damaged(c, "vector-twice"), "appears twice", _nothing_merged),
    Case("recipe-checkpoint-lying-offsets", lambda c: _recipe_damaged(c, "offsets"), "damaged entry", _nothing_merged),
    Case("recipe-checkpoint-name-twice", lambda c: _recipe_damaged(c, "twice"), "appears twice", _nothing_merged),
    # class 2: every exported tensor is finite; weights that cancel are refused as `vector merge` refuses them
    Case("recipe-weight-overflows", lambda c: _recipe_weights(c, [1e300, 1.0]), "NaN or Inf", _nothing_merged),
    Case("recipe-weights-cancel", lambda c: _recipe_weights(c, [1.0, -1.0]), "zero in every tensor", _nothing_merged),
    Case("recipe-inputs-cancel", lambda c: _recipe_weights(c, [1.0, 1.0], scales=(1.0, -1.0)),
         "zero in every tensor", _nothing_merged),
    Case("recipe-one-file-twice", _recipe_one_file_twice, "are the same file", _nothing_merged),
    Case("recipe-base-holds-inf", _recipe_base_inf, "as it does in the base", _nothing_merged),
    Case("run-lr-overflows", lambda c: ["run", str(c.config(train={"lr": 1e30})), "--out", str(c.tmp / "run")],
         "outputs are NaN or Inf under 1·places/nonlinear", seconds=60),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run):
    check_hostile_input(case, Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run))


def test_a_tensor_that_is_not_finite_is_never_written(tmp_path):
    with pytest.raises(TaskarithError, match=r"tensor 'b' holds NaN or Inf; nothing was written"):
        save_safetensors(tmp_path / "x.safetensors", {"a": torch.ones(2), "b": torch.tensor([1.0, float("nan")])})
    assert list(tmp_path.iterdir()) == []


def test_inputs_are_only_protected_inside_a_command(tmp_path):
    """A notebook may load a file and save over it later; one command may not."""
    path = tmp_path / "v.safetensors"
    save_safetensors(path, {"a": torch.ones(2)})
    note_input(path)  # outside a command: not tracked
    save_safetensors(path, {"a": torch.zeros(2)})
    with command_scope():
        note_input(tmp_path)  # a folder read as one input: every file in it
        with pytest.raises(TaskarithError, match="is an input of this command"):
            save_safetensors(path, {"a": torch.ones(2)})
        save_safetensors(tmp_path / "new.safetensors", {"a": torch.ones(2)})
    assert read_safetensors(path)[0]["a"].eq(0).all()


def test_a_json_key_given_twice_is_refused_everywhere_json_is_read(tmp_path):
    from taskarith.groundwork.safety import parse_json

    with pytest.raises(TaskarithError, match=r"where: not valid JSON \(key 'a' appears twice\)"):
        parse_json('{"b": {"a": 1, "a": 2}}', "where")
    assert parse_json('{"a": {"a": 1}}', "where") == {"a": {"a": 1}}
