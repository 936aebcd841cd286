"""Merging 8 fine-tunes of a model of over 1 GB into an HF folder: taskarith's streaming merge against loading
every model whole (the naive way) and, where the optional `bench` extra installed it, mergekit's
`mergekit-yaml` on the same folders with the same method.

The model is a randomly initialised Llama-architecture config (1.33 GB in float32); each fine-tune is the base
plus seeded Gaussian noise, saved with save_pretrained. Every merge runs in a fresh child process, so its peak
RSS (VmHWM) is its own; the runs are interleaved method by method in one invocation. Ratios are taskarith's
over the other's: time and peak RSS (targets ≤ 0.25× naive RSS, ≤ 1.0× mergekit), and the largest absolute
difference of the merged weights, relative to the largest weight. Ends with one JSON line.
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

METHODS = {"task_arithmetic": {}, "ties": {"density": 0.2}}
TASKS = 8


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


def child(kind: str, method: str, root: Path, out: Path) -> None:
    """One merge in this process; prints seconds and peak RSS."""
    from taskarith.resources import peak_rss

    start = time.perf_counter()
    if kind == "taskarith":
        from taskarith.recipes import Recipe, merge_recipe

        recipe = Recipe.model_validate({"base": str(root / "base"), "method": method, **METHODS[method],
                                        "inputs": [{"checkpoint": str(root / f"ft{t}")} for t in range(TASKS)]})
        merge_recipe(recipe, root, out, recipe_text=json.dumps(recipe.model_dump()))
    elif kind == "naive":
        naive(method, root, out)
    else:
        mergekit(method, root, out)
    import resource

    # mergekit-yaml runs as a child of this process: its peak is the children's
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss": max(peak_rss(), children)}))


def naive(method: str, root: Path, out: Path) -> None:
    """Every model loaded whole, then the same per-tensor rule, then save_pretrained's file."""
    from safetensors.torch import load_file, save_file

    from taskarith.merging.methods import merge_method

    def whole(folder: Path) -> dict:
        state = {}
        for f in sorted(folder.glob("*.safetensors")):
            state.update(load_file(f))
        return state

    base, tuned = whole(root / "base"), [whole(root / f"ft{t}") for t in range(TASKS)]
    rule, merged = merge_method(method).rule, {}
    for name in sorted(base):
        stack = torch.stack([ft[name] - base[name] for ft in tuned])
        merged[name] = base[name] + rule(stack, density=0.2, generator=None)
    out.mkdir()
    save_file(merged, str(out / "model.safetensors"), metadata={"format": "pt"})


def mergekit(method: str, root: Path, out: Path) -> None:
    models = [{"model": str(root / f"ft{t}"), "parameters": {"weight": 1.0, **METHODS[method]}} for t in range(TASKS)]
    # mergekit's defaults match ours: task_arithmetic sums; ties keeps int(density·n) per tensor, elects the
    # sign by the summed values and divides by the agreeing vectors' summed weights (1 each)
    config = {"merge_method": method, "base_model": str(root / "base"), "models": models, "dtype": "float32"}
    path = out.parent / f"{out.name}.yml"
    path.write_text(json.dumps(config))
    subprocess.run(["mergekit-yaml", str(path), str(out), "--lazy-unpickle"], check=True, capture_output=True)


def measure(kind: str, method: str, root: Path) -> dict:
    out = root / f"out-{kind}-{method}"
    shutil.rmtree(out, ignore_errors=True)
    run = subprocess.run([sys.executable, __file__, "--child", kind, "--method", method, "--root", str(root)],
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1]) | {"out": str(out)}


def max_difference(a: str, b: str) -> float:
    """max |a − b| over every tensor, relative to max |b|."""
    from safetensors import safe_open

    def tensors(folder: str):
        for f in sorted(Path(folder).glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as h:
                for k in h.keys():
                    yield k, h.get_tensor(k)

    ref = dict(tensors(b))
    worst = top = 0.0
    for k, t in tensors(a):
        worst, top = max(worst, float((t - ref[k]).abs().max())), max(top, float(ref[k].abs().max()))
    return worst / top


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS))
    ap.add_argument("--child")
    ap.add_argument("--method")
    ap.add_argument("--root")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.method, Path(args.root), Path(args.root) / f"out-{args.child}-{args.method}")
    kinds = ["taskarith", "naive"] + (["mergekit"] if shutil.which("mergekit-yaml") else [])
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        root = Path(tmp)
        build(root, args.layers)
        rows = {m: {k: measure(k, m, root) for k in kinds} for m in args.methods.split(",")}
        result = {"benchmark": "merge_export", "tasks": TASKS, "layers": args.layers, "mergekit": "mergekit" in kinds,
                  "bytes_per_model": sum(f.stat().st_size for f in (root / "base").glob("*.safetensors"))}
        for m, row in rows.items():
            ours = row["taskarith"]
            for k in kinds[1:]:
                result[f"{m}:{k}"] = {"time_ratio": ours["seconds"] / row[k]["seconds"],
                                      "peak_rss_ratio": ours["peak_rss"] / row[k]["peak_rss"],
                                      "max_rel_difference": max_difference(ours["out"], row[k]["out"])}
                print(f"{m:16} vs {k:9} time {result[f'{m}:{k}']['time_ratio']:.2f}×  peak RSS "
                      f"{result[f'{m}:{k}']['peak_rss_ratio']:.2f}×  max rel diff {result[f'{m}:{k}']['max_rel_difference']:.2e}")
            result[m] = {k: {"seconds": row[k]["seconds"], "peak_rss": row[k]["peak_rss"]} for k in kinds}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
