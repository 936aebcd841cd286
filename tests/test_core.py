"""The invariants we check before we believe a number (GUIDE.md), on tiny random models."""

from __future__ import annotations

import pytest
import torch

from taskarith.config import TrainConfig
from taskarith.groundwork.errors import TaskarithError
from taskarith.training.linearize import base_params, linearized_represent
from taskarith.training.selection import select
from taskarith.evaluate import EvalSet, sweep
from taskarith.training.trainable import Trainable
from taskarith.training.trainer import TrainingJob, finetune
from taskarith.paradigms import resolve_paradigm
from taskarith.vectors import TaskVector, applied_in_place, combine

from conftest import interrupted_after, make_tiny_encoder

FAST = TrainConfig(steps=6, batch_size=4, lr=1e-3, warmup_steps=1, checkpoint_every=2)


def _train(encoder, toy_task, tmp_path, paradigm="nonlinear", cfg=FAST):
    texts, labels, classes, templates = toy_task
    head = encoder.zero_shot_head(classes, templates)
    job = TrainingJob(resolve_paradigm(paradigm), cfg, tmp_path, task="toy", progress=False)
    return finetune(encoder, texts, labels, head, job)


def _outputs(encoder, params=None, texts=("what city river", "free prize now")):
    with torch.no_grad():
        return encoder.represent(encoder.collate(list(texts)), params)


@pytest.fixture
def trained_weights(monkeypatch):
    """Every weight of the module as training left it, read just before the trainer puts θ0 back."""
    seen = {}
    close = Trainable.close

    def read_then_close(trainable):
        seen.update({n: p.detach().clone() for n, p in trainable.params.items()})
        close(trainable)

    monkeypatch.setattr(Trainable, "close", read_then_close)
    return seen


def test_vector_of_identical_weights_is_zero(encoder):
    trainable = Trainable(encoder, resolve_paradigm("nonlinear"))
    try:
        tv = TaskVector(trainable.delta(), {"task": "x"})  # θ_t − θ0 before any step
    finally:
        trainable.close()
    assert all(torch.count_nonzero(t) == 0 for t in tv.tensors.values())


def test_base_plus_vector_reproduces_finetuned_model(encoder, toy_task, tmp_path, trained_weights):
    tv = _train(encoder, toy_task, tmp_path)
    finetuned_out = _outputs(encoder, trained_weights)
    assert not torch.allclose(_outputs(encoder), finetuned_out, atol=1e-4)
    with applied_in_place(encoder, combine([(tv, 1.0)])):
        applied = _outputs(encoder)
    torch.testing.assert_close(applied, finetuned_out, atol=1e-5, rtol=1e-5)


def test_in_place_application_restores_base_bit_exactly(encoder, toy_task, tmp_path):
    before = {n: p.clone() for n, p in encoder.named_weights().items()}
    tv = _train(encoder, toy_task, tmp_path)
    with applied_in_place(encoder, combine([(tv, 0.37)])):
        pass
    for n, p in encoder.named_weights().items():
        assert torch.equal(p, before[n]), n


def test_linearized_model_at_zero_equals_model(encoder):
    names = select(encoder.net, "full").names
    theta0 = base_params(encoder, names)
    batch = encoder.collate(["what city river", "free prize now"])
    zero = {n: torch.zeros_like(theta0[n]) for n in names}
    with torch.no_grad():
        torch.testing.assert_close(linearized_represent(encoder, batch, theta0, zero), encoder.represent(batch))


