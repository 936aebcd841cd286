"""The demo's fine-tunes (configs/demo.yaml: 3 tasks x 3 paradigms) run four ways, side by side, each in a
fresh folder and a fresh process tree:

- local-2t: the local executor as `taskarith run` uses it (torch's default threads);
- local-1t: the local executor on one thread, the same single-thread work the other two spread out;
- ray: Ray with 2 single-thread workers (a local cluster, each fine-tune a task of the executor's);
- torchrun: 2 single-thread gloo ranks training each fine-tune together (DDP).

Wall time and total CPU seconds are compared. Total CPU counts every process a way starts, Ray's daemons
and torchrun's agent included: this process becomes their subreaper, so each one's CPU time is collected
when it exits. Ray's daemons and workers are reaped by its raylet instead, so the Ray driver reads their
CPU times (with what each reaped) just before it shuts the cluster down. The overhead of Ray and DDP is their total CPU over local-1t's. Each way also reports what
its processes spent outside the fine-tunes' own training (imports, model and data loading, daemons), and
the CPU inside fine-tunes. On 2 cores no speed-up is expected beyond what one thread per core gives.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
PR_SET_CHILD_SUBREAPER = 36


def experiment(run_dir: Path, steps: int | None):
    from taskarith.config import load_config
    from taskarith.run import Experiment

    cfg = load_config(REPO / "configs" / "demo.yaml", [f"train.steps={steps}"] if steps else [])
    return Experiment(cfg, run_dir, progress=False, log=lambda *_: None)


def units(exp):
    from taskarith.run.lr_search import run_rates
    from taskarith.run.plan import finetune_units

    return finetune_units(exp, 1, run_rates(exp).by_paradigm)


def train_all(exp) -> float:
    """CPU seconds of this process inside the fine-tunes."""
    from taskarith.run import trained_vector

    start = time.process_time()
    for unit in units(exp):
        trained_vector(exp, unit)
    return time.process_time() - start


def child_local(args) -> dict:
    import torch

    from taskarith.groundwork.resources import apply_process_settings

    apply_process_settings()
    if args.threads:
        torch.set_num_threads(args.threads)
    exp = experiment(args.run_dir, args.steps)
    return {"training_cpu": train_all(exp)}


def child_rank(args) -> dict:
    from taskarith.groundwork.resources import apply_process_settings
    from taskarith.training.distributed import init_from_env, shutdown

    apply_process_settings()
    ranks = init_from_env()
    exp = experiment(args.run_dir, args.steps)
    cpu = train_all(exp)
    shutdown()
    return {"rank": ranks.rank, "training_cpu": cpu}


def child_ray(args) -> dict:
    import ray

    from taskarith.groundwork.resources import apply_process_settings, process_settings_applied
    from taskarith.run.ray_executor import Context, _experiment, finetune_unit

    apply_process_settings()
    exp = experiment(args.run_dir, args.steps)

    def timed_unit(ctx, unit):  # the executor's own unit, its CPU measured inside the worker
        _experiment(ctx, ctx.cfg.resources.finetune.num_cpus)
        start = time.process_time()
        finetune_unit(ctx, unit)
        return time.process_time() - start

    ray.init(num_cpus=2, include_dashboard=False, logging_level="error", log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    ctx = Context(exp.cfg, str(args.run_dir), os.getcwd(), process_settings_applied())
    task = ray.remote(timed_unit).options(num_cpus=1, max_retries=3)
    cpu = sum(ray.get([task.remote(ctx, u) for u in units(exp)]))
    # Ray's daemons and workers outlive shutdown and are reaped by the raylet, not by this tree: their CPU is
    # read while they run, every process below this driver with what each has reaped
    tree = psutil.Process().children(recursive=True)
    others = sum(sum(t[:4]) for t in _cpu_times(tree))
    ray.shutdown()
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"training_cpu": cpu, "total_cpu": own.ru_utime + own.ru_stime + others}


def _cpu_times(processes):
    for proc in processes:
        try:
            yield proc.cpu_times()
        except psutil.NoSuchProcess:
            continue


def measure(way: str, command: list[str], env: dict) -> dict:
    """Wall time and CPU seconds of `command` and every process it leaves behind, all reaped here."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{way} failed:\n{proc.stderr[-3000:]}")
    _reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    training = sum(r["training_cpu"] for r in reports)
    cpu = next((r["total_cpu"] for r in reports if "total_cpu" in r), cpu)
    return {"wall_s": wall, "cpu_s": cpu, "training_cpu_s": training, "outside_training_cpu_s": cpu - training}


def _reap_orphans(timeout: float = 60.0) -> None:
    """Wait for the processes a way left to exit (Ray's daemons wind down after shutdown)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.1)
    raise SystemExit("processes of a way were still running a minute after it finished")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="steps per fine-tune (default: the demo's 80)")
    parser.add_argument("--child", choices=["local", "rank", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from taskarith.groundwork.lock import run_lock

        # one writer per folder: the local children and the Ray driver hold the lock; ranks share rank 0's
        report = {"local": child_local, "rank": child_rank, "ray": child_ray}[args.child]
        if args.child == "rank":
            print(json.dumps(report(args)), flush=True)
        else:
            with run_lock(args.run_dir):
                print(json.dumps(report(args)), flush=True)
        return
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("cannot become a subreaper: Ray's daemons' CPU time would be lost")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    one = {**env, "OMP_NUM_THREADS": "1"}
    me = [sys.executable, str(Path(__file__).resolve())]
    steps = ["--steps", str(args.steps)] if args.steps else []
    results = {}
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        ways = {
            "local-2t": (me + ["--child", "local"], env),
            "local-1t": (me + ["--child", "local", "--threads", "1"], one),
            "ray": (me + ["--child", "ray"], one),
            "torchrun": ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          str(Path(__file__).resolve()), "--child", "rank"], one),
        }
        for way, (command, way_env) in ways.items():
            results[way] = measure(way, [*command, *steps, "--run-dir", str(Path(tmp) / way)], way_env)
            r = results[way]
            print(f"{way:9s} wall {r['wall_s']:7.1f} s   CPU {r['cpu_s']:7.1f} s   in fine-tunes "
                  f"{r['training_cpu_s']:7.1f} s   outside {r['outside_training_cpu_s']:6.1f} s", flush=True)
    base = results["local-1t"]
    for way in ("ray", "torchrun", "local-2t"):
        r = results[way]
        r["cpu_overhead_vs_local_1t"] = r["cpu_s"] / base["cpu_s"] - 1
        r["wall_ratio_vs_local_1t"] = r["wall_s"] / base["wall_s"]
        print(f"{way}: CPU overhead {r['cpu_overhead_vs_local_1t']:+.1%} over local-1t "
              f"(fine-tunes {r['training_cpu_s'] - base['training_cpu_s']:+.1f} s, outside "
              f"{r['outside_training_cpu_s'] - base['outside_training_cpu_s']:+.1f} s); wall x{r['wall_ratio_vs_local_1t']:.2f}")
    print(json.dumps({"benchmark": "scale", "steps": args.steps or 80, "ways": results}))


if __name__ == "__main__":
    main()
