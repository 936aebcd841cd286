"""Presets find the attention, bias and MLP parts by architecture: tiny random BERT, MPNet, RoBERTa and DistilBERT
built from configs select the same parts, and an MPNet folder goes through every paradigm, `vector extract` and the
merge export."""

from __future__ import annotations

import pytest
import torch
import yaml
from conftest import WORDS, tiny_bert_config
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.models import TextEncoder
from taskarith.paradigms import PARADIGMS
from taskarith.training.selection import PRESETS, architecture_of, match_names, patterns_for, select
from taskarith.training.trainable import Trainable
from taskarith.vectors import TaskVector, applied_in_place

LAYERS = 2
TEXTS = ["what city river name", "free prize win now now now", "good movie"]
# per architecture: where its layers sit, and each part's parameter names inside one layer
PARTS = {
    "bert": ("encoder.layer", {
        "attention": ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"],
        "mlp": ["intermediate.dense", "output.dense"]}),
    "mpnet": ("encoder.layer", {
        "attention": ["attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o"],
        "mlp": ["intermediate.dense", "output.dense"]}),
    "distilbert": ("transformer.layer", {
        "attention": ["attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin"],
        "mlp": ["ffn.lin1", "ffn.lin2"]}),
}
PARTS["roberta"] = PARTS["bert"]
SIZES = dict(hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=64,
             max_position_embeddings=64)


def tiny_net(kind: str, vocab_size: int = 64, seed: int = 0) -> torch.nn.Module:
    import transformers as tf

    torch.manual_seed(seed)
    if kind == "bert":
        return tf.BertModel(tiny_bert_config(vocab_size), add_pooling_layer=False)
    if kind == "distilbert":
        return tf.DistilBertModel(tf.DistilBertConfig(vocab_size=vocab_size, dim=32, n_layers=LAYERS, n_heads=4,
                                                      hidden_dim=64, max_position_embeddings=64))
    config_class, model_class = {"mpnet": (tf.MPNetConfig, tf.MPNetModel),
                                 "roberta": (tf.RobertaConfig, tf.RobertaModel)}[kind]
    config = config_class(vocab_size=vocab_size, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0, **SIZES)
    config._attn_implementation = "eager"
    return model_class(config, add_pooling_layer=False)


# per preset: which parts, and whether their biases come too
PRESET_PARTS = {"attention": (["attention"], [".weight"]), "attention+bias": (["attention"], [".weight", ".bias"]),
                "attention+mlp": (["attention", "mlp"], [".weight"]),
                "attention+mlp+bias": (["attention", "mlp"], [".weight", ".bias"])}


def expected(kind: str, preset: str) -> set[str]:
    where, parts = PARTS[kind]
    chosen, suffixes = PRESET_PARTS[preset]
    return {f"{where}.{i}.{m}{s}" for i in range(LAYERS) for part in chosen for m in parts[part] for s in suffixes}


@pytest.mark.parametrize("kind", sorted(PARTS))
@pytest.mark.parametrize("preset", sorted(PRESET_PARTS))
def test_each_preset_selects_the_same_parts_on_each_architecture(kind, preset):
    assert set(PRESET_PARTS) == set(PRESETS) - {"full"}
    net = tiny_net(kind)
    assert architecture_of(net) == kind
    chosen = set(select(net, preset).names)
    assert chosen == expected(kind, preset)
    # a merge recipe matches names alone (no model loaded): the union of every architecture picks the same
    assert set(match_names(dict(net.named_parameters()), patterns_for(preset))) == chosen


def test_the_attention_preset_on_mpnet_is_four_matrices_a_layer():
    net = tiny_net("mpnet")
    names = select(net, "attention").names
    assert len(names) == 4 * LAYERS and all(net.get_parameter(n).dim() == 2 for n in names)
    assert not any("relative_attention_bias" in n or "LayerNorm" in n for n in select(net, "attention+mlp+bias").names)


