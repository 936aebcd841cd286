"""Merging 8 fine-tunes of a model of over 1 GB into an HF folder, every data-free method: taskarith's
streaming export against loading every model whole and merging in memory with `merge_vectors` (the naive way)
and, where mergekit is installed (the optional `bench` extra, or `--mergekit PATH`), mergekit-yaml on the same
folders with the same method.

The model is a randomly initialised Llama-architecture config (1.33 GB in float32); each fine-tune is the base
plus seeded Gaussian noise, saved with save_pretrained. Every merge runs in a fresh child process, so its peak
RSS (VmHWM) is its own, after every input file has been read once so that each starts with the same page cache.
Ratios are taskarith's over the other's: time and peak RSS (targets: time ≤ 1.0× mergekit, peak RSS ≤ 0.25×
naive and ≤ 1.0× mergekit), and the largest difference of the merged weights relative to the largest weight.
Against the naive way it is 0 for every method: the export and merge_vectors run one loop. For the SVD methods
the floor is the SVDs themselves, timed here on the model's matrix shapes. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TASKS = 8
# each method's settings, and mergekit's name for the same rule (None: mergekit has no such method)
METHODS = {"task_arithmetic": ({}, "task_arithmetic"), "weight_averaging": ({}, "linear"),
           "ties": ({"density": 0.2}, "ties"), "dare": ({"density": 0.2}, "dare_linear"),
           "dare_ties": ({"density": 0.2}, "dare_ties"), "tsv_m": ({}, None), "iso_c": ({}, None),
           "iso_cts": ({}, None)}
# where taskarith and mergekit are known to differ, and why
CAUSES = {"ties": "tie-breaking among entries equal to the k-th magnitude (taskarith keeps the first; mergekit's "
          "argsort is not stable)", "dare": "random draws (each library's own generator)", "dare_ties": "random draws (each library's own "
          "generator)", "weight_averaging": "rounding: mergekit averages the weights, taskarith adds the mean "
          "difference to the base"}
UNHASHED = "taskarith-unhashed"  # --no-hash-inputs: the model card without each input's sha256
SVDS_PER_MATRIX = {"tsv_m": TASKS, "iso_c": 1, "iso_cts": TASKS + 1}  # per-task SVDs, the sum's, or both


def build(root: Path, layers: int) -> None:
    """The base and TASKS fine-tunes as HF folders (safetensors), about 1.33 GB each with 4 layers."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=2048, intermediate_size=5504, num_hidden_layers=layers, num_attention_heads=16,
                         num_key_value_heads=16, vocab_size=32000, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(root / "base")
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    for t in range(TASKS):
        g = torch.Generator().manual_seed(100 + t)
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(base[n]).add_(torch.randn(p.shape, generator=g), alpha=1e-3)
        model.save_pretrained(root / f"ft{t}")


def child(kind: str, method: str, root: Path, out: Path, mergekit_yaml: str) -> None:
    """One merge in this process; prints seconds and peak RSS."""
    import resource

    from taskarith.groundwork.resources import peak_rss

    start = time.perf_counter()
    if kind.startswith("taskarith"):
        from taskarith.recipes import Recipe, merge_recipe

        recipe = Recipe.model_validate({"base": str(root / "base"), "method": method, **METHODS[method][0],
                                        "inputs": [{"checkpoint": str(root / f"ft{t}")} for t in range(TASKS)],
                                        "hash_inputs": kind == "taskarith"})
        merge_recipe(recipe, root, out, recipe_text=json.dumps(recipe.model_dump()))
    elif kind == "naive":
        naive(method, root, out)
    else:
        mergekit(method, root, out, mergekit_yaml)
    # mergekit-yaml runs as a child of this process: its peak is the children's
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss": max(peak_rss(), children)}))


def naive(method: str, root: Path, out: Path) -> None:
    """Every model loaded whole, the differences taken in place, `merge_vectors` in memory, then one file."""
    from safetensors.torch import load_file, save_file

    from taskarith.merging.merge import merge_vectors
    from taskarith.vectors import TaskVector

    def whole(folder: Path) -> dict:
        state = {}
        for f in sorted(folder.glob("*.safetensors")):
            state.update(load_file(f))
        return state

    base, vectors = whole(root / "base"), []
    for t in range(TASKS):
        tuned = whole(root / f"ft{t}")
        for name, tensor in tuned.items():
            tensor.sub_(base[name])
        vectors.append(TaskVector(tuned, {"paradigm": "nonlinear", "task": f"t{t}"}))
    merged = merge_vectors(vectors, method, **METHODS[method][0])
    for name, tau in merged.tensors.items():
        base[name].add_(tau)
    out.mkdir()
    save_file(base, str(out / "model.safetensors"), metadata={"format": "pt"})


