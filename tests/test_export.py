"""`taskarith export RECIPE --out DIR`: recipes of task vectors or checkpoints, streamed into an HF folder that
transformers loads and that computes what taskarith's own θ0 + α·merged model computes."""

from __future__ import annotations

import os

import pytest
import torch
import yaml
from conftest import make_tiny_encoder
from test_extract import _save
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.extraction import extract_vector
from taskarith.merging.merge import merge_vectors
from taskarith.models import TextEncoder
from taskarith.vectors import TaskVector, applied_in_place

ENV = {"HF_HUB_OFFLINE": "1"}
TEXTS = ["what city river name", "free prize win now", "good movie film"]


@pytest.fixture(scope="module")
def models(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("export")
    base = _save(make_tiny_encoder(tokenizer).net, tokenizer, root / "base")
    tuned = []
    for i in range(3):
        net = make_tiny_encoder(tokenizer).net
        g = torch.Generator().manual_seed(10 + i)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=g))
        tuned.append(_save(net, tokenizer, root / f"ft{i}"))
    vectors = []
    for i, path in enumerate(tuned):
        tv = extract_vector(TextEncoder(base, max_length=16), TextEncoder(path, max_length=16)).vector
        tv.save(root / f"tau{i}.safetensors")
        vectors.append(str(root / f"tau{i}.safetensors"))
    return {"base": base, "tuned": tuned, "vectors": vectors, "root": root}


def _recipe(tmp_path, **fields):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


def _merge(recipe, out):
    return CliRunner().invoke(app, ["export", str(recipe), "--out", str(out)], env=ENV)


def _outputs(net, tokenizer_dir):
    enc = TextEncoder(str(tokenizer_dir), max_length=16)
    batch = enc.collate(TEXTS)
    with torch.no_grad():
        return net(**batch).last_hidden_state


def _expected(models, method, alpha, **settings):
    """taskarith's own merged model: θ0 + α·merge_vectors(...), applied in place."""
    base = TextEncoder(models["base"], max_length=16)
    merged = merge_vectors([TaskVector.load(p) for p in models["vectors"]], method, **settings)
    with applied_in_place(base, {n: alpha * t for n, t in merged.tensors.items()}):
        return _outputs(base.net, models["base"])


@pytest.mark.parametrize("method, settings", [
    ("task_arithmetic", {"weights": [1.0, 0.5, 2.0]}), ("ties", {"density": 0.3}), ("dare", {"density": 0.5, "seed": 3}),
    ("tsv_m", {}),
])
def test_an_exported_folder_loads_and_matches_taskarith(models, tmp_path, method, settings):
    from transformers import AutoModel

    weights = settings.pop("weights", None)
    inputs = [{"vector": v} | ({"weight": w} if weights else {}) for v, w in zip(models["vectors"], weights or [1] * 3)]
    recipe = _recipe(tmp_path, base=models["base"], method=method, alpha=0.7, inputs=inputs, **settings)
    result = _merge(recipe, tmp_path / "out")
    assert result.exit_code == 0, result.output
    loaded = AutoModel.from_pretrained(tmp_path / "out").eval()
    expected = _expected(models, method, 0.7, weights=weights, **settings)
    assert torch.allclose(_outputs(loaded, tmp_path / "out"), expected, atol=1e-5)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert {"config.json", "model.safetensors", "README.md", "recipe.yaml", "tokenizer_config.json"} <= set(names)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "taskarith 0.1.0" in card and all(os.path.basename(v) in card for v in models["vectors"])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_checkpoints_are_extracted_on_the_fly_with_the_recipes_preset(models, tmp_path):
    from transformers import AutoModel

    recipe = _recipe(tmp_path, base=models["base"], method="task_arithmetic", alpha=0.4, preset="attention",
                     inputs=[{"checkpoint": p} for p in models["tuned"]], max_shard_bytes=20_000)
    result = _merge(recipe, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "model.safetensors.index.json").exists()  # small shards: several files
    base = TextEncoder(models["base"], max_length=16)
    vectors = [extract_vector(base, TextEncoder(p, max_length=16), "attention").vector for p in models["tuned"]]
    merged = merge_vectors(vectors, "task_arithmetic")
    with applied_in_place(base, {n: 0.4 * t for n, t in merged.tensors.items()}):
        expected = _outputs(base.net, models["base"])
    loaded = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert torch.allclose(_outputs(loaded, tmp_path / "out"), expected, atol=1e-5)


def test_a_killed_export_leaves_nothing_that_loads(models, tmp_path, monkeypatch):
    import taskarith.recipes.hf_folder as hf_folder

    recipe = _recipe(tmp_path, base=models["base"], inputs=[{"vector": v} for v in models["vectors"]],
                     max_shard_bytes=20_000)
    real_add, calls = hf_folder.ModelFolderWriter.add, []

    def dying(self, name, tensor):
        calls.append(name)
        if len(calls) == 10:
            raise KeyboardInterrupt
        real_add(self, name, tensor)

    monkeypatch.setattr(hf_folder.ModelFolderWriter, "add", dying)
    with pytest.raises(KeyboardInterrupt):
        from taskarith.recipes import load_recipe, merge_recipe

        spec, folder = load_recipe(recipe)
        merge_recipe(spec, folder, tmp_path / "out", recipe_text=recipe.read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]
    # a SIGKILL leaves the hidden folder; the next export to the same place removes it once its writer is gone
    stale = tmp_path / ".out.999999999.partial"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    monkeypatch.undo()
    assert _merge(recipe, tmp_path / "out").exit_code == 0 and not stale.exists()