def test_jvp_matches_finite_difference(tokenizer):
    enc = make_tiny_encoder(tokenizer, dtype=torch.float64)
    names = select(enc.net, "attention").names
    theta0 = base_params(enc, names)
    batch = enc.collate(["what city river", "free prize now"])
    gen = torch.Generator().manual_seed(1)
    v = {n: torch.randn(theta0[n].shape, generator=gen, dtype=torch.float64) for n in names}
    eps = 1e-5
    with torch.no_grad():
        f0 = enc.represent(batch)
        jv = linearized_represent(enc, batch, theta0, v) - f0
        plus = enc.represent(batch, {n: theta0[n] + eps * v[n] for n in names})
        minus = enc.represent(batch, {n: theta0[n] - eps * v[n] for n in names})
    torch.testing.assert_close(jv, (plus - minus) / (2 * eps), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("paradigm", ["attention", "nonlinear"])
def test_training_changes_only_the_selected_parameters(encoder, toy_task, tmp_path, paradigm, trained_weights):
    before = {n: p.clone() for n, p in encoder.named_weights().items()}
    tv = _train(encoder, toy_task, tmp_path, paradigm)
    selected = set(select(encoder.net, resolve_paradigm(paradigm).preset).names)
    assert set(tv.names) == selected
    changed = 0
    for n, p in trained_weights.items():
        if n in selected:
            changed += not torch.equal(p, before[n])
            assert torch.equal(tv.tensors[n], p - before[n])
        else:
            assert torch.equal(p, before[n]), f"{n} changed outside the preset"
    assert changed > 0


def test_linear_training_moves_tau_and_leaves_the_module_alone(encoder, toy_task, tmp_path):
    before = {n: p.clone() for n, p in encoder.named_weights().items()}
    tv = _train(encoder, toy_task, tmp_path, "linear")
    assert tv.linear and tv.norm() > 0
    assert all(torch.equal(p, before[n]) for n, p in encoder.named_weights().items())


def test_linear_vector_applies_to_the_linearized_model(encoder, toy_task, tmp_path):
    tv = _train(encoder, toy_task, tmp_path, "linear")
    batch = encoder.collate(["what city river"])
    theta0 = base_params(encoder, tv.names)
    got = []
    sweep(encoder, [tv], [[0.5]], [EvalSet([batch], [torch.zeros(1, dtype=torch.long)])],
          lambda c, s, b, rep: got.append(rep))
    with torch.no_grad():
        expected = linearized_represent(encoder, batch, theta0, {n: 0.5 * t for n, t in tv.tensors.items()})
    torch.testing.assert_close(got[0], expected)


def _count_attention(net, blocks: int, d: int) -> None:
    assert select(net, "attention").count == 4 * d * d * blocks


def test_attention_preset_counts_bert(encoder):
    _count_attention(encoder.net, blocks=2, d=32)


def test_attention_preset_counts_clip():
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                           image_size=32, patch_size=8)
    _count_attention(CLIPVisionModel(cfg), blocks=3, d=32)


def test_attention_preset_counts_t5():
    from transformers import T5Config, T5ForConditionalGeneration

    cfg = T5Config(vocab_size=64, d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, num_decoder_layers=2)
    # encoder self-attention, decoder self-attention and cross-attention
    _count_attention(T5ForConditionalGeneration(cfg), blocks=2 + 2 * 2, d=32)


def test_ablation_presets_grow(encoder):
    counts = [select(encoder.net, p).count for p in ("attention", "attention+bias", "attention+mlp",
                                                      "attention+mlp+bias", "full")]
    assert counts == sorted(counts) and len(set(counts)) == 5


@pytest.mark.parametrize("preset", ["regex:^nothing$", "no-such-preset", "regex:("])
def test_bad_presets_are_errors(encoder, preset):
    with pytest.raises(TaskarithError):
        select(encoder.net, preset)


def test_regex_preset(encoder):
    sel = select(encoder.net, r"regex:layer\.0\..*query\.weight$")
    assert sel.names == ("encoder.layer.0.attention.self.query.weight",) and sel.count == 32 * 32


def test_save_load_round_trip(encoder, toy_task, tmp_path):
    tv = _train(encoder, toy_task, tmp_path, "attention")
    loaded = TaskVector.load(tmp_path / "vector.safetensors")
    assert loaded.meta["paradigm"] == "attention" and loaded.meta["preset"] == "attention"
    assert loaded.meta["selection"]["count"] == tv.numel()
    assert loaded.meta["train_config"]["lr"] == FAST.lr
    for n, t in tv.tensors.items():
        assert torch.equal(loaded.tensors[n], t)
    loaded.check_base(encoder)


def test_mismatched_base_is_refused(encoder, tokenizer, toy_task, tmp_path):
    tv = _train(encoder, toy_task, tmp_path, "attention")
    other = make_tiny_encoder(tokenizer, seed=1)
    with pytest.raises(TaskarithError, match="tiny-bert-seed0.*tiny-bert-seed1"):
        tv.check_base(other)
    with pytest.raises(TaskarithError, match="different bases"):
        tv + TaskVector(tv.tensors, {**tv.meta, "base_hash": "0" * 64})
    with pytest.raises(TaskarithError, match="shape"):
        tv + TaskVector({n: t[:1] for n, t in tv.tensors.items()}, tv.meta)