def mergekit(method: str, root: Path, out: Path, mergekit_yaml: str) -> None:
    settings, name = METHODS[method]
    models = [{"model": str(root / f"ft{t}"), "parameters": {"weight": 1.0, **settings}} for t in range(TASKS)]
    # mergekit's defaults match ours: task_arithmetic sums; ties keeps ⌊density·n⌋ per tensor, elects the sign
    # by the summed values and divides by the agreeing vectors' summed weights (1 each); linear averages
    config = {"merge_method": name, "models": models, "dtype": "float32"}
    if name != "linear":
        config["base_model"] = str(root / "base")
    path = out.parent / f"{out.name}.yml"
    path.write_text(json.dumps(config))
    subprocess.run([mergekit_yaml, str(path), str(out), "--lazy-unpickle", "--quiet", "--random-seed", "0"],
                   check=True, capture_output=True)


def warm(root: Path) -> None:
    """Read every input file once, so each merge starts with them in the page cache as far as memory allows."""
    for path in sorted(root.glob("*/*.safetensors")):
        if path.parent.name.startswith(("base", "ft")):
            with open(path, "rb") as f:
                while f.read(1 << 24):
                    pass


def measure(kind: str, method: str, root: Path, mergekit_yaml: str) -> dict:
    out = root / f"out-{kind}-{method}"
    shutil.rmtree(out, ignore_errors=True)
    warm(root)
    run = subprocess.run([sys.executable, __file__, "--child", kind, "--method", method, "--root", str(root),
                          "--mergekit", mergekit_yaml], capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"{kind} {method} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1]) | {"out": str(out)}


def tensors(folder: str):
    from safetensors import safe_open

    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as h:
            for k in h.keys():
                yield k, h.get_tensor(k)


def difference(a: str, b: str) -> dict:
    """max |a − b| over every tensor relative to max |b|, and how many entries differ at all."""
    ref, worst, top, differ, entries = dict(tensors(b)), 0.0, 0.0, 0, 0
    for k, t in tensors(a):
        diff = (t - ref.pop(k)).abs()
        worst, top = max(worst, float(diff.max())), max(top, float(t.abs().max()))
        differ, entries = differ + int((diff > 0).sum()), entries + t.numel()
    assert not ref, f"tensors missing from {a}: {sorted(ref)[:3]}"
    return {"max_rel_difference": worst / top, "entries_differing": differ, "entries": entries}


TIE_CHECK = """
import json, sys
import torch
from safetensors import safe_open
from mergekit.sparsify import magnitude
from taskarith.merging.rules import magnitude_prune

root, tasks, density = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight", "model.embed_tokens.weight"]
differ = tied = 0
for name in names:
    with safe_open(f"{root}/base/model.safetensors", "pt") as f:
        base = f.get_tensor(name)
    for t in range(tasks):
        with safe_open(f"{root}/ft{t}/model.safetensors", "pt") as f:
            delta = f.get_tensor(name) - base
        ours, theirs = magnitude_prune(delta[None], density)[0] != 0, magnitude(delta, density=density) != 0
        kth = delta.abs()[ours].min()  # the k-th largest magnitude: the least that taskarith keeps
        differ += int((ours != theirs).sum())
        tied += int(((ours != theirs) & (delta.abs() == kth)).sum())
print(json.dumps({"tensors_checked": len(names) * tasks, "mask_entries_differing": differ, "of_which_at_kth": tied}))
"""


def tie_check(root: Path, mergekit_yaml: str) -> dict:
    """Where TIES's kept entries differ from mergekit's: its own magnitude pruning, run in mergekit's Python on
    three of the model's tensors, against taskarith's; the differing entries should all sit at the k-th."""
    python = Path(mergekit_yaml).parent / "python"
    src = Path(__file__).resolve().parent.parent / "src"
    run = subprocess.run([str(python), "-c", TIE_CHECK, str(root), str(TASKS), str(METHODS["ties"][0]["density"])],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)})
    return json.loads(run.stdout.strip().splitlines()[-1]) if run.returncode == 0 else {"error": run.stderr[-300:]}


