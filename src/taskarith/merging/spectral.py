"""SVD-based merge rules over one parameter's stacked task vectors [T, ...] -> the merged vector [...].

Each works on a 2-D weight ([T, out, in]) through its singular value decomposition; every other tensor
(biases, LayerNorm scales, conv kernels) is averaged over the tasks, as both papers' code does. The 2-D
results are on the sum's scale while the rest is a mean, exactly as in that code; the run's α, chosen on
validation, scales the whole merged vector afterwards (their code sweeps α over 0.1 … 3.0).

- TSV-M (Gargiulo et al., CVPR 2025): keep each task's top k = ⌊r/T⌋ singular triplets (r = min(out, in)),
  concatenate them, replace the concatenated U and V by their nearest orthonormal matrices and
  recombine with the kept singular values, unchanged and unscaled.
- Iso-C (Marczak et al., ICML 2025): the task-arithmetic sum with its spectrum made flat, every
  singular value replaced by their mean.
- Iso-CTS (same paper): the sum's top singular directions (the common subspace, `common_share` of r)
  plus each task's top directions outside it (an equal share of the rest each), orthonormalised, with a
  flat spectrum at the mean of the singular values kept.

The SVDs run in float32 (float64 for float64 stacks), exact by default, as in the authors' code; the
result has the stack's dtype. RANDOMIZED_SHARE > 0 lets TSV-M find each task's top k by a seeded randomized
subspace iteration instead (about 4× faster over a whole model, see `top_svd` for what it changes).
"""

from __future__ import annotations

import torch

from ..groundwork.errors import TaskarithError
from .kinds import Share

COMMON_SHARE = 0.8  # Iso-CTS's `common_space_fraction` in the authors' config and README
RANDOMIZED_SHARE = 0.0  # TSV-M's top-k randomized where k + OVERSAMPLE ≤ this share of the rank; 0.25 pays
OVERSAMPLE = 10  # extra sketch columns: Halko et al.'s usual 5–10
POWER_ITERATIONS = 3  # ≥ 1; each raises the spectrum's decay to a higher power, at two passes over the matrix


def _work_dtype(stack: torch.Tensor) -> torch.dtype:
    return torch.float64 if stack.dtype == torch.float64 else torch.float32


def _spectral(stack: torch.Tensor) -> bool:
    """Whether a stack holds 2-D weights that the SVD rules decompose (empty ones have no spectrum)."""
    return stack.ndim == 3 and stack.numel() > 0


def _mean(stack: torch.Tensor) -> torch.Tensor:
    """What the papers' code does with every tensor that is not a 2-D weight: the mean over tasks."""
    return stack.to(_work_dtype(stack)).mean(dim=0).to(stack.dtype)


Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # U [..., out, k], S [..., k], Vᴴ [..., k, in]


def svd(matrix: torch.Tensor) -> Triplets:
    """The thin SVD, in float64 where float32's LAPACK does not converge (it can fail on large matrices with
    many equal singular values, such as a task vector with the common subspace projected out), cast back."""
    try:
        return torch.linalg.svd(matrix, full_matrices=False)
    except torch.linalg.LinAlgError:
        if matrix.dtype == torch.float64:
            raise
        return tuple(x.to(matrix.dtype) for x in torch.linalg.svd(matrix.double(), full_matrices=False))


def top_svd(batch: torch.Tensor, k: int, randomized_share: float = 0.0) -> Triplets:
    """The top-k singular triplets of each matrix in a batch [..., out, in].

    Exact (one batched LAPACK call) unless k + OVERSAMPLE is at most `randomized_share` of min(out, in): then
    a randomized subspace iteration, 3–4× faster. Its ‖A − A_k‖ is within 2% of the optimum even on a flat
    (Gaussian) spectrum, its worst case, but where singular values decay slowly (0.97ⁱ) the directions it
    picks among the near-equal ones differ, and so does TSV-M's merge (by ~12% in norm; <0.1% at 0.9ⁱ)."""
    if k + OVERSAMPLE > randomized_share * min(batch.shape[-2:]):
        u, s, vh = svd(batch)
        return u[..., :k], s[..., :k], vh[..., :k, :]
    if batch.shape[-2] < batch.shape[-1]:  # wide: work on Aᵀ, so the iteration stays on the small side
        u, s, vh = _randomized_top_svd(batch.mT, k)
        return vh.mT, s, u.mT
    return _randomized_top_svd(batch, k)


def _randomized_top_svd(tall: torch.Tensor, k: int) -> Triplets:
    """Top-k triplets of tall matrices [..., m, n], n ≤ m (Halko et al. 2011, alg. 4.4 and 5.1): a Gaussian
    basis of k + OVERSAMPLE columns, refined by POWER_ITERATIONS products with AᵀA, each followed by a QR
    on the n side (cheap, unlike QRs of m-row matrices); then Rayleigh–Ritz through the small Gram
    (AV)ᵀ(AV) = W Σ² Wᵀ in float64, so U = AVW/Σ and Vᴴ = (VW)ᵀ. A fixed seed keeps the rule reproducible."""
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(tall.shape[-1], k + OVERSAMPLE, generator=gen).to(tall.dtype)
    for _ in range(POWER_ITERATIONS):
        v = torch.linalg.qr(tall.mT @ (tall @ v)).Q
    av = (tall @ v).double()
    s2, w = torch.linalg.eigh(av.mT @ av)  # ascending
    s, w = s2.flip(-1)[..., :k].clamp(min=0).sqrt(), w.flip(-1)[..., :k]
    u = av @ w / s.clamp(min=torch.finfo(s.dtype).tiny).unsqueeze(-2)  # 0/tiny = 0 for a zero matrix
    return u.to(tall.dtype), s.to(tall.dtype), (v.double() @ w).mT.to(tall.dtype)


