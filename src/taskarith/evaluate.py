"""Accuracy, normalized accuracy, α search on validation, and task negation.

Everything is scored through `sweep`: many coefficient combinations of a set of task vectors over one
evaluation set. A linearized model is affine in its coefficients, so for linear vectors each batch costs one JVP
per dimension of the span of the combinations (one for a whole α sweep of task addition, two for a ξ
grid), whatever their number; non-linear vectors are applied in place once per combination, with no
model copies and no reloads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.func import jvp

from .groundwork.errors import TaskarithError, printable
from .models.base import Batch, Model
from .vectors import TaskVector, applied_in_place, combine


@dataclass
class EvalSet:
    """A split tokenized once, in length-sorted batches with dynamic padding."""

    batches: list[Batch]
    labels: list[torch.Tensor]

    @property
    def size(self) -> int:
        return sum(len(y) for y in self.labels)


def make_evalset(model: Model, inputs: Sequence, labels: Sequence[int], batch_size: int) -> EvalSet:
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]) if isinstance(inputs[i], str) else 0)
    batches, ys = [], []
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batches.append(model.to_device(model.collate([inputs[i] for i in idx])))
        ys.append(torch.as_tensor([labels[i] for i in idx], dtype=torch.long))
    return EvalSet(batches, ys)


Reducer = Callable[[int, int, int, torch.Tensor], None]  # (combination, evaluation set, batch, representation)


def sweep(model: Model, vectors: Sequence[TaskVector], combos: Sequence[Sequence[float]],
          evalsets: Sequence[EvalSet], reduce: Reducer) -> None:
    """Call `reduce` with f(x; θ0 + Σ_t c_t τ_t) for every combination c, evaluation set and batch.

    Every evaluation set is scored under one application of a combination: writing θ0 + δ into the
    module costs about half a forward pass of a validation split, so it is paid once per combination.
    A representation that is not finite stops the sweep: scored, NaN would pass for a prediction."""
    reduce = _finite_only(reduce, vectors, combos)
    if not vectors or all(tv.linear for tv in vectors):
        _sweep_affine(model, vectors, combos, evalsets, reduce)
    elif any(tv.linear for tv in vectors):
        raise ValueError("cannot mix linear and non-linear task vectors in one sweep")
    else:
        _sweep_in_place(model, vectors, combos, evalsets, reduce)


def _finite_only(reduce: Reducer, vectors: Sequence[TaskVector], combos: Sequence[Sequence[float]]) -> Reducer:
    def checked(c: int, s: int, b: int, rep: torch.Tensor) -> None:
        if not torch.isfinite(rep).all():
            applied = ", ".join(f"{coef:g}·{tv.label()}" for tv, coef in zip(vectors, combos[c]) if coef) or "θ0"
            raise TaskarithError(f"the model's outputs are NaN or Inf under {printable(applied)}: its weights "
                                 "overflow (a fine-tune that diverged, from too high a train.lr, does this)")
        reduce(c, s, b, rep)
    return checked


def combo_basis(combos: Sequence[Sequence[float]], n_vectors: int) -> tuple[np.ndarray, np.ndarray]:
    """An orthonormal basis B (r × T) of the span of the combinations, and their weights W (n × r).

    c = W[c] @ B exactly (up to rounding), so an α sweep of task addition, whose combinations all lie
    on one line, needs one JVP per batch instead of one per vector."""
    c = np.asarray(combos, dtype=np.float64).reshape(len(combos), n_vectors)
    if n_vectors == 0 or not np.any(c):
        return np.zeros((0, n_vectors)), np.zeros((len(combos), 0))
    _, s, vt = np.linalg.svd(c, full_matrices=False)
    basis = vt[: int((s > s.max() * 1e-10).sum())]
    return basis, c @ basis.T


def _sweep_affine(model, vectors, combos, evalsets, reduce) -> None:
    params = model.named_weights()
    basis, weights = combo_basis(combos, len(vectors))
    directions = [combine([(tv, float(b)) for tv, b in zip(vectors, row)]) for row in basis]
    theta0 = {n: params[n].detach() for n in (directions[0] if directions else {})}
    with torch.no_grad():
        for s, evalset in enumerate(evalsets):
            for b, batch in enumerate(evalset.batches):
                represent = functools.partial(model.represent, batch)  # f(x; θ) of this batch, as a function of θ
                f0, tangents = None, []
                for direction in directions:
                    # torch types jvp's result as a pair or a triple (has_aux) alike
                    f0, tangent = jvp(represent, (theta0,), (direction,))  # type: ignore[misc]
                    tangents.append(tangent)
                if f0 is None:
                    f0 = model.represent(batch)
                for c, row in enumerate(weights):
                    rep = f0.clone()
                    for w, tangent in zip(row, tangents):
                        if w:
                            rep.add_(tangent, alpha=float(w))
                    reduce(c, s, b, rep)


def _sweep_in_place(model, vectors, combos, evalsets, reduce) -> None:
    with torch.inference_mode():
        for c, coefs in enumerate(combos):
            delta = combine(list(zip(vectors, coefs)))
            with applied_in_place(model, delta):
                for s, evalset in enumerate(evalsets):
                    for b, batch in enumerate(evalset.batches):
                        reduce(c, s, b, model.represent(batch))


def accuracy_table(model: Model, vectors: Sequence[TaskVector], combos: Sequence[Sequence[float]],
                   evalsets: Sequence[EvalSet], heads: Sequence[torch.Tensor]) -> np.ndarray:
    """Accuracy [set, combination] of each set's head on each evaluation set, for every combination."""
    correct = np.zeros((len(evalsets), len(combos)))

    def count(c: int, s: int, b: int, rep: torch.Tensor) -> None:
        pred = model.logits(rep, heads[s]).argmax(-1).cpu()
        correct[s, c] += (pred == evalsets[s].labels[b]).sum().item()

    sweep(model, vectors, combos, evalsets, count)
    return correct / np.array([max(e.size, 1) for e in evalsets], dtype=np.float64)[:, None]


