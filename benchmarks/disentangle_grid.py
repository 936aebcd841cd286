"""The disentanglement error ξ on a 15 × 15 grid for one task pair: the naive way (per grid point, the
model rebuilt and both tasks re-evaluated, plus the single-task points) against taskarith's, side by
side in one process. The naive way is timed on a sample of grid points and scaled to the full grid (its
cost is the same at every point). For non-linear vectors, taskarith's time is also compared with the
225 forward passes over the sample that the grid needs at the least. Ends with one JSON line."""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch.func import jvp

import common
from taskarith.analysis.disentangle import alpha_grid, disentanglement_error
from taskarith.evaluate import make_evalset


def naive_point(alphas: tuple[float, float], vectors, sets, heads, linear: bool) -> float:
    """ξ at one grid point the way a script without sweeps computes it: rebuild, apply, evaluate."""
    model = common.model()
    params = model.named_weights()
    names = vectors[0].names

    def rep_at(coefs, texts):
        delta = {n: sum(c * v.tensors[n] for c, v in zip(coefs, vectors)) for n in names}
        tok = model.tokenizer(texts, padding="max_length", truncation=True, max_length=model.max_length,
                               return_tensors="pt")
        b = {"input_ids": tok["input_ids"], "attention_mask": tok["attention_mask"]}
        with torch.no_grad():
            if linear:
                theta0 = {n: params[n].detach() for n in names}
                f0, t = jvp(lambda p: model.represent(b, p), (theta0,), (delta,))
                return f0 + t
            state = {n: p.detach().clone() for n, p in params.items()}
            model.net.load_state_dict({**state, **{n: state[n] + delta[n] for n in names}}, strict=False)
            out = model.represent(b)
            model.net.load_state_dict(state, strict=False)
            return out

    total = 0.0
    for t, (texts, _, _, _) in enumerate(sets):
        single = [alphas[t] if i == t else 0.0 for i in range(2)]
        p = torch.log_softmax(rep_at(single, texts), -1)
        q = torch.log_softmax(rep_at(list(alphas), texts), -1)
        total += float((p.exp() * (p - q)).sum(-1).mean())
    return total


def forward_pass_seconds(model, evalsets, repeats: int = 3) -> float:
    """Median seconds of one forward pass over every evaluation set: the least a grid cell can cost."""
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.inference_mode():
            for evalset in evalsets:
                for b in evalset.batches:
                    model.represent(b)
        passes.append(time.perf_counter() - start)
    return statistics.median(passes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs=2, default=["trec", "sms"])
    ap.add_argument("--points", type=int, default=64, help="test examples per task")
    ap.add_argument("--grid", type=int, default=15)
    ap.add_argument("--naive-sample", type=int, default=6, help="grid points the naive way is timed on")
    args = ap.parse_args()
    common.setup_threads()

    model = common.model()
    sets = [common.task_split(t, args.points) for t in args.tasks]
    heads = [common.head_for(model, s[2], s[3]) for s in sets]
    grid = alpha_grid(args.grid, 2.0)
    cells = args.grid * args.grid
    rng = np.random.default_rng(0)
    sample = [(grid[i], grid[j]) for i, j in rng.integers(0, args.grid, (args.naive_sample, 2))]
    figures = {}
    for paradigm in ("linear", "nonlinear"):
        vectors = [common.random_vector(model, paradigm, t, seed=i) for i, t in enumerate(args.tasks)]
        evalsets = [make_evalset(model, s[0], s[1], 128) for s in sets]
        start = time.perf_counter()
        ours = disentanglement_error(model, vectors, evalsets, heads, grid)
        t_ours = time.perf_counter() - start
        start = time.perf_counter()
        for point in sample:
            naive_point(point, vectors, sets, heads, paradigm == "linear")
        t_naive = (time.perf_counter() - start) / len(sample) * cells
        entry = {"naive_s_scaled": t_naive, "ours_s": t_ours, "speedup": t_naive / t_ours}
        if paradigm == "nonlinear":
            needed = forward_pass_seconds(model, evalsets) * cells
            entry.update({"needed_forward_s": needed, "ours_over_needed": t_ours / needed})
        figures[paradigm] = entry
        extra = f"   ours / {cells} passes {entry['ours_over_needed']:.2f}" if "ours_over_needed" in entry else ""
        print(f"{paradigm:10} naive {t_naive:8.1f} s (scaled from {len(sample)} points)   taskarith {t_ours:6.1f} s"
              f"   speed-up {t_naive / t_ours:6.1f}x{extra}")
        assert ours["representation"].shape == (args.grid, args.grid)
    print(json.dumps({"benchmark": "disentangle_grid", "grid": args.grid, "points_per_task": args.points,
                      **figures}))


if __name__ == "__main__":
    main()
