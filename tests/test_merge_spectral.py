"""The SVD-based merge rules (TSV-M, Iso-C, Iso-CTS) on small hand-made matrices, checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from taskarith.groundwork.errors import TaskarithError
from taskarith.merging import spectral
from taskarith.merging.spectral import cts_split, iso_c, iso_cts, top_svd, tsv_m, tsv_rank

RULES = [tsv_m, iso_c, iso_cts]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def orthonormal(n: int, seed: int) -> np.ndarray:
    return np.linalg.qr(rng(seed).standard_normal((n, n)))[0]


def truncate(m: np.ndarray, k: int) -> np.ndarray:
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    return (u[:, :k] * s[:k]) @ vt[:k]


def projector(m: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """The orthogonal projector onto m's column space."""
    u, s, _ = np.linalg.svd(m, full_matrices=False)
    u = u[:, s > tol * s.max()]
    return u @ u.T


def as_stack(*matrices: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.stack(matrices), dtype=torch.float64)


def test_tsv_m_of_one_task_is_its_rank_k_truncation():
    m = rng(1).standard_normal((9, 6))
    assert tsv_rank(torch.Size([9, 6]), 1) == 6
    np.testing.assert_allclose(tsv_m(as_stack(m)).numpy(), truncate(m, 6), atol=1e-12)
    low = truncate(m, 2)  # rank-deficient: the orthonormalisation must not invent directions
    np.testing.assert_allclose(tsv_m(as_stack(low)).numpy(), low, atol=1e-12)


def test_tsv_m_of_orthogonal_tasks_sums_their_truncations():
    # 20×14, T = 3 → k = 4; task 0 has rank 6 so its truncation drops 2 directions, the others have rank 4
    u, v, s = orthonormal(20, 2), orthonormal(14, 3), rng(4).uniform(1, 5, 14)
    blocks = [range(0, 6), range(6, 10), range(10, 14)]
    tasks = [(u[:, b] * s[b]) @ v[:, b].T for b in blocks]
    assert tsv_rank(torch.Size([20, 14]), 3) == 4
    expected = sum(truncate(t, 4) for t in tasks)
    assert np.linalg.norm(expected - sum(tasks)) > 1  # the truncation matters
    np.testing.assert_allclose(tsv_m(as_stack(*tasks)).numpy(), expected, atol=1e-10)


def test_tsv_m_keeps_t_times_k_directions_unscaled():
    stack = as_stack(*rng(5).standard_normal((4, 16, 12)))
    merged = tsv_m(stack).numpy()
    assert np.linalg.matrix_rank(merged, tol=1e-9) == 4 * 3
    kept = np.concatenate([np.linalg.svd(t, compute_uv=False)[:3] for t in stack.numpy()])
    np.testing.assert_allclose(np.sort(np.linalg.svd(merged, compute_uv=False)[:12]), np.sort(kept), rtol=1e-10)


def test_iso_c_flattens_the_spectrum_of_the_sum():
    stack = as_stack(*rng(6).standard_normal((3, 10, 7)))
    total = stack.sum(0).numpy()
    merged = iso_c(stack).numpy()
    values = np.linalg.svd(merged, compute_uv=False)
    mean = np.linalg.svd(total, compute_uv=False).mean()
    np.testing.assert_allclose(values, np.full(7, mean), rtol=1e-10)
    np.testing.assert_allclose(projector(merged), projector(total), atol=1e-10)  # the sum's column space
    np.testing.assert_allclose(projector(merged.T), projector(total.T), atol=1e-10)  # and row space
    assert not np.allclose(merged, total)


def test_iso_c_keeps_the_singular_vectors_of_the_sum():
    u, v = orthonormal(6, 7), orthonormal(5, 8)[:, :5]
    total = (u[:, :5] * np.array([9.0, 4, 2, 1, 0.5])) @ v.T
    merged = iso_c(as_stack(total / 2, total / 2)).numpy()
    np.testing.assert_allclose(merged, 3.3 * u[:, :5] @ v.T, atol=1e-10)


@pytest.mark.parametrize(("rank", "tasks", "share", "split"), [
    (384, 8, 0.8, (304, 10)),  # c = 307, round(77/8) = 10 per task, c = 384 − 80
    (768, 8, 0.8, (616, 19)),  # c = 614, round(154/8) = 19, c = 768 − 152
    (10, 3, 0.8, (7, 1)),  # c = 8, round(2/3) = 1, c = 10 − 3
    (2, 8, 0.8, (2, 0)),  # c = 1, round(1/8) = 0: no task-specific part at all
    (10, 1, 0.8, (8, 2)),
    (10, 2, 0.0, (0, 5)),
    (10, 4, 1.0, (10, 0)),
])
def test_cts_split_as_the_authors_code_sets_it(rank, tasks, share, split):
    assert cts_split(rank, tasks, share) == split
    assert split[0] + tasks * split[1] == rank


def test_cts_common_share_default_and_bounds():
    assert spectral.COMMON_SHARE == 0.8
    with pytest.raises(TaskarithError, match="common_share"):
        iso_cts(as_stack(np.eye(3)), common_share=1.5)