def test_arithmetic(encoder, toy_task, tmp_path):
    tv = _train(encoder, toy_task, tmp_path, "attention")
    two = tv + tv
    assert all(torch.equal(two.tensors[n], 2 * tv.tensors[n]) for n in tv.names)
    assert (tv - tv).norm() == 0 and (-tv).cosine(tv) == pytest.approx(-1.0)
    assert sum([tv, tv, tv]).norm() == pytest.approx(3 * tv.norm(), rel=1e-6)
    assert (0.5 * tv).norm() == pytest.approx(0.5 * tv.norm(), rel=1e-6)


def test_combine_pairs_tensors_by_name_whatever_their_order(encoder, toy_task, tmp_path):
    from taskarith.vectors import TaskVector, combine

    tv = _train(encoder, toy_task, tmp_path, "nonlinear")
    shuffled = TaskVector(dict(reversed(list(tv.tensors.items()))), tv.meta)  # as a reloaded file may hold them
    assert list(shuffled.tensors) != list(tv.tensors)
    summed = combine([(tv, 1.0), (shuffled, 2.0)])
    assert all(torch.allclose(summed[n], 3 * tv.tensors[n]) for n in tv.names)
    assert shuffled.dot(tv) == tv.dot(shuffled) == tv.dot(tv) and shuffled.norm() == tv.norm()


def test_resume_after_interruption_gives_the_same_vector(tokenizer, toy_task, tmp_path):
    straight = _train(make_tiny_encoder(tokenizer), toy_task, tmp_path / "a", "linear")
    enc = make_tiny_encoder(tokenizer)
    with interrupted_after(3):
        _train(enc, toy_task, tmp_path / "b", "linear")
    assert not (tmp_path / "b" / "vector.safetensors").exists()
    assert (tmp_path / "b" / "checkpoint.safetensors").exists()
    resumed = _train(enc, toy_task, tmp_path / "b", "linear")
    assert not (tmp_path / "b" / "checkpoint.safetensors").exists()
    for n in straight.names:
        assert torch.equal(straight.tensors[n], resumed.tensors[n]), n


def test_resume_nonlinear(tokenizer, toy_task, tmp_path):
    straight = _train(make_tiny_encoder(tokenizer), toy_task, tmp_path / "a", "attention")
    enc = make_tiny_encoder(tokenizer)
    with interrupted_after(5):
        _train(enc, toy_task, tmp_path / "b", "attention")
    resumed = _train(enc, toy_task, tmp_path / "b", "attention")
    for n in straight.names:
        assert torch.equal(straight.tensors[n], resumed.tensors[n]), n


def test_nan_loss_stops_with_the_step(encoder, toy_task, tmp_path):
    cfg = TrainConfig(steps=4, batch_size=4, lr=1e30, warmup_steps=0, grad_clip=None)
    with pytest.raises(TaskarithError, match="at step"):
        _train(encoder, toy_task, tmp_path, "nonlinear", cfg=cfg)


def test_batches_are_deterministic_cover_each_epoch_and_bucket_by_length():
    from taskarith.training.batches import batch_indices

    lengths = [(i * 37) % 101 for i in range(64)]
    epoch = [batch_indices(64, 8, 3, s, lengths) for s in range(8)]
    assert sorted(i for b in epoch for i in b) == list(range(64))
    assert epoch == [batch_indices(64, 8, 3, s, lengths) for s in range(8)]
    assert epoch != [batch_indices(64, 8, 4, s, lengths) for s in range(8)]
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epoch)
    plain = [batch_indices(64, 8, 3, s) for s in range(8)]
    assert spread < sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plain)


def test_bf16_precision_autocasts_and_returns_float32(encoder):
    batch = encoder.to_device(encoder.collate(["what city river", "free prize now"]))
    full = encoder.represent(batch)
    assert encoder.precision == "auto" and not encoder.uses_bf16()  # auto keeps float32 on CPU
    encoder.precision = "bf16"
    half = encoder.represent(batch)
    assert half.dtype == torch.float32 and not torch.equal(half, full)
    assert torch.allclose(half, full, atol=0.05)
