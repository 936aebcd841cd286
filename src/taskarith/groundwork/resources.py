"""The resources work takes: what a run's Ray tasks ask of the cluster's nodes, and the peak memory a piece
of work used (process peak RSS on CPU, the CUDA allocator's peak on GPU).

A long run's process keeps growing (heads, evaluation sets, cached vectors), so the absolute peak also
counts what earlier work left resident. The work's own figure is its increase over a baseline read just
before it starts: the memory the work itself needed."""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping, Sequence

import torch

from .errors import TaskarithError

# each field of a task request, the name of that resource on a Ray node, and its unit in a message
_RAY_RESOURCES = {"num_cpus": ("CPU", "CPU(s)"), "num_gpus": ("GPU", "GPU(s)"), "memory": ("memory", "bytes")}


def _amount(value: float) -> str:
    """A count as written in a config: whole numbers (bytes above all) in full, fractions as they are."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def check_grantable(requests: Mapping[str, Mapping[str, float | None]], nodes: Sequence[Mapping[str, float]]) -> None:
    """Refuse, before any task is sent, a request no node can grant: Ray would hold such a task forever.
    `requests`: the config's resources.KIND sections (num_cpus, num_gpus, memory) by KIND; `nodes`: the live
    nodes' total resources (ray.nodes()' "Resources"). Each task runs on one node."""
    if not nodes:
        raise TaskarithError("the Ray cluster has no live node to run tasks on")
    for kind, request in requests.items():
        asked = {field: value for field, value in request.items() if value}
        for field, value in asked.items():
            key, unit = _RAY_RESOURCES[field]
            most = max(node.get(key, 0) for node in nodes)
            if value > most:
                has = f"the largest node has {_amount(most)}" if most else f"no node has any {key}"
                raise TaskarithError(f"resources.{kind}.{field} = {_amount(value)}: no node of the Ray cluster can "
                                     f"grant that many {unit} to one task ({has})")
        wanted = {_RAY_RESOURCES[field][0]: value for field, value in asked.items()}
        if not any(all(node.get(key, 0) >= value for key, value in wanted.items()) for node in nodes):
            shapes = sorted({", ".join(f"{_amount(node.get(key, 0))} {key}" for key in wanted) for node in nodes})
            settings = ", ".join(f"{field} = {_amount(value)}" for field, value in asked.items())
            raise TaskarithError(f"resources.{kind}: {settings} fit no single node of the Ray cluster (its nodes "
                                 f"have {'; '.join(shapes)})")


def _status_kib(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _release_freed_memory() -> None:
    """Hand memory freed by earlier work back to the OS, so the next peak is that work's own."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def keep_freed_memory() -> None:
    """Let glibc keep freed blocks for reuse instead of unmapping them. Autograd frees and reallocates
    megabyte-sized activations every step; returned to the OS, each comes back as fresh pages that fault
    and are zeroed on first touch (about 6% of a linearized CPU step: benchmarks/step_time.py)."""
    import ctypes

    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's maximum: blocks below it come from the reusable heap
        libc.mallopt(m_trim_threshold, 1 << 30)
        libc.mallopt(m_top_pad, 256 << 20)


_settings = {"applied": False}


def apply_process_settings() -> None:
    """The CLI's process settings, which every worker of a run repeats so that it computes what the driver
    would: denormal floats flushed (they slow CPU kernels several-fold and carry no signal at these scales)
    and freed memory kept for reuse."""
    torch.set_flush_denormal(True)
    keep_freed_memory()
    _settings["applied"] = True


def process_settings_applied() -> bool:
    return _settings["applied"]


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process (Linux); False where that is not possible."""
    _release_freed_memory()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss() -> int:
    """This process's resident-set size in bytes now."""
    return _status_kib("VmRSS") * 1024


def peak_rss() -> int:
    """This process's resident-set high-water mark in bytes (since the last reset)."""
    hwm = _status_kib("VmHWM")
    if hwm:
        return hwm * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _Peak:
    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.kind = "cuda_max_allocated" if self.cuda else "process_peak_rss"
        self.peak = 0
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
            self.baseline = torch.cuda.memory_allocated(device)
        else:
            if not reset_peak_rss():
                self.kind = "process_peak_rss_since_start"
            self.baseline = current_rss()

    def sample(self) -> None:
        now = torch.cuda.max_memory_allocated(self.device) if self.cuda else peak_rss()
        self.peak = max(self.peak, now)

    @property
    def increase(self) -> int:
        """The peak above the baseline: what the work itself added."""
        return max(0, self.peak - self.baseline)


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[_Peak]:
    """Track the peak of the block; `.sample()` may be called inside to read it early."""
    tracker = _Peak(device)
    yield tracker
    tracker.sample()
