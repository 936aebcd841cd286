"""Start-up time of the commands that compute nothing: `taskarith --help`, `tasks`, `methods` and a run whose
config fails its checks, against `python -c "import torch"` (what each paid before the CLI imported lazily) and
a bare `python -c pass` (the floor), side by side in one process.

Each figure is the median wall time of fresh processes, interleaved round by round so that drift in the
machine hits all of them alike; the first round warms the page cache and is discarded. Ends with one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def commands(bad_config: Path) -> dict[str, tuple[list[str], int]]:
    """Each command line with the exit code it must end with."""
    cli = [sys.executable, "-m", "taskarith"]
    return {
        "python": ([sys.executable, "-c", "pass"], 0),
        "import torch": ([sys.executable, "-c", "import torch"], 0),
        "taskarith --help": ([*cli, "--help"], 0),
        "taskarith tasks": ([*cli, "tasks"], 0),
        "taskarith methods": ([*cli, "methods"], 0),
        "taskarith run BAD.yaml": ([*cli, "run", str(bad_config)], 2),
    }


def seconds(command: list[str], code: int, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    took = time.perf_counter() - start
    if done.returncode != code:
        raise SystemExit(f"{' '.join(command)}: exit code {done.returncode}, expected {code}\n{done.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds (one more warms up)")
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        bad = Path(tmp) / "bad.yaml"
        bad.write_text("train:\n  steps: -1\n")
        lines = commands(bad)
        times: dict[str, list[float]] = {name: [] for name in lines}
        for round_ in range(args.rounds + 1):
            for name, (command, code) in lines.items():
                took = seconds(command, code, env)
                if round_:
                    times[name].append(took)
    median = {name: statistics.median(t) for name, t in times.items()}
    torch_s = median["import torch"]
    for name, s in median.items():
        print(f"{name:24s} {s:6.3f} s   {s / torch_s:5.2f}× import torch")
    print(json.dumps({"benchmark": "cli_startup", "rounds": args.rounds, "seconds": median,
                      "ratio_to_import_torch": {name: s / torch_s for name, s in median.items()}}))


if __name__ == "__main__":
    main()
