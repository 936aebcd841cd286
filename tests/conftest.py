"""Tiny random-initialised models built from configs, so unit tests run in seconds on a CPU."""

from __future__ import annotations

import contextlib
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

# tiny models run fastest on one thread, and timings stay stable beside other work
torch.set_num_threads(1)

WORDS = ("what who where when how many is the a of city river name year big small good bad movie film "
         "great awful spam free win prize call now hello meet lunch today sport game team").split()


def tiny_tokenizer(tmp_path_factory):
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "?", ".", *WORDS]
    vocab = {w: i for i, w in enumerate(words)}
    try:
        tok = BertTokenizerFast(vocab=vocab)
    except TypeError:  # transformers 4 takes a vocab file only
        folder = tmp_path_factory.mktemp("vocab")
        (folder / "vocab.txt").write_text("\n".join(words) + "\n")
        tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    assert tok("city")["input_ids"][1] == vocab["city"]
    return tok


def tiny_bert_config(vocab_size: int = 64):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)


@contextlib.contextmanager
def interrupted_after(steps: int):
    """Fine-tuning inside the block stops as Ctrl-C would stop it, after `steps` optimizer steps."""
    import taskarith.training.trainer as trainer

    real, taken = trainer.training_step, []

    def step(*args, **kwargs):
        if len(taken) == steps:
            raise KeyboardInterrupt
        taken.append(step)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        mp.setattr(trainer, "training_step", step)
        yield


def make_tiny_encoder(tokenizer, seed: int = 0, dtype=torch.float32):
    from transformers import BertModel

    from taskarith.models import TextEncoder

    torch.manual_seed(seed)
    config = tiny_bert_config(len(tokenizer))
    config._attn_implementation = "eager"
    net = BertModel(config, add_pooling_layer=False).to(dtype)
    return TextEncoder.from_module(net, tokenizer, model_id=f"tiny-bert-seed{seed}", max_length=16)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory)


@pytest.fixture
def encoder(tokenizer):
    return make_tiny_encoder(tokenizer)


@pytest.fixture
def toy_task():
    """Two separable classes made of disjoint words."""
    a = ["what city river name", "where is the river", "what name of the city", "where city big"]
    b = ["free prize win now", "call now win free", "win a prize now", "free call spam win"]
    texts = (a + b) * 3
    labels = ([0] * 4 + [1] * 4) * 3
    return texts, labels, ("city", "spam"), ("{}.",)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer):
    """A tiny random BERT saved in HF format, loadable by name like any local checkpoint."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    enc = make_tiny_encoder(tokenizer)
    enc.net.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_csv_task(path, rows):
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="session")
def csv_tasks(tmp_path_factory):
    """Two small labelled file tasks over the tiny vocabulary."""
    import random

    folder = tmp_path_factory.mktemp("tasks")
    rng = random.Random(0)
    place = "what who where city river name big small".split()
    spam = "free win prize call now spam".split()
    good = "good great movie film".split()
    bad = "bad awful small movie".split()

    def rows(groups):
        out = []
        for label, words in groups:
            for _ in range(40):
                out.append((" ".join(rng.choice(words) for _ in range(5)) + f" {rng.randint(0, 9)}", label))
        return out

    a = write_csv_task(folder / "places.csv", rows([("city", place), ("spam", spam)]))
    b = write_csv_task(folder / "reviews.csv", rows([("good", good), ("bad", bad)]))
    return [str(a), str(b)]



def tiny_config(model_dir, tasks, **overrides):
    from taskarith.config import validate

    tree = {
        "name": "tiny",
        "model": {"name": str(model_dir), "max_length": 16},
        "data": {"tasks": tasks},
        "train": {"steps": 4, "batch_size": 8, "lr": 1e-3, "warmup_steps": 1, "checkpoint_every": 2},
        "eval": {"batch_size": 16},
    }
    for key, value in overrides.items():
        tree[key] = {**tree.get(key, {}), **value}
    return validate(tree)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, tiny_model_dir, csv_tasks):
    """A small finished run with results.json, report.md and figures."""
    from taskarith.config import validate
    from taskarith.report import write_report
    from taskarith.run import run_experiment

    folder = tmp_path_factory.mktemp("finished")
    tree = {"model": {"name": str(tiny_model_dir), "max_length": 16}, "data": {"tasks": csv_tasks},
            "train": {"steps": 2, "batch_size": 8, "lr": 1e-3, "warmup_steps": 1},
            "eval": {"batch_size": 16, "alphas": [0.0, 0.5, 1.0]}, "paradigms": ["nonlinear"]}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TASKARITH_CACHE", str(folder / "cache"))
        run_experiment(validate(tree), folder / "run", progress=False, log=lambda *_: None)
        write_report(folder / "run")
    return folder / "run"


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny random CLIP saved in HF format, loadable by path like any local checkpoint."""
    from clip_builders import tiny_clip, tiny_clip_tokenizer, tiny_processor

    folder = tmp_path_factory.mktemp("tiny-clip")
    tiny_clip().save_pretrained(folder)
    tiny_clip_tokenizer().save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder

def run_pipeline(tmp_path, *, family: str, model_dir, tasks: list[str], root, max_length: int) -> dict:
    """A whole tiny `run` over two tasks under all three paradigms with every cheap analysis; its results."""
    import json

    from taskarith.config import validate
    from taskarith.run import run_experiment

    cfg = validate({
        "name": f"tiny-{family}",
        "model": {"family": family, "name": str(model_dir), "max_length": max_length, "device": "cpu"},
        "data": {"tasks": tasks, "root": str(root), "caps": {"train": 32, "val": 8, "test": 12}},
        "train": {"steps": 3, "batch_size": 8, "lr": 1e-3, "warmup_steps": 1, "checkpoint_every": 2},
        "eval": {"batch_size": 16, "alphas": [0.0, 0.5, 1.0]},
        "analysis": {"kernel": True, "similarity": True, "disentangle_pairs": [tasks],
                     "disentangle_grid": 3, "disentangle_points": 8},
    })
    results = json.loads(run_experiment(cfg, tmp_path, progress=False, log=lambda *_: None).read_text())
    names = {t.split(":", 1)[1] for t in tasks}
    assert set(results["paradigms"]) == {"nonlinear", "linear", "attention"}
    for entry in results["paradigms"].values():
        seed = entry["seeds"]["0"]
        assert 0 <= seed["addition"]["absolute"] <= 1 and set(seed["negation"]) == names
    assert {"similarity", "kernel", "disentangle"} <= set(results["analysis"])
    assert results["model"]["family"] == family
    return results


# HF CLIPModel name prefixes and their open_clip counterparts, outside and inside the residual blocks
_OPENCLIP_PREFIXES = (
    ("vision_model.embeddings.patch_embedding.", "visual.conv1."),
    ("vision_model.embeddings.class_embedding", "visual.class_embedding"),
    ("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"),
    ("vision_model.pre_layrnorm.", "visual.ln_pre."),
    ("vision_model.post_layernorm.", "visual.ln_post."),
    ("vision_model.encoder.layers.", "visual.transformer.resblocks."),
    ("text_model.embeddings.token_embedding.", "token_embedding."),
    ("text_model.embeddings.position_embedding.weight", "positional_embedding"),
    ("text_model.final_layer_norm.", "ln_final."),
    ("text_model.encoder.layers.", "transformer.resblocks."),
)
_OPENCLIP_IN_BLOCK = ((".layer_norm1.", ".ln_1."), (".layer_norm2.", ".ln_2."), (".mlp.fc1.", ".mlp.c_fc."),
                      (".mlp.fc2.", ".mlp.c_proj."), (".self_attn.out_proj.", ".attn.out_proj."))
# applied as x @ proj in open_clip, as Linear (weight = proj.T) in HF
_OPENCLIP_TRANSPOSED = {"visual_projection.weight": "visual.proj", "text_projection.weight": "text_projection"}


def hf_to_openclip(state: dict) -> dict:
    """An HF CLIPModel state dict as open_clip saves it: its names, q, k and v in one in_proj, projections
    transposed. Written apart from the converter, so a round trip checks the converter's tables."""
    out, qkv = {}, {}
    for key, t in state.items():
        if key.endswith("position_ids"):
            continue
        if key in _OPENCLIP_TRANSPOSED:
            out[_OPENCLIP_TRANSPOSED[key]] = t.T.contiguous()
            continue
        name = next((oc + key[len(hf):] for hf, oc in _OPENCLIP_PREFIXES if key.startswith(hf)), key)
        for hf, oc in _OPENCLIP_IN_BLOCK:
            name = name.replace(hf, oc)
        if match := re.fullmatch(r"(.*)\.self_attn\.([qkv])_proj\.(weight|bias)", name):
            qkv.setdefault(f"{match[1]}.attn.in_proj_{match[3]}", {})[match[2]] = t
        else:
            out[name] = t
    out.update({key: torch.cat([parts[c] for c in "qkv"]) for key, parts in qkv.items()})
    return out


def base_and_vectors(root, theta: dict, taus: list):
    """Under root: a base folder holding θ0 (config.json, model.safetensors) and one full-preset task vector
    made on it per τ, saved as v0.safetensors, v1.safetensors, …"""
    from taskarith.groundwork.atomic import save_safetensors
    from taskarith.groundwork.tensor_files import named_digest
    from taskarith.vectors import TaskVector

    (root / "base").mkdir()
    (root / "base" / "config.json").write_text("{}")
    save_safetensors(root / "base" / "model.safetensors", theta)
    meta = {"base_model": "m", "base_hash": named_digest(theta, theta.get), "paradigm": "nonlinear", "preset": "full"}
    for i, tau in enumerate(taus):
        TaskVector(tau, {**meta, "task": f"t{i}"}).save(root / f"v{i}.safetensors")
    return root