def test_refusals_are_one_line(models, tmp_path):
    from taskarith.training.selection import select

    linear = TaskVector.load(models["vectors"][0])
    TaskVector(linear.tensors, {**linear.meta, "paradigm": "linear"}).save(tmp_path / "linear.safetensors")
    other = make_tiny_encoder(TextEncoder(models["base"], max_length=16).tokenizer, seed=5)
    names = select(other.net, "full").names
    TaskVector({n: torch.ones_like(p) for n, p in other.named_weights().items() if n in names},
               {"base_hash": other.fingerprint(), "paradigm": "nonlinear"}).save(tmp_path / "foreign.safetensors")
    vector = {"vector": models["vectors"][0]}
    (tmp_path / "exists").mkdir()
    cut = tmp_path / "cut.safetensors"  # a vector file whose last tensor runs past its end
    cut.write_bytes(open(models["vectors"][0], "rb").read()[:-100])
    linked = tmp_path / "linked-base"  # a base whose config is a link: not followed, so not copied
    linked.mkdir()
    for f in os.listdir(models["base"]):
        src = os.path.join(models["base"], f)
        if f == "config.json":
            os.symlink(src, linked / f)
        else:
            (linked / f).write_bytes(open(src, "rb").read())
    for fields, out, message in [
        ({"inputs": [{"vector": str(tmp_path / "linear.safetensors")}]}, "o1", "cannot become a plain HF model"),
        ({"inputs": [{"vector": str(tmp_path / "foreign.safetensors")}]}, "o2", "made on another base"),
        ({"inputs": [vector], "method": "fisher"}, "o3", "fisher needs training data"),
        ({"inputs": [vector]}, "exists", "exists: already exists; export to a new folder"),
        ({"inputs": [{"vector": "a", "checkpoint": "b"}]}, "o4", "inputs.0: Value error, give exactly one of"),
        ({"inputs": [vector], "alpah": 1}, "o5", "alpah: Extra inputs are not permitted"),
        ({"inputs": [{"vector": "nowhere.safetensors"}]}, "o6", "vector 'nowhere.safetensors': no such file"),
        ({"inputs": [vector, {"checkpoint": models["tuned"][0]}], "preset": "attention"}, "o7",
         "covers other parameters than"),
        ({"inputs": [vector], "base": str(linked)}, "o8", "no config.json as a regular file"),
        ({"inputs": [{"vector": str(cut)}]}, "o9", "cut.safetensors: tensor"),
    ]:
        recipe = _recipe(tmp_path, **({"base": models["base"]} | fields))
        result = _merge(recipe, tmp_path / out)
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, (fields, result.output)
        assert message in result.stderr, (message, result.stderr)
        assert not (tmp_path / out).exists() or out == "exists"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def _family_pair(kind):
    """A tiny base and a fine-tune of it as taskarith models, and the module to save for each."""
    if kind == "clip":
        from clip_builders import tiny_clip, tiny_clip_tokenizer, tiny_processor

        from taskarith.models import ClipVision

        nets = [tiny_clip(0), tiny_clip(0)]
        wrap = [ClipVision.from_modules(n, tiny_clip_tokenizer(), tiny_processor(), model_id=f"clip-{i}")
                for i, n in enumerate(nets)]
    else:
        from test_t5 import t5_family

        wrap = [t5_family(0), t5_family(0)]
        nets = [w.net for w in wrap]
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in nets[1].parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    return nets, wrap


@pytest.mark.parametrize("kind", ["clip", "t5"])
def test_other_families_extract_and_export(tmp_path, kind):
    from safetensors.torch import load_file
    from transformers import AutoModel

    from taskarith.recipes import Recipe, merge_recipe

    nets, (base, tuned) = _family_pair(kind)
    nets[0].save_pretrained(tmp_path / "base")
    tv = extract_vector(base, tuned, "attention").vector
    params, tuned_params = base.named_weights(), tuned.named_weights()
    assert tv.names and all(torch.equal(t, (tuned_params[n].double() - params[n].double()).float())
                            for n, t in tv.tensors.items())
    tv.save(tmp_path / "tau.safetensors")
    recipe = Recipe.model_validate({"base": str(tmp_path / "base"), "alpha": 0.5,
                                    "inputs": [{"vector": str(tmp_path / "tau.safetensors")}]})
    merge_recipe(recipe, tmp_path, tmp_path / "out", recipe_text="")
    AutoModel.from_pretrained(tmp_path / "out")  # transformers loads it
    written, saved = load_file(tmp_path / "out" / "model.safetensors"), load_file(tmp_path / "base" / "model.safetensors")
    assert written.keys() == saved.keys()
    for name, t in written.items():
        expected = saved[name] + 0.5 * tv.tensors[name] if name in tv.tensors else saved[name]
        assert torch.allclose(t, expected, atol=1e-7), name