def test_the_architecture_is_found_inside_a_wrapper_and_an_unknown_one_gets_every_pattern():
    from transformers import ElectraConfig, ElectraModel

    assert architecture_of(torch.nn.Sequential(tiny_net("mpnet"))) == "mpnet"
    assert architecture_of(torch.nn.Linear(2, 2)) is None
    electra = ElectraModel(ElectraConfig(vocab_size=64, embedding_size=32, **SIZES))  # BERT's names, not in the table
    assert set(select(electra, "attention").names) == expected("bert", "attention")


# --- an MPNet folder end to end -----------------------------------------------------------------------------

def tiny_mpnet_tokenizer(folder):
    from transformers import MPNetTokenizerFast

    words = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>", "?", ".", *WORDS]
    try:
        tok = MPNetTokenizerFast(vocab={w: i for i, w in enumerate(words)})
    except TypeError:  # transformers 4 takes a vocab file only
        (folder / "vocab.txt").write_text("\n".join(words) + "\n")
        tok = MPNetTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    assert tok("city")["input_ids"] == [0, words.index("city"), 2]
    return tok


def _save(net, tokenizer, folder) -> str:
    net.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def mpnet_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpnet")
    tok = tiny_mpnet_tokenizer(root)
    base = _save(tiny_net("mpnet", len(tok)), tok, root / "base")
    tuned = []
    for i in range(2):
        net = tiny_net("mpnet", len(tok))
        g = torch.Generator().manual_seed(10 + i)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=g))
        tuned.append(_save(net, tok, root / f"ft{i}"))
    return {"base": base, "tuned": tuned}


def test_the_text_encoder_loads_mpnet_and_mean_pools_over_the_mask(mpnet_folders):
    enc = TextEncoder(mpnet_folders["base"], max_length=16)
    assert type(enc.net).__name__ == "MPNetModel"
    with torch.no_grad():
        together = enc.represent(enc.collate(TEXTS))
        alone = torch.cat([enc.represent(enc.collate([t])) for t in TEXTS])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)  # padding never enters the mean


@pytest.mark.parametrize("paradigm", sorted(PARADIGMS))
def test_every_paradigm_trains_on_mpnet(mpnet_folders, paradigm):
    enc = TextEncoder(mpnet_folders["base"], max_length=16)
    trainable = Trainable(enc, PARADIGMS[paradigm])
    try:
        trainable.forward(enc.collate(TEXTS)).square().sum().backward()
        grads = [t.grad for t in trainable.tensors.values()]
        assert len(grads) == len(select(enc.net, PARADIGMS[paradigm].preset).names)
        assert all(g is not None and torch.count_nonzero(g) > 0 for g in grads)
    finally:
        trainable.close()


def test_vector_extract_and_the_merge_export_work_on_mpnet(mpnet_folders, tmp_path):
    from transformers import AutoModel

    env = {"HF_HUB_OFFLINE": "1"}
    vectors = []
    for i, tuned in enumerate(mpnet_folders["tuned"]):
        out = tmp_path / f"tau{i}.safetensors"
        result = CliRunner().invoke(app, ["vector", "extract", "--base", mpnet_folders["base"], "--finetuned", tuned,
                                          "--preset", "attention", "--out", str(out)], env=env)
        assert result.exit_code == 0, result.output
        vectors.append(TaskVector.load(out))
        assert set(vectors[-1].tensors) == expected("mpnet", "attention")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"base": mpnet_folders["base"], "method": "task_arithmetic", "alpha": 0.5,
                                      "preset": "attention",
                                      "inputs": [{"checkpoint": p} for p in mpnet_folders["tuned"]]}))
    result = CliRunner().invoke(app, ["export", str(recipe), "--out", str(tmp_path / "out")], env=env)
    assert result.exit_code == 0, result.output
    base = TextEncoder(mpnet_folders["base"], max_length=16)
    batch = base.collate(TEXTS)
    summed = {n: 0.5 * (vectors[0].tensors[n] + vectors[1].tensors[n]) for n in vectors[0].tensors}
    with applied_in_place(base, summed), torch.no_grad():
        want = base.net(**batch).last_hidden_state
    loaded = AutoModel.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        got = loaded(**batch).last_hidden_state
    assert type(loaded).__name__ == "MPNetModel"
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
