"""The one per-tensor merge loop: its read-ahead stays within its byte budget, the blocked and in-place rules
give what the plain whole-tensor rules give, and a streamed export of tensors large enough to expose a sort or
a float64 copy equals the in-memory merge. Equality, never time."""

from __future__ import annotations

import json
import math
import threading

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.groundwork.errors import TaskarithError
from taskarith.merging.merge import merge_vectors, tensors_sha256
from taskarith.merging.rules import BLOCK, CHUNK, dare, dare_ties, ties
from taskarith.merging.tensor_loop import Arena, read_ahead
from taskarith.recipes.output import compute_device
from taskarith.vectors import TaskVector

ENV = {"HF_HUB_OFFLINE": "1"}


def _items(sizes):
    """read/shape callbacks for read_ahead over float32 items of the given sizes, counting bytes in flight."""
    held, peak, lock = [0], [0], threading.Lock()

    def read(name, stack):
        with lock:
            held[0] += stack.numel() * 4
            peak[0] = max(peak[0], held[0])
        stack.fill_(float(name[1:]))

    return read, lambda name: ((sizes[name],), torch.float32), held, peak, lock


def test_read_ahead_stays_in_its_arena_reuses_it_and_keeps_order():
    sizes = {f"t{i}": s for i, s in enumerate([48, 48, 160, 16, 16, 16, 80, 32, 160, 1])}
    read, shape, held, peak, lock = _items(sizes)
    arena = Arena(160 * 4)
    order, places = [], set()
    for name, stack in read_ahead(list(sizes), read, shape, arena):
        assert stack.shape == (sizes[name],) and bool((stack == float(name[1:])).all())  # nothing overwrote it
        places.add(stack.data_ptr())
        order.append(name)
        with lock:
            held[0] -= stack.numel() * 4
    assert order == list(sizes)
    assert peak[0] <= 160 * 4 and len(places) < len(sizes)  # within the arena, whose regions are reused


def test_read_ahead_raises_the_readers_error_and_stops_when_the_consumer_does():
    def failing(name, stack):
        if name == "b":
            raise TaskarithError("b is cut short")

    shape = lambda name: ((4,), torch.float32)  # noqa: E731
    with pytest.raises(TaskarithError, match="cut short"):
        list(read_ahead(["a", "b", "c"], failing, shape, Arena(64)))
    reads = []
    stream = read_ahead([str(i) for i in range(100)], lambda n, s: reads.append(n), shape, Arena(64))
    next(stream)
    stream.close()  # the thread is joined: no read after this
    assert len(reads) <= 3 and not any(t.name == "taskarith-read-ahead" for t in threading.enumerate())


def _plain_ties(stack, density, weights=None):
    """TIES written the plain way: a stable sort by magnitude (of equal magnitudes, the first entries first),
    then the election and mean over the whole tensor at once."""
    flat = stack.reshape(len(stack), -1)
    k = max(1, math.floor(density * flat.shape[1]))
    order = flat.abs().sort(dim=1, descending=True, stable=True).indices
    keep = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order[:, :k], True)
    kept = flat * keep
    sign = torch.sign(kept.sum(dim=0))
    agree = (torch.sign(kept) == sign) & (kept != 0)
    w = torch.ones(len(stack)) if weights is None else torch.tensor(weights)
    total = (kept * w[:, None] * agree).sum(dim=0)
    return (total / agree.sum(dim=0).clamp(min=1)).reshape(stack.shape[1:])


def _plain_dare(stack, density, seed):
    keep = torch.rand(stack.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32) < density
    return stack * keep.to(stack.dtype) / density


@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0]])
def test_blocked_in_place_rules_equal_the_plain_whole_tensor_rules(weights):
    assert 5 * (CHUNK // 4 + 7) > max(CHUNK, 2 * BLOCK)  # each vector spans two pruning chunks and three blocks
    stack = torch.randn(3, 5, CHUNK // 4 + 7, generator=torch.Generator().manual_seed(1))
    stack = stack.to(torch.bfloat16).float()  # few distinct magnitudes: many ties at the k-th
    before = stack.clone()
    assert torch.equal(ties(stack, density=0.3, weights=weights), _plain_ties(stack, 0.3, weights))
    assert torch.equal(stack, before)  # not overwritten unless given up
    gen = torch.Generator().manual_seed(4)
    assert torch.equal(dare(stack, density=0.4, generator=gen), _plain_dare(stack, 0.4, 4).sum(dim=0))
    pruned = _plain_dare(stack, 0.4, 4)
    gen = torch.Generator().manual_seed(4)
    expected = _plain_ties(pruned, 1.0, weights)  # density 1: the election and mean alone
    assert torch.equal(dare_ties(stack, density=0.4, generator=gen, weights=weights), expected)
    owned = stack.clone()
    assert torch.equal(ties(owned, density=0.3, weights=weights, overwrite=True), _plain_ties(stack, 0.3, weights))


def _folder(path, tensors):
    path.mkdir()
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "torch_dtype": "float32"}))
    return path


@pytest.fixture(scope="module")
def big_models(tmp_path_factory):
    """A base and 8 fine-tunes with one 4M-entry matrix (and a small one), as checkpoints and task vectors."""
    root = tmp_path_factory.mktemp("big")
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(2048, 2048, generator=g), "b": torch.randn(16, generator=g)}
    _folder(root / "base", base)
    for t in range(8):
        tuned = {n: v + 1e-2 * torch.randn(v.shape, generator=g) for n, v in base.items()}
        _folder(root / f"ft{t}", tuned)
        meta = {"paradigm": "nonlinear", "task": f"t{t}", "base_hash": tensors_sha256(base)}
        TaskVector({n: tuned[n] - base[n] for n in base}, meta).save(root / f"tau{t}.safetensors")
    return root, base


