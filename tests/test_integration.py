"""The real embedded MiniLM, fetched into the cache (skipped when no registry is in reach)."""

from __future__ import annotations

import pytest
import torch

from taskarith.config import TrainConfig
from taskarith.groundwork.errors import TaskarithError
from taskarith.training.selection import select
from taskarith.training.trainer import TrainingJob, finetune
from taskarith.paradigms import resolve_paradigm
from taskarith.vectors import TaskVector, applied_in_place, combine

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def minilm():
    from taskarith.models import TextEncoder

    try:
        return TextEncoder(max_length=32)
    except TaskarithError as e:
        pytest.skip(f"embedded model unavailable: {e}")


def test_embedded_model_attention_preset_is_24_tensors(minilm):
    sel = select(minilm.net, "attention")
    assert len(sel.names) == 24 and sel.count == 4 * 384 * 384 * 6


def test_finetune_real_minilm_for_a_few_steps(minilm, tmp_path):
    texts = ["What is the capital of France ?", "Who wrote Hamlet ?", "How many legs does a spider have ?",
             "Where is Mount Everest ?"] * 2
    labels = [1, 0, 2, 1] * 2
    head = minilm.zero_shot_head(["person", "location", "number"], ["The answer is a {}."])
    cfg = TrainConfig(steps=3, batch_size=4, lr=1e-4, warmup_steps=0)
    before = {n: p.clone() for n, p in minilm.named_weights().items()}
    job = TrainingJob(resolve_paradigm("attention"), cfg, tmp_path, task="qa", progress=False)
    tv = finetune(minilm, texts, labels, head, job)
    assert tv.numel() == 3_538_944 and tv.norm() > 0
    loaded = TaskVector.load(tmp_path / "vector.safetensors")
    loaded.check_base(minilm)
    batch = minilm.collate(texts[:2])
    with torch.no_grad():
        base_out = minilm.represent(batch)
        with applied_in_place(minilm, combine([(loaded, 1.0)])):
            moved = minilm.represent(batch)
    assert not torch.allclose(base_out, moved)
    assert all(torch.equal(p, before[n]) for n, p in minilm.named_weights().items())


def test_attention_only_fine_tune_needs_less_memory_than_nonlinear_in_either_order(minilm, tmp_path):
    """Each fine-tune's memory is its own (peak above a baseline taken before it), so in one process an
    attention-only fine-tune measures lower than a non-linear one whether it runs before or after it."""
    texts = ["What is the capital of France and why is it so large ?", "Who wrote Hamlet in the year 1600 ?"] * 8
    labels = [1, 0] * 8
    head = minilm.zero_shot_head(["person", "location"], ["The answer is a {}."])
    cfg = TrainConfig(steps=2, batch_size=16, lr=1e-4, warmup_steps=0)
    measured = []
    for i, paradigm in enumerate(["attention", "nonlinear", "attention"]):
        job = TrainingJob(resolve_paradigm(paradigm), cfg, tmp_path / str(i), task="qa", progress=False)
        tv = finetune(minilm, texts, labels, head, job)
        measured.append(tv.meta["training"]["memory_increase_bytes"])
    attention_first, nonlinear, attention_after = measured
    assert 0 < attention_first < nonlinear
    assert 0 < attention_after < nonlinear
