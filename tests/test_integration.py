"""The real embedded MiniLM, fetched into the cache (skipped when no registry is in reach)."""

from __future__ import annotations

import pytest
import torch

from taskarith.config import TrainConfig
from taskarith.errors import TaskarithError
from taskarith.finetune.selection import select
from taskarith.finetune.trainer import finetune, resolve_paradigm
from taskarith.vectors import TaskVector, model_at

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
    tv = finetune(minilm, texts, labels, head, resolve_paradigm("attention"), cfg, tmp_path, task="qa",
                  progress=False)
    assert tv.numel() == 3_538_944 and tv.norm() > 0
    loaded = TaskVector.load(tmp_path / "vector.safetensors")
    loaded.check_base(minilm)
    batch = minilm.collate(texts[:2])
    with torch.no_grad():
        base_out = minilm.represent(batch)
        with model_at(minilm, [(loaded, 1.0)]) as f:
            moved = f(batch)
    assert not torch.allclose(base_out, moved)
    assert all(torch.equal(p, before[n]) for n, p in minilm.named_weights().items())
