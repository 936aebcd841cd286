"""Fuzzing merge recipes: whatever a recipe says, `taskarith export` writes a folder of finite weights or stops
with one line, and leaves nothing behind when it stops."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from taskarith.groundwork.errors import TaskarithError
from taskarith.recipes import load_recipe, merge_recipe
from taskarith.groundwork.tensor_files import read_safetensors
from conftest import base_and_vectors

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

KEYS = ["base", "inputs", "method", "alpha", "preset", "density", "seed", "majority_sign_method", "common_share",
        "max_shard_bytes", "vector", "checkpoint", "weight", "extra"]
METHODS = ["task_arithmetic", "weight_averaging", "ties", "dare", "dare_ties", "tsv_m", "iso_c", "iso_cts",
           "fisher", "regmean", "adamerging", "nope"]
NUMBERS = (st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**30, 10**30)
           | st.sampled_from([0, 1, -1, 0.5, 1e-300, 1e300, -1e300, 2**63]))
SCALARS = st.none() | st.booleans() | NUMBERS | st.text(max_size=10) | st.sampled_from(METHODS)
TREES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=4), max_leaves=20)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A base folder of two tensors and two vectors made on it: enough for every data-free method."""
    g = torch.Generator().manual_seed(0)
    theta = {"layer.weight": torch.randn(6, 4, generator=g), "layer.bias": torch.randn(6, generator=g)}
    taus = [{k: 0.1 * torch.randn(v.shape, generator=g) for k, v in theta.items()} for _ in range(2)]
    return base_and_vectors(tmp_path_factory.mktemp("recipes"), theta, taus)


def _merge_or_error(root, tree) -> None:
    """A finished folder whose weights are all finite, or one line and no folder, no partial folder."""
    work = root / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    (work / "recipe.yaml").write_text(yaml.safe_dump(tree, allow_unicode=True))
    out = work / "out"
    try:
        recipe, where = load_recipe(work / "recipe.yaml")
        merge_recipe(recipe, where, out, recipe_text="")
    except TaskarithError as e:
        assert "\n" not in str(e)
        assert sorted(p.name for p in work.iterdir()) == ["recipe.yaml"]
        return
    shards = sorted(out.glob("*.safetensors"))  # one file, or shards when max_shard_bytes is small
    assert shards
    for shard in shards:
        assert all(torch.isfinite(t).all() for t in read_safetensors(shard)[0].values())


@FUZZ
@given(tree=TREES)
@example(tree={"base": "../base", "inputs": [{"vector": "../v0.safetensors"}], "extra": 1})
def test_recipe_trees_give_a_model_or_an_error(tree, folder):
    _merge_or_error(folder, tree)


def _mostly(low: float, high: float) -> st.SearchStrategy:
    """Values in range three times in four, so that most recipes get as far as merging."""
    return st.one_of(*[st.floats(low, high)] * 3, NUMBERS)


SETTINGS = st.fixed_dictionaries({}, optional={
    "method": st.sampled_from(METHODS), "alpha": _mostly(-16, 16), "density": _mostly(0, 1),
    "seed": st.integers(0, 10) | NUMBERS, "common_share": _mostly(0, 1), "preset": st.sampled_from(["full", "attention", "regex:layer\\.b.*", "regex:(", "x"]),
    "majority_sign_method": st.sampled_from(["total", "frequency", "other"]), "max_shard_bytes": NUMBERS})


@FUZZ
@given(fields=SETTINGS, weights=st.lists(st.none() | _mostly(-2, 2), min_size=2, max_size=2),
       same=st.booleans())
@example(fields={}, weights=[1e300, 1.0], same=False)  # overflows float32
@example(fields={}, weights=[1.0, -1.0], same=True)  # one file twice
@example(fields={"method": "ties", "density": 1e-300}, weights=[None, None], same=False)
@example(fields={"max_shard_bytes": 1}, weights=[None, None], same=False)  # one shard per tensor
def test_valid_recipes_with_any_settings_give_a_model_or_an_error(fields, weights, same, folder):
    inputs = [{"vector": f"../v{0 if same else i}.safetensors", **({} if w is None else {"weight": w})}
              for i, w in enumerate(weights)]
    _merge_or_error(folder, {"base": "../base", "inputs": inputs, **fields})


@FUZZ
@given(edits=st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets"]),
                             st.sampled_from([None, "F32", "X9", [], [6], [6, 4], [4, 6], [0, 96], [0, 10**30],
                                              [-4, 0], [0.5, 1], True]), min_size=1, max_size=3),
       name=st.sampled_from(["layer.weight", "layer.bias"]))
def test_an_input_with_a_mutated_header_gives_a_model_or_an_error(edits, name, folder):
    data = (folder / "v1.safetensors").read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    header[name].update(edits)
    raw = json.dumps(header).encode()
    (folder / "v9.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + length:])
    _merge_or_error(folder, {"base": "../base", "inputs": [{"vector": "../v0.safetensors"},
                                                           {"vector": "../v9.safetensors"}]})
