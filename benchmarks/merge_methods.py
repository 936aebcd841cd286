"""Wall time and peak memory of the data-free merge rules over every parameter of the embedded model
(all-MiniLM-L6-v2), merging 8 random task vectors of its parameters' shapes (normal, scale 1e-3).

The rules run parameter by parameter on pre-stacked [T, ...] tensors, as `merge_vectors` calls them
(the stacking itself is left out: it is the same for every rule). Timings interleave the rules round by
round in one process, so drift in the machine hits all of them alike; the first round warms up and is
discarded, and each rule's figure is its median round. Peak memory is measured in a fresh child process
per rule with the kernel's resident-set high-water mark (VmHWM, via taskarith.groundwork.resources; tracemalloc
does not see torch's allocations): it is reset once the stacked inputs are built, so the figure is the
memory the merge needs on top of its inputs, its output included. `--randomized` also times TSV-M with
its randomized top-k SVD turned on (spectral.RANDOMIZED_SHARE = 0.25). Two floors are timed beside the
rules, the first step of the cheapest exact route we know (the Gram matrix AᵀA on the small side, then its
eigendecomposition): each task's Gram matrix of every 2-D weight (`floor:every_task_gram`, what TSV-M and
Iso-CTS decompose) and the Gram matrix of the sum (`floor:sum_gram`, what Iso-C decomposes). Ends with one
JSON line.

On a machine with more runnable threads than cores, OpenMP's default spin-waiting can make each LAPACK
call (SVD, eigh) about 100× slower (a 384×384 SVD: ~4.8 s instead of ~40 ms on 2 shared cores); run with
OMP_WAIT_POLICY=PASSIVE there. The JSON line records the setting.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from taskarith.merging import rules, spectral  # noqa: E402

def every_task_gram(stack: torch.Tensor, **_) -> torch.Tensor:
    """A floor, not a rule: each task's Gram matrix on the small side of every 2-D weight (AᵀA or AAᵀ), the
    first step of an exact SVD of every task's matrices by the Gram route; other tensors are averaged, as the
    rules do."""
    if stack.ndim != 3:
        return stack.mean(dim=0)
    return stack.mT @ stack if stack.shape[1] >= stack.shape[2] else stack @ stack.mT


def sum_gram(stack: torch.Tensor, **_) -> torch.Tensor:
    """A floor, not a rule: the Gram matrix of the sum of every 2-D weight, the first step of Iso-C's SVD by
    the Gram route."""
    if stack.ndim != 3:
        return stack.mean(dim=0)
    total = stack.sum(dim=0)
    return total.T @ total if total.shape[0] >= total.shape[1] else total @ total.T


RULES: dict[str, Callable[..., torch.Tensor]] = {
    "task_arithmetic": rules.task_arithmetic, "ties": rules.ties, "dare": rules.dare, "dare_ties": rules.dare_ties,
    "tsv_m": spectral.tsv_m, "iso_c": spectral.iso_c, "iso_cts": spectral.iso_cts,
    "floor:every_task_gram": every_task_gram, "floor:sum_gram": sum_gram,
}
RANDOMIZED = "tsv_m:randomized"  # TSV-M with its randomized top-k, where that pays
RANDOMIZED_SHARE = 0.25
DENSITY = 0.2  # merge_vectors' default, for TIES and DARE
BASELINE = "task_arithmetic"


def model_shapes() -> dict[str, list[int]]:
    from taskarith.config import ModelConfig
    from taskarith.models import load_model
    from transformers.utils import logging

    logging.disable_progress_bar()
    net = load_model(ModelConfig(device="cpu")).net
    return {name: list(p.shape) for name, p in net.named_parameters()}


def stacks(shapes: dict[str, list[int]], tasks: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random task vectors stacked per parameter, filled in place so no temporary raises the peak."""
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.empty(tasks, *s).normal_(0.0, 1e-3, generator=gen) for n, s in sorted(shapes.items())}


