"""Seconds per optimizer step and peak memory of non-linear, attention-only and linearized fine-tuning
of the embedded model, side by side in one process (batch of 32 texts x 64 tokens).

Timings interleave the paradigms round by round so that drift in the machine hits all of them alike.
Peak memory is each paradigm's own peak RSS, measured in a fresh child process. Each step's FLOPs are
counted with torch's FlopCounterMode: their ratio is the compute bound of the time ratio (attention-only
skips the MLP's and embeddings' weight gradients, linearized adds the tangent pass).
Each paradigm is timed twice: first with glibc's allocator defaults, then with the allocator settings the
CLI uses (taskarith.groundwork.resources.keep_freed_memory), and the speed-up is printed. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import common
from taskarith.config import TrainConfig
from taskarith.training.trainable import Piece, Trainable, make_optimizer, training_step
from taskarith.paradigms import resolve_paradigm
from taskarith.models import TextEncoder
from taskarith.groundwork.resources import keep_freed_memory

PARADIGMS = ("nonlinear", "attention", "linear")


def make_batch(model: TextEncoder, size: int, tokens: int, seed: int = 0):
    vocab = [w for w in model.tokenizer.get_vocab() if w.isalpha() and len(w) > 3]
    gen = torch.Generator().manual_seed(seed)
    texts = [" ".join(vocab[i] for i in torch.randint(len(vocab), (tokens,), generator=gen).tolist())
             for _ in range(size)]
    batch = model.collate(texts)
    assert batch["input_ids"].shape == (size, tokens), batch["input_ids"].shape
    return batch, torch.randint(4, (size,), generator=gen)


def step_fn(paradigm: str, batch_size: int, tokens: int, model=None):
    model = model or TextEncoder(max_length=tokens)
    head = torch.nn.functional.normalize(torch.randn(4, model.net.config.hidden_size), dim=-1)
    batch, labels = make_batch(model, batch_size, tokens)
    cfg = TrainConfig(steps=10_000, warmup_steps=0)
    trainable = Trainable(model, resolve_paradigm(paradigm), cfg.decay_toward)
    optimizer, scheduler = make_optimizer(trainable, cfg)

    def run() -> None:
        training_step(trainable, head, [Piece(batch, labels)], optimizer, scheduler, cfg.grad_clip,
                      cfg.weight_decay)

    return run, trainable


def peak_rss_child(paradigm: str, batch_size: int, tokens: int, steps: int) -> int:
    """Peak RSS of the training steps alone (model loading excluded), in a fresh process."""
    code = (f"import common, step_time as b, taskarith.groundwork.resources as r; common.setup_threads(); "
            f"run, _ = b.step_fn({paradigm!r}, {batch_size}, {tokens}); r.reset_peak_rss(); "
            f"[run() for _ in range({steps})]; print(r.peak_rss())")
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.strip().splitlines()[-1])


def step_flops(run) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        run()
    return counter.get_total_flops()


def measure(model, args) -> dict[str, float]:
    """Median seconds per step of each paradigm, the paradigms interleaved round by round."""
    times: dict[str, list[float]] = {p: [] for p in PARADIGMS}
    for r in range(args.rounds + 1):  # round 0 warms up and is discarded
        for p in PARADIGMS:
            run, trainable = step_fn(p, args.batch, args.tokens, model)
            run()
            start = time.perf_counter()
            for _ in range(args.steps):
                run()
            if r:
                times[p].append((time.perf_counter() - start) / args.steps)
            trainable.close()
    return {p: statistics.median(v) for p, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="steps timed per paradigm per round")
    args = ap.parse_args()
    common.setup_threads(keep_memory=False)  # glibc's defaults first: keep_freed_memory cannot be undone

    model = TextEncoder(max_length=args.tokens)
    flops = {}
    for p in PARADIGMS:
        run, trainable = step_fn(p, args.batch, args.tokens, model)
        flops[p] = step_flops(run)
        trainable.close()
    default = measure(model, args)
    keep_freed_memory()
    sec = measure(model, args)
    mem = {p: peak_rss_child(p, args.batch, args.tokens, 3) for p in PARADIGMS}
    print(f"batch {args.batch} x {args.tokens} tokens, {torch.get_num_threads()} threads, median of {args.rounds} rounds")
    print(f"{'paradigm':12}{'s/step':>10}{'GFLOP/step':>12}{'peak RSS MiB':>15}{'glibc defaults / ours':>24}")
    for p in PARADIGMS:
        print(f"{p:12}{sec[p]:>10.3f}{flops[p] / 1e9:>12.1f}{mem[p] / 2**20:>15.0f}{default[p] / sec[p]:>24.2f}")
    ratios = {f"{p}/nonlinear": sec[p] / sec["nonlinear"] for p in ("attention", "linear")}
    bounds = {f"{p}/nonlinear": flops[p] / flops["nonlinear"] for p in ("attention", "linear")}
    for k in ratios:
        print(f"{k:22} time {ratios[k]:.2f}   FLOP bound {bounds[k]:.2f}")
    print(json.dumps({"benchmark": "step_time", "batch": args.batch, "tokens": args.tokens,
                      "seconds_per_step": sec, "seconds_per_step_glibc_defaults": default,
                      "flops_per_step": flops, "peak_rss_bytes": mem, "ratios": ratios, "flop_bounds": bounds}))


if __name__ == "__main__":
    main()