def accuracies(model: Model, vectors: Sequence[TaskVector], combos: Sequence[Sequence[float]],
               evalset: EvalSet, head: torch.Tensor) -> np.ndarray:
    """Accuracy of the head on one evaluation set for each coefficient combination."""
    return accuracy_table(model, vectors, combos, [evalset], [head])[0]


# --- the paper's protocol, as pure functions over accuracies -------------------------------------

def normalized_accuracy(unified: dict[str, float], individual: dict[str, float]) -> float:
    """Mean over tasks of unified/individual, computed task by task."""
    return float(np.mean([unified[t] / individual[t] if individual[t] > 0 else 0.0 for t in unified]))


def absolute_accuracy(unified: dict[str, float]) -> float:
    return float(np.mean(list(unified.values())))


def choose_alpha(alphas: Sequence[float], val_scores: Sequence[float]) -> float:
    """The α with the best validation score; ties go to the smallest α."""
    return float(alphas[int(np.argmax(np.asarray(val_scores)))])


def tied_alphas(val_scores: Sequence[float]) -> int:
    """How many α share the best validation score (1: no tie; more: the tie-break chose)."""
    scores = np.asarray(val_scores)
    return int(np.isclose(scores, scores.max(), rtol=0, atol=1e-12).sum())


def choose_negation_alpha(alphas: Sequence[float], target: Sequence[float] | np.ndarray,
                          control: Sequence[float] | np.ndarray,
                          pretrained_control: float, keep: float = 0.95) -> float:
    """The α that lowers target accuracy most while control stays >= keep × pre-trained control."""
    allowed = [i for i, c in enumerate(control) if c >= keep * pretrained_control]
    if not allowed:
        return 0.0
    best = min(allowed, key=lambda i: (target[i], alphas[i]))
    return float(alphas[best])