def polar(m: torch.Tensor) -> torch.Tensor:
    """The orthogonal Procrustes solution P Qᵀ for m = P Σ Qᵀ: the matrix with orthonormal columns
    (rows, if m is wide) nearest to m in Frobenius norm. Defined, without NaN, when m is rank-deficient."""
    p, _, qh = svd(m)
    return p @ qh


def _side_by_side(stack: torch.Tensor, decompose) -> Triplets:
    """`decompose` applied to each task's matrix in turn, the per-task triplets U_t [out, k], S_t [k], Vᴴ_t [k, in]
    laid side by side: [out, T·k], [T·k], [T·k, in]. One SVD's workspace at a time, where a batched call would
    hold every task's full U at once (gigabytes for an LLM's embedding)."""
    # contiguous: the rest of each task's U is freed as soon as it is made
    us, ss, vhs = zip(*[tuple(x.contiguous() for x in decompose(task)) for task in stack])
    return torch.cat(us, dim=1), torch.cat(ss), torch.cat(vhs)


def tsv_rank(shape: torch.Size, tasks: int) -> int:
    """TSV-M's rank per task, ⌊min(out, in)/T⌋ as in the authors' code, but at least 1 (their code keeps
    nothing, so merges to zero, when T > min(out, in))."""
    return max(1, min(shape) // tasks)


def tsv_m(stack: torch.Tensor, **_) -> torch.Tensor:
    """TSV-M: with τ_t ≈ U_t S_t V_tᵀ truncated to rank k, U = [U_1 … U_T], S = diag(S_1 … S_T),
    V = [V_1 … V_T], the merge is polar(U) · S · polar(V)ᵀ = Σ_i s_i u⊥_i v⊥_iᵀ (no averaging)."""
    if not _spectral(stack):
        return _mean(stack)
    rank = tsv_rank(stack.shape[1:], len(stack))
    u, s, vh = _side_by_side(stack.to(_work_dtype(stack)), lambda task: top_svd(task, rank, RANDOMIZED_SHARE))
    return ((polar(u) * s) @ polar(vh)).to(stack.dtype)


def iso_c(stack: torch.Tensor, **_) -> torch.Tensor:
    """Iso-C: M = Σ_t τ_t = U S Vᵀ, merged to mean(S) · U Vᵀ. As in the authors' code, all min(out, in)
    values enter the mean and all directions the result, so a rank-deficient sum gains (arbitrary) null-space
    directions at the mean value; task vectors of real fine-tuning have full-rank sums."""
    if not _spectral(stack):
        return _mean(stack)
    u, s, vh = svd(stack.to(_work_dtype(stack)).sum(dim=0))
    return (s.mean() * (u @ vh)).to(stack.dtype)


def cts_split(rank: int, tasks: int, common_share: float) -> tuple[int, int]:
    """Iso-CTS's subspace sizes (common c, per task n) with c + T·n = rank, as the authors' code sets them:
    c = ⌊share · rank⌋, then n = round((rank − c)/T) so the rest splits evenly; c takes up the slack."""
    if not 0 <= common_share <= 1:
        raise TaskarithError(f"Iso-CTS's common_share must lie in [0, 1], got {common_share}")
    common = int(rank * common_share)
    per_task = min(round((rank - common) / tasks), rank // tasks)  # min: c never goes negative
    return rank - per_task * tasks, per_task


def iso_cts(stack: torch.Tensor, *, common_share: Share = COMMON_SHARE, **_) -> torch.Tensor:
    """Iso-CTS: with M = Σ_t τ_t = U S Vᵀ, keep its top c triplets (U_c, S_c, V_c); give each task the top n
    triplets of (I − U_c U_cᵀ) τ_t; stack all r = c + T·n of them, orthonormalise U and V by polar
    decomposition, and merge to mean(S_all) · polar(U_all) polar(V_all)ᵀ. Exact SVDs only: the flat spectrum
    weighs every kept direction alike, and the randomized top-n of the (flat-tailed) projected τ_t is far off."""
    if not _spectral(stack):
        return _mean(stack)
    work = stack.to(_work_dtype(stack))
    common, per_task = cts_split(min(stack.shape[1:]), len(stack), common_share)
    u, s, vh = top_svd(work.sum(dim=0), common)
    if per_task:  # each task's top directions outside the common column space
        us, ss, vhs = _side_by_side(work, lambda task: top_svd(task - u @ (u.mT @ task), per_task))
        u, s, vh = torch.cat([u, us], dim=1), torch.cat([s, ss]), torch.cat([vh, vhs])
    return (s.mean() * (polar(u) @ polar(vh))).to(stack.dtype)
