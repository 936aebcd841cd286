"""The one per-tensor merge loop: `merge_vectors` runs it over tensors in memory, the export
(`recipes/merge_recipe.py`) over tensors streamed from files.

Each parameter's stack [T, ...] is filled by the caller's `read`, on a thread ahead of the merge, so reading
the next tensor overlaps the rule's arithmetic on this one. The stacks live in one arena of `budget` bytes (by
default the largest stack, so the peak stays that of merging the largest tensor alone), handed out first in,
first out and reused from tensor to tensor: a fresh allocation per tensor would fault every page in again.
Names go in sorted order, so DARE's random draws do not depend on how the tensors are stored, and both
callers make the same draws."""

from __future__ import annotations

import math
import mmap
import queue
import threading
from typing import Callable, Iterator, Mapping, Sequence

import torch

from ..groundwork.errors import TaskarithError, one_line, quote

ALIGN = 64  # bytes: each stack starts on a cache line


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a rule computes in: float32 for half-precision weights, else their own (float32, float64)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class Arena:
    """`size` bytes handed out as tensors first in, first out: `take` waits until a region is free."""

    def __init__(self, size: int):  # unmapped when the last tensor made from it is gone
        self.size = max(ALIGN, size)
        self._map = mmap.mmap(-1, self.size)
        self.bytes = torch.frombuffer(self._map, dtype=torch.uint8)
        self._held: list[tuple[int, int]] = []  # regions in flight, oldest first
        self._head = 0
        self.turn = threading.Condition()

    def _place(self, nbytes: int) -> int | None:
        if not self._held:
            return 0
        oldest = self._held[0][0]
        if self._head > oldest:  # in flight: [oldest, head); free: after head, and before oldest
            if self._head + nbytes <= self.size:
                return self._head
            return 0 if nbytes <= oldest else None
        return self._head if self._head + nbytes <= oldest else None  # wrapped: free is [head, oldest)

    def take(self, nbytes: int, stop: Callable[[], bool]) -> int | None:
        """The offset of a free region of `nbytes` (rounded up to ALIGN), once there is one; None on stop."""
        nbytes = math.ceil(nbytes / ALIGN) * ALIGN
        with self.turn:
            self.turn.wait_for(lambda: stop() or self._place(nbytes) is not None)
            start = None if stop() else self._place(nbytes)  # under the lock, a region the wait found
            if start is None:
                return None
            self._held.append((start, start + nbytes))
            self._head = start + nbytes
            return start

    def give_back(self) -> None:
        """The oldest region is free again."""
        with self.turn:
            self._held.pop(0)
            self.turn.notify_all()

    def tensor(self, start: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        count = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        return self.bytes[start:start + count].view(dtype).reshape(shape)


def read_ahead(names: Sequence[str], read: Callable[[str, torch.Tensor], None],
               shape: Callable[[str], tuple[tuple[int, ...], torch.dtype]], arena: Arena
               ) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, stack) in order, each stack an arena tensor of shape(name) that read(name, stack) filled on a
    thread. A stack stays the caller's until it asks for the next one."""
    ready: queue.Queue = queue.Queue()
    stopped = threading.Event()

    def produce() -> None:
        try:
            for name in names:
                dims, dtype = shape(name)
                start = arena.take(math.prod(dims) * torch.empty((), dtype=dtype).element_size(), stopped.is_set)
                if start is None:
                    return
                stack = arena.tensor(start, dims, dtype)
                read(name, stack)
                ready.put((name, stack))
        except BaseException as e:  # handed to the consumer, which raises it where the merge runs
            ready.put(e)

    thread = threading.Thread(target=produce, name="taskarith-read-ahead", daemon=True)
    thread.start()
    try:
        for _ in names:
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            del item
            arena.give_back()
    finally:
        stopped.set()
        with arena.turn:
            arena.turn.notify_all()
        thread.join()


def merged_tensors(names: Sequence[str], read: Callable[[str, torch.Tensor], None],
                   shape: Callable[[str], tuple[tuple[int, ...], torch.dtype]],
                   rule: Callable[..., torch.Tensor], rule_settings: Mapping, seed: int, *,
                   statistics: Mapping[str, torch.Tensor] | None = None, device: torch.device | None = None,
                   budget: int | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, rule(stack)) for each name in sorted order, on the CPU, where read(name, stack) fills the stack of
    shape(name) = (dims, dtype). The rule may overwrite the stack; it runs on `device` (the CPU by default)."""
    names = sorted(names)
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on any device
    statistics = statistics or {}

    def nbytes(name: str) -> int:
        dims, dtype = shape(name)
        return math.prod(dims) * torch.empty((), dtype=dtype).element_size() + ALIGN

    largest = max(map(nbytes, names), default=0)
    arena = Arena(max(largest, budget or 0))  # never smaller than one stack: each must fit alone
    for name, stack in read_ahead(names, read, shape, arena):
        statistic = statistics.get(name)
        if device is not None:
            stack = stack.to(device)
            statistic = statistic.to(device) if statistic is not None else None
        try:
            merged = rule(stack, generator=generator, statistic=statistic, overwrite=True, **rule_settings)
        except torch.linalg.LinAlgError as e:
            raise TaskarithError(f"tensor {quote(name)}: the merge's SVD did not converge, even in float64 "
                                 f"({one_line(str(e))})") from None
        del stack
        if merged.untyped_storage().data_ptr() == arena.bytes.untyped_storage().data_ptr():
            merged = merged.clone()  # a view of the stack: its region is handed out again
        yield name, merged.cpu()
