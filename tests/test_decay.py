"""train.decay_toward: AdamW's decoupled decay pulls θ toward zero (the paper's, every paradigm) or toward θ0."""

from __future__ import annotations

import pytest
import torch

from taskarith.config import TrainConfig
from taskarith.training.trainable import Trainable, make_optimizer
from taskarith.paradigms import resolve_paradigm

from conftest import make_tiny_encoder

LR, WD = 0.1, 0.5  # large, so one decay step is far above rounding


def _decay_once(model, paradigm: str, toward: str) -> tuple[dict, dict, dict]:
    """θ0, the trained tensors before and after one decay step with zero gradients."""
    trainable = Trainable(model, resolve_paradigm(paradigm), toward)
    try:
        with torch.no_grad():
            for t in trainable.tensors.values():
                t.add_(0.01 * torch.randn_like(t))  # a τ away from zero
        before = {n: t.detach().clone() for n, t in trainable.tensors.items()}
        cfg = TrainConfig(lr=LR, weight_decay=WD, decay_toward=toward, warmup_steps=0)
        optimizer, _ = make_optimizer(trainable, cfg)
        assert optimizer.param_groups[0]["lr"] == LR  # no warm-up: the first step runs at full rate
        for t in trainable.tensors.values():
            t.grad = torch.zeros_like(t)
        trainable.decay(optimizer.param_groups[0]["lr"], WD)
        optimizer.step()  # Adam's update is zero for zero gradients: what moves is the decay alone
        after = {n: t.detach().clone() for n, t in trainable.tensors.items()}
        theta0 = {n: t.clone() for n, t in trainable.theta0.items()}
    finally:
        trainable.close()
    return theta0, before, after


@pytest.mark.parametrize("paradigm", ["nonlinear", "linear", "attention"])
@pytest.mark.parametrize("toward", ["zero", "base"])
def test_decay_pulls_theta_toward_its_target(tokenizer, paradigm, toward):
    model = make_tiny_encoder(tokenizer)
    theta0, before, after = _decay_once(model, paradigm, toward)
    linear = paradigm == "linear"
    for n in before:
        # θ = θ0 + τ for the linearized model, the tensor itself otherwise
        theta_before = theta0[n] + before[n] if linear else before[n]
        theta_after = theta0[n] + after[n] if linear else after[n]
        target = torch.zeros_like(theta0[n]) if toward == "zero" else theta0[n]
        expected = target + (1 - LR * WD) * (theta_before - target)
        torch.testing.assert_close(theta_after, expected, rtol=1e-5, atol=1e-6)


def test_default_is_the_papers_decay_toward_zero():
    assert TrainConfig().decay_toward == "zero"


@pytest.mark.parametrize("paradigm,toward,in_optimizer", [
    ("nonlinear", "zero", WD), ("linear", "base", WD), ("nonlinear", "base", 0.0), ("linear", "zero", 0.0)])
def test_optimizer_decays_only_what_it_can_express(tokenizer, paradigm, toward, in_optimizer):
    trainable = Trainable(make_tiny_encoder(tokenizer), resolve_paradigm(paradigm), toward)
    try:
        optimizer, _ = make_optimizer(trainable, TrainConfig(weight_decay=WD, decay_toward=toward))
        assert optimizer.param_groups[0]["weight_decay"] == in_optimizer
    finally:
        trainable.close()