def test_iso_cts_is_isotropic_and_contains_the_common_and_task_subspaces():
    stack = as_stack(*rng(9).standard_normal((2, 20, 10)))  # r = 10: c = 8, n = 1 per task
    merged = iso_cts(stack).numpy()
    values = np.linalg.svd(merged, compute_uv=False)
    np.testing.assert_allclose(values, np.full(10, values[0]), rtol=1e-10)
    u, s, _ = np.linalg.svd(stack.sum(0).numpy(), full_matrices=False)
    inside = projector(merged)
    np.testing.assert_allclose(inside @ u[:, :8], u[:, :8], atol=1e-10)  # the common subspace
    assert np.linalg.norm(inside @ u[:, 8:] - u[:, 8:]) > 0.1  # … but not the rest of the sum's
    for task in stack.numpy():  # each task's top direction outside the common subspace
        top = np.linalg.svd(task - u[:, :8] @ (u[:, :8].T @ task))[0][:, :1]
        np.testing.assert_allclose(inside @ top, top, atol=1e-10)
    kept = np.concatenate([s[:8]] + [np.linalg.svd(t - u[:, :8] @ (u[:, :8].T @ t), compute_uv=False)[:1]
                                     for t in stack.numpy()])
    np.testing.assert_allclose(values[0], kept.mean(), rtol=1e-10)  # flat at the mean of the kept values


@pytest.mark.parametrize("share", [0.0, 0.5, 0.8, 1.0])
def test_iso_cts_of_one_task_is_iso_c(share):
    # one task: the common part and the task's part outside it together are its full SVD
    stack = as_stack(rng(10).standard_normal((8, 6)))
    np.testing.assert_allclose(iso_cts(stack, common_share=share).numpy(), iso_c(stack).numpy(), atol=1e-10)


def test_iso_cts_without_task_share_is_iso_c():
    stack = as_stack(*rng(11).standard_normal((3, 9, 6)))  # r = 6: c = 3, n = 1 at the default share
    assert cts_split(6, 3, 0.8) == (3, 1)
    np.testing.assert_allclose(iso_cts(stack, common_share=1.0).numpy(), iso_c(stack).numpy(), atol=1e-10)
    assert not np.allclose(iso_cts(stack).numpy(), iso_c(stack).numpy(), atol=1e-3)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("shape", [(5,), (), (2, 3, 2, 2), (4, 1, 3)])
def test_non_matrices_are_averaged(rule, shape):
    # the authors' code averages every tensor that is not 2-D: biases, norms, conv kernels
    stack = torch.tensor(rng(12).standard_normal((3, *shape)), dtype=torch.float32)
    merged = rule(stack, density=0.2, generator=torch.Generator(), weights=None, other=1)
    assert merged.shape == stack.shape[1:]
    torch.testing.assert_close(merged, stack.mean(0))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_is_kept(rule, dtype):
    stack64 = as_stack(*rng(13).standard_normal((3, 12, 9)))
    merged = rule(stack64.to(dtype))
    assert merged.dtype == dtype
    tol = {torch.float16: 1e-2, torch.bfloat16: 5e-2, torch.float32: 1e-4, torch.float64: 1e-12}[dtype]
    reference = rule(stack64.to(dtype).to(torch.float64))  # the same input, computed in float64
    torch.testing.assert_close(merged.to(torch.float64), reference, atol=tol * reference.abs().max().item(), rtol=0)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("shape", [(3, 6, 4), (3, 4), (8, 2, 5)])
def test_a_zero_stack_merges_to_zero(rule, shape):
    merged = rule(torch.zeros(shape))
    assert torch.equal(merged, torch.zeros(shape[1:]))


@pytest.mark.parametrize("rule", RULES)
def test_more_tasks_than_rank_stays_finite(rule):
    stack = torch.tensor(rng(14).standard_normal((8, 2, 5)), dtype=torch.float32)  # T > min(out, in)
    merged = rule(stack)
    assert torch.isfinite(merged).all() and merged.abs().max() > 0
    assert torch.linalg.matrix_rank(merged) <= 2


def test_randomized_top_k_matches_the_exact_truncation_on_decaying_spectra():
    u, v = orthonormal(200, 15)[:, :120], orthonormal(120, 16)
    m = (u * 0.8 ** np.arange(120)) @ v.T + 1e-6 * rng(17).standard_normal((200, 120))
    batch = torch.tensor(np.stack([m, m[::-1].copy()]), dtype=torch.float64)
    assert 8 + spectral.OVERSAMPLE <= 0.25 * 120  # the randomized path is taken
    uk, sk, vhk = top_svd(batch, 8, 0.25)
    for got, want in zip((uk * sk.unsqueeze(-2)) @ vhk, batch.numpy()):
        np.testing.assert_allclose(got.numpy(), truncate(want, 8), atol=1e-6)
    assert top_svd(batch, 8, 0.25)[1].equal(sk)  # a fixed seed: the same answer every call
    assert not top_svd(batch, 8)[1].equal(sk)  # exact by default


def test_tsv_m_randomized_top_k_can_be_turned_on(monkeypatch):
    stack = as_stack(*rng(18).standard_normal((8, 120, 96)))  # k = 12
    exact, cts = tsv_m(stack), iso_cts(stack)
    assert cts_split(96, 8, 0.8) == (80, 2)  # top-2 per task: randomized, were Iso-CTS to follow the switch
    monkeypatch.setattr(spectral, "RANDOMIZED_SHARE", 0.25)
    randomized = tsv_m(stack)
    assert torch.equal(iso_cts(stack), cts)  # it does not: Iso-CTS stays exact
    assert not torch.equal(randomized, exact)
    # polar(U) S polar(V)ᵀ has ‖·‖² = Σ S²: the exact path keeps each task's top-12 energy exactly; on a flat
    # (Gaussian) spectrum, the randomized finder's worst case, it still keeps nearly all of it
    top = sum((np.linalg.svd(t, compute_uv=False)[:12] ** 2).sum() for t in stack.numpy())
    assert exact.norm().item() ** 2 == pytest.approx(top, rel=1e-10)
    assert 0.9 * top < randomized.norm().item() ** 2 < top