def _export(root, tmp_path, extra_args=(), **fields):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"base": str(root / "base"), "inputs": [{"checkpoint": str(root / f"ft{t}")}
                                                                           for t in range(8)], **fields}))
    result = CliRunner().invoke(app, ["export", str(recipe), "--out", str(tmp_path / "out"), *extra_args], env=ENV)
    assert result.exit_code == 0, result.output
    return load_file(str(tmp_path / "out" / "model.safetensors"))


@pytest.mark.parametrize("method,settings", [("ties", {"density": 0.2}), ("dare_ties", {"density": 0.3, "seed": 5}),
                                             ("task_arithmetic", {}), ("iso_c", {})])
def test_a_streamed_export_equals_the_in_memory_merge(big_models, tmp_path, method, settings):
    root, base = big_models
    merged = _export(root, tmp_path, method=method, alpha=0.5, **settings)
    vectors = [TaskVector.load(root / f"tau{t}.safetensors") for t in range(8)]
    expected = merge_vectors(vectors, method, **settings)
    for name in base:
        assert torch.equal(merged[name], base[name] + 0.5 * expected.tensors[name]), name
    if method == "ties":  # and the plain whole-tensor rule, on the 4M-entry matrix
        stack = torch.stack([v.tensors["w"] for v in vectors])
        assert torch.equal(expected.tensors["w"], _plain_ties(stack, 0.2))


def test_the_output_dtype_is_written_and_named_in_the_config(big_models, tmp_path):
    root, base = big_models
    merged = _export(root, tmp_path, ["--dtype", "bfloat16"], method="task_arithmetic")
    vectors = [TaskVector.load(root / f"tau{t}.safetensors") for t in range(8)]
    expected = base["w"] + merge_vectors(vectors, "task_arithmetic").tensors["w"]  # merged in float32
    assert merged["w"].dtype == torch.bfloat16 and torch.equal(merged["w"], expected.to(torch.bfloat16))
    assert json.loads((tmp_path / "out" / "config.json").read_text())["torch_dtype"] == "bfloat16"


@pytest.mark.parametrize("name,message", [("meta", "runs on cpu or cuda"), ("tpu", "not a device"),
                                          ("cuda:x", "not a device"), ("cuda:99", "CUDA device")])
def test_a_device_that_cannot_run_the_merge_is_one_line(name, message):
    with pytest.raises(TaskarithError, match=message):
        compute_device(name)


def test_the_merge_runs_on_a_named_device(big_models, tmp_path):
    root, _ = big_models
    device = "cuda" if torch.cuda.is_available() else "cpu"
    on_device = _export(root, tmp_path, ["--device", device], method="ties", density=0.2)
    (tmp_path / "cpu").mkdir()
    assert torch.allclose(on_device["w"], _export(root, tmp_path / "cpu", method="ties", density=0.2)["w"],
                          atol=1e-6)


def test_the_card_gives_each_inputs_tensor_hash_unless_told_not_to(big_models, tmp_path):
    root, _ = big_models
    vectors = [str(root / f"tau{t}.safetensors") for t in range(2)]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"base": str(root / "base"), "inputs": [{"vector": v} for v in vectors]}))
    for flag, out in (([], "hashed"), (["--no-hash-inputs"], "unhashed")):
        result = CliRunner().invoke(app, ["export", str(recipe), "--out", str(tmp_path / out), *flag], env=ENV)
        assert result.exit_code == 0, result.output
    card = (tmp_path / "hashed" / "README.md").read_text()
    assert all(tensors_sha256(TaskVector.load(v).tensors) in card for v in vectors)  # the vector's own digest
    assert (tmp_path / "unhashed" / "README.md").read_text().count("not hashed") == 2


def test_the_python_api_exports_in_a_dtype(big_models, tmp_path):
    import taskarith as ta

    root, _ = big_models
    out = ta.export(root / "base", [root / "tau0.safetensors", root / "tau1.safetensors"], tmp_path / "out",
                    method="ties", density=0.5, dtype="float16", device="cpu")
    assert load_file(str(out / "model.safetensors"))["w"].dtype == torch.float16
    with pytest.raises(TaskarithError, match="dtype"):
        ta.export(root / "base", [root / "tau0.safetensors"], tmp_path / "bad", dtype="int8")


def test_an_svd_that_fails_in_float32_is_redone_in_float64_and_one_that_never_converges_names_its_tensor(
        monkeypatch):
    from taskarith.merging import spectral

    real = torch.linalg.svd
    matrix = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))

    def float32_fails(m, full_matrices=True):
        if m.dtype == torch.float32:
            raise torch.linalg.LinAlgError("linalg.svd: The algorithm failed to converge")
        return real(m, full_matrices=full_matrices)

    monkeypatch.setattr(torch.linalg, "svd", float32_fails)
    u, s, vh = spectral.svd(matrix)
    assert u.dtype == torch.float32 and torch.equal(s, real(matrix.double(), full_matrices=False)[1].float())

    def never(m, full_matrices=True):
        raise torch.linalg.LinAlgError("linalg.svd: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "svd", never)
    vectors = [TaskVector({"layer.weight": torch.randn(6, 4), "bias": torch.randn(4)}, {"paradigm": "nonlinear"})
               for _ in range(2)]
    with pytest.raises(TaskarithError, match="tensor 'layer.weight': the merge's SVD did not converge"):
        merge_vectors(vectors, "iso_c")
