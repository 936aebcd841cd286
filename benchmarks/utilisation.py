"""How close evaluation runs to the machine's limit: the embedded model's forward-pass FLOP/s on an
evaluation batch, as a fraction of the FLOP/s of one large float32 matmul, in the same process.
FLOPs are counted by torch's own FlopCounterMode. Ends with one JSON line."""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

import common


def matmul_flops_per_s(n: int, repeats: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    seconds, _ = common.timed(lambda: a @ b, repeats)
    return 2 * n ** 3 / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--matmul", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    common.setup_threads()

    model = common.model(max_length=args.tokens)
    texts, labels, classes, templates = common.task_split("mr", 4 * args.batch)
    texts = [" ".join([t] * 8) for t in texts[:args.batch]]  # long enough to fill every position
    batch = model.collate(texts)
    assert batch["input_ids"].shape == (args.batch, args.tokens)
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            model.represent(batch)
        flops = counter.get_total_flops()
        model.represent(batch)
        seconds, _ = common.timed(lambda: model.represent(batch), args.repeats)
    model_rate = flops / seconds
    peak = matmul_flops_per_s(args.matmul, args.repeats)
    print(f"forward: {flops / 1e9:.1f} GFLOP per batch of {args.batch} x {args.tokens}, {model_rate / 1e9:.1f} GFLOP/s")
    print(f"matmul {args.matmul}^3 float32: {peak / 1e9:.1f} GFLOP/s")
    print(f"utilisation: {model_rate / peak:.2f} of the matmul rate ({torch.get_num_threads()} threads)")
    print(json.dumps({"benchmark": "utilisation", "batch": args.batch, "tokens": args.tokens,
                      "forward_gflop": flops / 1e9, "forward_gflops_per_s": model_rate / 1e9,
                      "matmul_gflops_per_s": peak / 1e9, "fraction": model_rate / peak}))


if __name__ == "__main__":
    main()