def svd_floor(root: Path, method: str) -> float:
    """Seconds of the SVDs the method must compute on this model: each 2-D shape's SVD timed once (after a
    warm-up), times how many of that shape there are, times SVDS_PER_MATRIX."""
    from safetensors import safe_open

    shapes: dict[tuple[int, ...], int] = {}
    for f in sorted((root / "base").glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as h:
            for k in h.keys():
                shape = tuple(h.get_slice(k).get_shape())
                if len(shape) == 2:
                    shapes[shape] = shapes.get(shape, 0) + 1
    torch.linalg.svd(torch.randn(512, 512), full_matrices=False)
    total = 0.0
    for shape, count in shapes.items():
        matrix = torch.randn(shape)
        start = time.perf_counter()
        torch.linalg.svd(matrix, full_matrices=False)
        total += (time.perf_counter() - start) * count
    return total * SVDS_PER_MATRIX[method]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS))
    ap.add_argument("--mergekit", default=shutil.which("mergekit-yaml") or "", help="mergekit-yaml's path")
    ap.add_argument("--kinds", default=f"taskarith,{UNHASHED},naive,mergekit", help="which merges to run")
    ap.add_argument("--models", help="a folder to build the models in once and reuse (default: a temporary one)")
    ap.add_argument("--child")
    ap.add_argument("--method")
    ap.add_argument("--root")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.method, Path(args.root), Path(args.root) / f"out-{args.child}-{args.method}",
                     args.mergekit)
    methods = args.methods.split(",")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        root = Path(args.models or tmp)
        if not (root / f"ft{TASKS - 1}").exists():
            build(root, args.layers)
        result = {"benchmark": "merge_export", "tasks": TASKS, "layers": args.layers, "mergekit": bool(args.mergekit),
                  "bytes_per_model": sum(f.stat().st_size for f in (root / "base").glob("*.safetensors"))}
        for m in methods:
            has_mergekit = bool(args.mergekit and METHODS[m][1])
            kinds = [k for k in args.kinds.split(",") if k not in ("mergekit", UNHASHED) or has_mergekit]
            row = {k: measure(k, m, root, args.mergekit) for k in kinds}
            result[m] = {k: {"seconds": row[k]["seconds"], "peak_rss": row[k]["peak_rss"]} for k in kinds}
            pairs = [("taskarith", k) for k in kinds if k not in ("taskarith", UNHASHED)]
            pairs += [(UNHASHED, "mergekit")] if UNHASHED in kinds and "mergekit" in kinds else []
            for ours, k in pairs:
                entry = {"time_ratio": row[ours]["seconds"] / row[k]["seconds"],
                         "peak_rss_ratio": row[ours]["peak_rss"] / row[k]["peak_rss"],
                         **difference(row[ours]["out"], row[k]["out"])}
                if k == "mergekit" and entry["entries_differing"]:
                    entry["cause"] = CAUSES.get(m, "unexplained")
                result[f"{m}:{k}" if ours == "taskarith" else f"{m}:{ours}:{k}"] = entry
                print(f"{m:16} {ours:18} vs {k:9} time {entry['time_ratio']:.2f}×  peak RSS "
                      f"{entry['peak_rss_ratio']:.2f}×  max rel diff {entry['max_rel_difference']:.2e} "
                      f"({entry['entries_differing']} entries)", flush=True)
            if m == "ties" and "mergekit" in kinds:
                result["ties:mergekit"]["tie_check"] = check = tie_check(root, args.mergekit)
                print(f"ties masks vs mergekit's: {check}", flush=True)
            if m in SVDS_PER_MATRIX:
                floor = svd_floor(root, m)
                result[m]["svd_floor_seconds"] = floor
                print(f"{m:16} SVD floor {floor:.1f} s: taskarith takes {row['taskarith']['seconds'] / floor:.2f}× it",
                      flush=True)
            for k in kinds:
                shutil.rmtree(row[k]["out"], ignore_errors=True)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
