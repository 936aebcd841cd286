"""`taskarith vector extract`: task vectors from HF checkpoints made anywhere, checked against their base."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import make_tiny_encoder, tiny_bert_config
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.groundwork.errors import TaskarithError
from taskarith.models import TextEncoder
from taskarith.vectors import TaskVector

ATTENTION_SUFFIXES = ("attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight",
                      "attention.output.dense.weight")


def _save(net, tokenizer, folder):
    net.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _finetuned(tokenizer, folder, *, scale=0.01, only=None):
    """The tiny base with every weight (or those whose name ends in `only`) moved by seeded noise."""
    net = make_tiny_encoder(tokenizer).net
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if only is None or name.endswith(only):
                p.add_(scale * torch.randn(p.shape, generator=g))
    return _save(net, tokenizer, folder)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("checkpoints")
    return {"base": _save(make_tiny_encoder(tokenizer).net, tokenizer, root / "base"),
            "full": _finetuned(tokenizer, root / "full"),
            "attention": _finetuned(tokenizer, root / "attention", only=ATTENTION_SUFFIXES)}


def _extract(*args):
    return CliRunner().invoke(app, ["vector", "extract", *args], env={"HF_HUB_OFFLINE": "1"})


def test_extraction_is_the_difference_and_checks_its_base(checkpoints, tmp_path):
    out = tmp_path / "tau.safetensors"
    result = _extract("--base", checkpoints["base"], "--finetuned", checkpoints["full"], "--out", str(out))
    assert result.exit_code == 0, result.output
    tv = TaskVector.load(out)
    base, tuned = (TextEncoder(checkpoints[k], max_length=16) for k in ("base", "full"))
    b, f = base.named_weights(), tuned.named_weights()
    assert set(tv.tensors) == set(b)
    for name, t in tv.tensors.items():
        assert torch.equal(t, (f[name].double() - b[name].double()).float()), name
    tv.check_base(base)
    assert tv.meta["source"] == {"base": checkpoints["base"], "finetuned": checkpoints["full"]}
    assert tv.meta["preset"] == "full" and tv.meta["family"] == "text-encoder"
    with pytest.raises(TaskarithError, match="was made on"):
        tv.check_base(tuned)


def test_the_attention_preset_keeps_q_k_v_o_and_says_what_it_left_out(checkpoints, tmp_path):
    out = tmp_path / "tau.safetensors"
    result = _extract("--base", checkpoints["base"], "--finetuned", checkpoints["full"], "--preset", "attention",
                      "--out", str(out))
    assert result.exit_code == 0, result.output
    tv = TaskVector.load(out)
    assert tv.names and all(n.endswith(ATTENTION_SUFFIXES) for n in tv.names)
    assert len(tv.names) == 4 * tiny_bert_config().num_hidden_layers
    assert "outside preset 'attention'" in result.stderr and "% of its change" in result.stderr
    clean = _extract("--base", checkpoints["base"], "--finetuned", checkpoints["attention"], "--preset",
                     "attention", "--out", str(tmp_path / "clean.safetensors"))
    assert clean.exit_code == 0 and "warning" not in clean.stderr, clean.output


def _variant(tokenizer, folder, **config):
    from transformers import BertModel

    settings = tiny_bert_config(len(tokenizer)).to_dict() | config
    torch.manual_seed(0)
    return _save(BertModel(type(tiny_bert_config())(**settings), add_pooling_layer=False), tokenizer, folder)


def _half(tokenizer, folder):
    return _save(make_tiny_encoder(tokenizer, dtype=torch.float16).net, tokenizer, folder)


@pytest.mark.parametrize("variant, message", [
    (lambda tok, d: _variant(tok, d, num_hidden_layers=3), r"parameter 'encoder.layer.2.attention.output.LayerNorm."
                                                          r"bias' of .*other is missing from .*base \(15 more\)"),
    (lambda tok, d: _variant(tok, d, intermediate_size=48), "encoder.layer.0.intermediate.dense.weight: shape "
                                                            r"\(64, 32\) in base .* vs \(48, 32\) in fine-tuned"),
    (_half, "weights stored as F32 in base .*base vs F16 in fine-tuned .*other"),
])
def test_a_mismatch_is_one_line_naming_both_sides(checkpoints, tokenizer, tmp_path, variant, message):
    other = variant(tokenizer, tmp_path / "other")
    result = _extract("--base", checkpoints["base"], "--finetuned", other, "--out", str(tmp_path / "t.safetensors"))
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    import re

    assert re.search(message, result.stderr), result.stderr
    assert not (tmp_path / "t.safetensors").exists()


def test_another_architecture_and_bad_arguments_are_refused(checkpoints, tokenizer, tmp_path):
    from transformers import RobertaConfig, RobertaModel

    cfg = tiny_bert_config(len(tokenizer)).to_dict()
    roberta = RobertaModel(RobertaConfig(**{k: cfg[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                                                "num_attention_heads", "intermediate_size")},
                                         max_position_embeddings=cfg["max_position_embeddings"] + 2),
                           add_pooling_layer=False)
    other = _save(roberta, tokenizer, tmp_path / "roberta")
    out = str(tmp_path / "t.safetensors")
    for args, message in [
        (["--finetuned", other], "is BertModel (bert) but fine-tuned .* is RobertaModel (roberta)"),
        (["--finetuned", checkpoints["base"]], "does not differ from .* in the 'full' parameters"),
        (["--finetuned", checkpoints["full"], "--preset", "nope"], "unknown preset 'nope'"),
        (["--finetuned", str(tmp_path / "missing")], "missing: no such model folder"),
    ]:
        result = _extract("--base", checkpoints["base"], *args, "--out", out)
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
        assert re.search(message.replace("(", r"\(").replace(")", r"\)"), result.stderr), result.stderr
