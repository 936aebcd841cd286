"""The merge methods that read data: Fisher merging, RegMean and AdaMerging, each checked against values
computed by hand or by an independent formula, on hand-made tensors and on a tiny random BERT."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_tiny_encoder

from taskarith.config import MergeDataConfig
from taskarith.groundwork.errors import TaskarithError
from taskarith.merging.data import MergeData
from taskarith.merging.merge import merge_vectors
from taskarith.merging.adamerging import coefficient_sum, entropy, layer_coefficients
from taskarith.merging.fisher import diagonal_fisher, fisher_weighted
from taskarith.merging.regmean import gram_matrices, regmean
from taskarith.models.heads import zero_shot_head
from taskarith.vectors import TaskVector

TEXTS = ["what city river name", "free prize win now", "good movie film", "where is the big river today",
         "call now", "hello meet lunch today sport game team"]


def _spd(n: int, g: torch.Generator) -> torch.Tensor:
    x = torch.randn(3 * n, n, generator=g, dtype=torch.float64)
    return x.T @ x / (3 * n)


# --- Fisher merging ----------------------------------------------------------------------------------------

def test_fisher_with_equal_fishers_is_the_mean():
    g = torch.Generator().manual_seed(0)
    stack = torch.randn(3, 4, 5, generator=g)
    fisher = torch.rand(4, 5, generator=g).expand(3, 4, 5)
    assert torch.allclose(fisher_weighted(stack, statistic=fisher), stack.mean(dim=0), atol=1e-6)


def test_fisher_weighting_by_hand_with_the_floor():
    stack = torch.tensor([[1.0, 2.0, 5.0], [3.0, 4.0, 7.0]])
    fisher = torch.tensor([[1.0, 0.0, 0.0], [3.0, 1.0, 0.0]])
    merged = fisher_weighted(stack, statistic=fisher)
    # (1·1 + 3·3)/4; a zero Fisher counts as 1e-6; where every Fisher is zero the entries are averaged
    assert torch.allclose(merged, torch.tensor([2.5, (2e-6 + 4) / (1 + 1e-6), 6.0]))


def _tiny(tokenizer, classes=("city", "spam", "movie")):
    encoder = make_tiny_encoder(tokenizer)
    return encoder, zero_shot_head(encoder, list(classes), ["{}."])


def _vectors(encoder, count: int, paradigm: str = "nonlinear", names=None, scale: float = 0.05):
    g = torch.Generator().manual_seed(7)
    weights = encoder.named_weights()
    names = names or list(weights)
    meta = {"base_hash": "h", "base_model": "m", "paradigm": paradigm}
    return [TaskVector({n: scale * torch.randn(weights[n].shape, generator=g) for n in names},
                       {**meta, "task": f"t{i}"}) for i in range(count)]


def test_diagonal_fisher_is_the_expected_squared_score(tokenizer):
    encoder, head = _tiny(tokenizer)
    tv = _vectors(encoder, 1)[0]
    fisher = diagonal_fisher(encoder, tv, head, TEXTS, indices=[0, 2, 4])
    params = {n: (p.detach() + tv.tensors[n]).requires_grad_(True) for n, p in encoder.named_weights().items()}
    expected = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    for i in (0, 2, 4):  # one backward pass per example and class, weighted by the class's probability
        log_p = torch.log_softmax(encoder.logits(encoder.represent(encoder.collate([TEXTS[i]]), params), head), -1)[0]
        for c in range(len(log_p)):
            grads = torch.autograd.grad(log_p[c], list(params.values()), retain_graph=True, allow_unused=True)
            for n, grad in zip(params, grads):
                if grad is not None:
                    expected[n] += log_p[c].exp().item() * grad.double().square() / 3
    top = max(float(e.max()) for e in expected.values())
    for n in params:
        assert torch.allclose(fisher[n].double(), expected[n], rtol=1e-4, atol=1e-6 * top), n
    assert all(p.grad is None for p in encoder.net.parameters())


# --- RegMean -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("off_diagonal", [0.9, 1.0])
def test_regmean_with_identical_grams_is_the_mean(off_diagonal):
    g = torch.Generator().manual_seed(1)
    stack = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    grams = _spd(5, g).expand(3, 5, 5)
    merged = regmean(stack, statistic=grams, off_diagonal=off_diagonal)
    assert torch.allclose(merged, stack.mean(dim=0), atol=1e-10)


def test_regmean_fits_every_tasks_outputs_by_least_squares():
    g = torch.Generator().manual_seed(2)
    inputs = [torch.randn(20, 5, generator=g, dtype=torch.float64) for _ in range(3)]
    stack = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    grams = torch.stack([x.T @ x for x in inputs])
    merged = regmean(stack, statistic=grams, off_diagonal=1.0)
    # the independent formula: one least-squares fit of all tasks' outputs X_t W_tᵀ on their inputs
    targets = torch.cat([x @ w.T for x, w in zip(inputs, stack)])
    fit = torch.linalg.lstsq(torch.cat(inputs), targets).solution.T
    assert torch.allclose(merged, fit, atol=1e-10)


def test_regmean_without_off_diagonal_weights_each_input_by_its_energy():
    g = torch.Generator().manual_seed(3)
    stack = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    grams = torch.stack([_spd(4, g), _spd(4, g)])
    energy = torch.diagonal(grams, dim1=-2, dim2=-1)  # [T, in]
    expected = (energy[:, None, :] * stack).sum(dim=0) / energy.sum(dim=0)
    assert torch.allclose(regmean(stack, statistic=grams, off_diagonal=0.0), expected, atol=1e-10)


def test_regmean_averages_what_is_not_a_linear_weight():
    stack = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    assert torch.equal(regmean(stack, statistic=None), torch.tensor([2.0, 4.0]))


def test_gram_matrices_are_mean_outer_products_of_the_unpadded_inputs(tokenizer):
    encoder, _ = _tiny(tokenizer)
    query = "encoder.layer.0.attention.self.query.weight"
    tv = _vectors(encoder, 1, names=[query, "embeddings.LayerNorm.weight"])[0]
    grams = gram_matrices(encoder, tv, TEXTS, indices=range(len(TEXTS)), batch_size=4)
    assert set(grams) == {query}  # a LayerNorm scale has no Gram matrix: it is averaged
    rows = []
    with torch.no_grad():  # layer 0's query reads the embeddings' output, at θ0 + τ
        params = {n: p.detach() + tv.tensors.get(n, 0) for n, p in encoder.named_weights().items()}
        for text in TEXTS:  # one text at a time: no padding to leave out
            batch = encoder.collate([text])
            out = torch.func.functional_call(encoder.net, params, args=(),
                                             kwargs={**batch, "output_hidden_states": True})
            rows.append(out.hidden_states[0][0].double())
    x = torch.cat(rows)
    assert torch.allclose(grams[query].double(), x.T @ x / len(x), atol=1e-5)


# --- AdaMerging --------------------------------------------------------------------------------------------

def test_coefficient_sum_and_entropy_by_hand():
    stack = torch.tensor([[1.0, 2.0], [10.0, 20.0]])
    assert torch.allclose(coefficient_sum(stack, statistic=torch.tensor([0.5, 0.1])), torch.tensor([1.5, 3.0]))
    assert math.isclose(float(entropy(torch.zeros(2, 5))), math.log(5), rel_tol=1e-6)
    assert float(entropy(torch.tensor([[100.0, 0.0]]))) < 1e-6


def _merged_entropy(encoder, vectors, heads, coefficients, linear):
    from taskarith.training.linearize import base_params, linearized_represent

    tau = {n: coefficient_sum(torch.stack([tv.tensors[n] for tv in vectors]), statistic=coefficients[n])
           for n in vectors[0].tensors}
    batch = encoder.collate(TEXTS)
    weights = encoder.named_weights()
    with torch.no_grad() if not linear else torch.enable_grad():
        rep = (linearized_represent(encoder, batch, base_params(encoder, list(tau)), tau) if linear else
               encoder.represent(batch, {n: weights[n].detach() + t for n, t in tau.items()}))
    return sum(float(entropy(encoder.logits(rep, h))) for h in heads)


@pytest.mark.parametrize("paradigm", ["nonlinear", "linear"])
def test_adamerging_learns_coefficients_that_lower_the_entropy(tokenizer, paradigm):
    encoder, head = _tiny(tokenizer)
    heads = [head, zero_shot_head(encoder, ["good", "bad"], ["{}."])]
    before = {n: p.detach().clone() for n, p in encoder.named_weights().items()}
    vectors = _vectors(encoder, 2, paradigm, scale=0.3)
    settings = MergeDataConfig(steps=15, lr=0.05, init=0.3, batch_size=len(TEXTS))  # full batch: one objective
    data = MergeData(encoder, heads, test_inputs=[TEXTS, TEXTS], settings=settings)
    learned = layer_coefficients(vectors, data, seed=0)
    assert set(learned) == set(vectors[0].tensors) and all(c.shape == (2,) for c in learned.values())
    assert all(0 <= float(c.min()) and float(c.max()) <= 1 for c in learned.values())
    start = {n: torch.full((2,), 0.3) for n in learned}
    linear = paradigm == "linear"
    assert _merged_entropy(encoder, vectors, heads, learned, linear) < _merged_entropy(encoder, vectors, heads, start,
                                                                                        linear)
    assert all(torch.equal(p, before[n]) and p.grad is None for n, p in encoder.named_weights().items())


# --- through merge_vectors ---------------------------------------------------------------------------------

def test_data_methods_merge_through_the_registry_and_record_their_settings(tokenizer):
    encoder, head = _tiny(tokenizer)
    vectors = _vectors(encoder, 2)
    settings = MergeDataConfig(fisher_examples=3, regmean_examples=3, batch_size=2, steps=2)
    data = MergeData(encoder, [head, head], train_inputs=[TEXTS, TEXTS[::-1]], train_labels=[[0] * 6, [1] * 6],
                     test_inputs=[TEXTS, TEXTS], settings=settings)
    mean = {n: (vectors[0].tensors[n] + vectors[1].tensors[n]) / 2 for n in vectors[0].tensors}
    given = {**settings.model_dump(), "seed": 5}  # what the data methods were handed
    for name, params in [("fisher", given), ("regmean", {**given, "off_diagonal": 0.9}), ("adamerging", given)]:
        merged = merge_vectors(vectors, name, data=data, seed=5)
        assert merged.meta["merge"]["params"] == params
        assert not all(torch.allclose(merged.tensors[n], mean[n]) for n in mean), name
        assert torch.allclose(merged.tensors["embeddings.LayerNorm.bias"], mean["embeddings.LayerNorm.bias"],
                              atol=1e-6) or name != "regmean"


@pytest.mark.parametrize("name, data, paradigm, message", [
    ("fisher", None, "nonlinear", "fisher needs training data, so it cannot merge from task vectors alone"),
    ("adamerging", None, "nonlinear", "adamerging needs unlabeled test inputs (transductive)"),
    ("regmean", "one", "nonlinear", "regmean reads train_inputs for each task vector: 1 given for 2"),
    ("regmean", "empty", "nonlinear", "regmean: train_inputs of task vector 2 is empty"),
    ("fisher", "full", "linear", "Fisher merging is not defined for linear task vectors"),
])
def test_data_methods_refuse_what_they_cannot_merge(tokenizer, name, data, paradigm, message):
    encoder, head = _tiny(tokenizer)
    vectors = _vectors(encoder, 2, paradigm)
    train = {"one": [TEXTS], "empty": [TEXTS, []], "full": [TEXTS, TEXTS]}.get(data)
    merge_data = None if data is None else MergeData(encoder, [head, head], train_inputs=train,
                                                     train_labels=[[0] * len(t) for t in train])
    with pytest.raises(TaskarithError, match=message.replace("(", r"\(").replace(")", r"\)")):
        merge_vectors(vectors, name, data=merge_data)


def _family_case(kind: str):
    if kind == "clip":
        from clip_builders import clip_family, digit_images

        model = clip_family()
        return model, model.zero_shot_head(["zero", "one", "two"], ["a photo of {}."]), digit_images(4)
    from test_t5 import sst2_prompts, t5_family

    model = t5_family()
    prompts = sst2_prompts()
    return model, model.zero_shot_head(["negative", "positive"], ["{}"]), prompts + prompts


@pytest.mark.parametrize("kind", ["clip", "t5"])
def test_data_methods_merge_every_family(kind):
    from taskarith.training.selection import select

    model, head, inputs = _family_case(kind)
    names = select(model.net, "attention").names
    vectors = _vectors(model, 2, "attention", names=names, scale=0.02)
    settings = MergeDataConfig(fisher_examples=2, regmean_examples=4, batch_size=2, steps=2)
    data = MergeData(model, [head, head], train_inputs=[inputs, inputs], train_labels=[[0] * 4, [1] * 4],
                     test_inputs=[inputs, inputs], settings=settings)
    for name in ("fisher", "regmean", "adamerging"):
        merged = merge_vectors(vectors, name, data=data)
        assert set(merged.tensors) == set(names) and all(torch.isfinite(t).all() for t in merged.tensors.values())


def test_progress_bars_name_the_task_vector(tokenizer, capsys):
    encoder, head = _tiny(tokenizer)
    tv = _vectors(encoder, 1)[0]
    diagonal_fisher(encoder, tv, head, TEXTS, indices=[0], progress=True)
    gram_matrices(encoder, tv, TEXTS, indices=[0], batch_size=1, progress=True)
    err = capsys.readouterr().err
    assert "Fisher t0/nonlinear" in err and "RegMean t0/nonlinear" in err and "TaskVector(" not in err
