"""Evaluation sweeps equal their point-by-point definition; padding does not change the answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from taskarith.config import TrainConfig
from taskarith.evaluate import accuracies, combo_basis, make_evalset, sweep
from taskarith.training.linearize import base_params, linearized_represent
from taskarith.training.trainer import TrainingJob, finetune
from taskarith.paradigms import resolve_paradigm
from taskarith.vectors import applied_in_place, combine

CFG = TrainConfig(steps=3, batch_size=4, lr=1e-3, warmup_steps=0)


def _vectors(encoder, toy_task, tmp_path, paradigm):
    texts, labels, classes, templates = toy_task
    head = encoder.zero_shot_head(classes, templates)
    out = []
    for i, flip in enumerate((False, True)):
        y = [1 - v for v in labels] if flip else labels
        job = TrainingJob(resolve_paradigm(paradigm), CFG, tmp_path / str(i), task=f"t{i}", progress=False)
        out.append(finetune(encoder, texts, y, head, job))
    return out, head


def _represent_at(encoder, vectors, coefs, batch):
    """f(x; θ0 + Σ c_t τ_t) at one point: through the linearized model for linear vectors, in place otherwise."""
    delta = combine(list(zip(vectors, coefs)))
    if vectors[0].linear:
        return linearized_represent(encoder, batch, base_params(encoder, list(delta)), delta)
    with applied_in_place(encoder, delta):
        return encoder.represent(batch)


def _collect(encoder, vectors, combos, evalset):
    reps = {}
    sweep(encoder, vectors, combos, [evalset], lambda c, s, b, r: reps.__setitem__((c, b), r.clone()))
    return reps


@pytest.mark.parametrize("paradigm", ["linear", "nonlinear"])
def test_sweep_equals_point_by_point(encoder, toy_task, tmp_path, paradigm):
    vectors, _ = _vectors(encoder, toy_task, tmp_path, paradigm)
    evalset = make_evalset(encoder, toy_task[0][:10], toy_task[1][:10], batch_size=4)
    combos = [[a, b] for a in (-1.0, 0.0, 0.5, 2.0) for b in (-0.5, 0.0, 1.0)]
    reps = _collect(encoder, vectors, combos, evalset)
    for c, coefs in enumerate(combos):
        with torch.no_grad():
            for b, batch in enumerate(evalset.batches):
                torch.testing.assert_close(reps[(c, b)], _represent_at(encoder, vectors, coefs, batch),
                                           atol=1e-5, rtol=1e-5)


def test_affine_addition_sweep_equals_explicit_linearization(encoder, toy_task, tmp_path):
    vectors, head = _vectors(encoder, toy_task, tmp_path, "linear")
    evalset = make_evalset(encoder, toy_task[0], toy_task[1], batch_size=5)
    alphas = [round(0.05 * i, 2) for i in range(21)]
    swept = accuracies(encoder, vectors, [[a, a] for a in alphas], evalset, head)
    theta0 = base_params(encoder, vectors[0].names)
    for i, a in enumerate(alphas):
        tau = {n: a * (vectors[0].tensors[n] + vectors[1].tensors[n]) for n in vectors[0].names}
        correct = 0
        with torch.no_grad():
            for batch, y in zip(evalset.batches, evalset.labels):
                pred = encoder.logits(linearized_represent(encoder, batch, theta0, tau), head).argmax(-1)
                correct += int((pred == y).sum())
        assert swept[i] == pytest.approx(correct / evalset.size)


def test_combo_basis_reconstructs_combinations():
    combos = [[a, a, 0.0] for a in (0.0, 0.3, 1.0)] + [[0.0, 0.0, 0.0]]
    basis, weights = combo_basis(combos, 3)
    assert basis.shape == (1, 3)
    np.testing.assert_allclose(weights @ basis, combos, atol=1e-12)
    grid = [[a, b] for a in (-2.0, 0.0, 2.0) for b in (-2.0, 1.0)]
    basis, weights = combo_basis(grid, 2)
    assert basis.shape == (2, 2)
    np.testing.assert_allclose(weights @ basis, grid, atol=1e-12)


def test_dynamic_padding_gives_the_same_logits_as_fixed_padding(encoder, toy_task):
    texts = ["what", "what city river name where is the big small river", "free prize"]
    head = encoder.zero_shot_head(*toy_task[2:])
    dynamic = make_evalset(encoder, texts, [0, 1, 0], batch_size=2)
    with torch.no_grad():
        got = {}
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        flat = torch.cat([encoder.logits(encoder.represent(b), head) for b in dynamic.batches])
        for pos, i in enumerate(order):
            got[i] = flat[pos]
        tok = encoder.tokenizer(texts, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
        fixed = encoder.logits(encoder.represent({"input_ids": tok["input_ids"],
                                                  "attention_mask": tok["attention_mask"]}), head)
    for i in range(len(texts)):
        torch.testing.assert_close(got[i], fixed[i], atol=1e-5, rtol=1e-5)


def test_tied_alphas_counts_the_best_scores():
    from taskarith.evaluate import choose_alpha, tied_alphas

    assert tied_alphas([0.5, 0.7, 0.6]) == 1
    assert tied_alphas([0.5, 0.7, 0.7, 0.2]) == 2
    assert choose_alpha([0.0, 0.1, 0.2, 0.3], [0.5, 0.7, 0.7, 0.2]) == 0.1