def rule_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The rule as merge_vectors calls it; a name ending in `:randomized` turns TSV-M's randomized top-k on."""
    base, randomized = name.removesuffix(":randomized"), name.endswith(":randomized")
    gen = torch.Generator().manual_seed(0)

    def run(stack: torch.Tensor) -> torch.Tensor:
        saved = spectral.RANDOMIZED_SHARE
        spectral.RANDOMIZED_SHARE = RANDOMIZED_SHARE if randomized else saved
        try:
            return RULES[base](stack, density=DENSITY, generator=gen)
        finally:
            spectral.RANDOMIZED_SHARE = saved

    return run


def merge_all(fn: Callable[[torch.Tensor], torch.Tensor], data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: fn(stack) for name, stack in data.items()}


def measure(names: list[str], data: dict[str, torch.Tensor], rounds: int) -> dict[str, float]:
    """Median seconds per full merge of each rule, the rules interleaved round by round."""
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds + 1):  # round 0 warms up (MKL's first calls, page faults) and is discarded
        for n in names:
            fn = rule_fn(n)
            start = time.perf_counter()
            merge_all(fn, data)
            if r:
                times[n].append(time.perf_counter() - start)
    return {n: statistics.median(v) for n, v in times.items()}


def child(name: str, shapes_file: str, tasks: int) -> None:
    """In a fresh process: build the inputs, reset the high-water mark, merge once, print the extra peak."""
    from taskarith.groundwork.resources import current_rss, peak_rss, reset_peak_rss

    with open(shapes_file) as f:
        data = stacks(json.load(f), tasks)
    fn = rule_fn(name)
    fn(torch.zeros(tasks, 8, 8))  # load LAPACK's code before the baseline is taken
    hwm_reset = reset_peak_rss()  # frees glibc's cached blocks too, so take the baseline after it
    before = current_rss()
    merged = merge_all(fn, data)
    print(json.dumps({"extra_peak_bytes": peak_rss() - before, "hwm_reset": hwm_reset,
                      "merged": sum(t.numel() for t in merged.values())}))


def peak_child(name: str, shapes_file: str, tasks: int) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", name, "--shapes", shapes_file,
                          "--tasks", str(tasks)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(names, sec, mem, args, shapes) -> None:
    params = sum(torch.Size(s).numel() for s in shapes.values())
    print(f"{len(shapes)} tensors, {params / 1e6:.1f} M parameters, {args.tasks} task vectors; "
          f"{torch.get_num_threads()} threads; median of {args.rounds} rounds")
    print(f"{'rule':18}{'seconds':>10}{'x task_arith':>14}{'extra peak MiB':>16}")
    for n in names:
        print(f"{n:18}{sec[n]:>10.3f}{sec[n] / sec[BASELINE]:>14.1f}{mem[n]['extra_peak_bytes'] / 2**20:>16.0f}")
    print(json.dumps({
        "benchmark": "merge_methods", "model": "all-MiniLM-L6-v2", "tasks": args.tasks, "tensors": len(shapes),
        "parameters": params, "rounds": args.rounds, "threads": torch.get_num_threads(),
        "randomized_share": {"default": spectral.RANDOMIZED_SHARE, RANDOMIZED: RANDOMIZED_SHARE}, "seconds": sec,
        "ratio_vs_task_arithmetic": {n: sec[n] / sec[BASELINE] for n in names},
        "extra_peak_rss_bytes": {n: mem[n]["extra_peak_bytes"] for n in names},
        "peak_reset_worked": all(mem[n]["hwm_reset"] for n in names),  # False: peaks include building the inputs
        "memory_measure": "VmHWM delta in a child per rule, reset after the inputs are built",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--randomized", action="store_true", help="also time TSV-M with its randomized top-k SVD")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--shapes", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.shapes, args.tasks)

    shapes = model_shapes()
    names = list(RULES) + ([RANDOMIZED] if args.randomized else [])
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(shapes, f)
    try:
        sec = measure(names, stacks(shapes, args.tasks), args.rounds)
        mem = {n: peak_child(n, f.name, args.tasks) for n in names}
    finally:
        os.unlink(f.name)
    report(names, sec, mem, args, shapes)


if __name__ == "__main__":
    main()
