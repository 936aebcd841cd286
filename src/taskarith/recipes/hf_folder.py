"""Writing a merged model as a normal HF folder, atomically: everything is built in a hidden folder beside
the destination, which only a finished export renames into place. A killed export leaves that hidden folder
(removed by the next export to the same place once its process is gone), never a DIR that looks complete.

Weights follow `save_pretrained`'s layout: model.safetensors, or model-0000i-of-0000N.safetensors with
model.safetensors.index.json. Every output tensor's name, dtype and shape is known before merging, so each
shard's header is written first and each tensor goes to its place in its shard as soon as it is merged: the
writer holds no tensor, however big a shard."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..groundwork.atomic import fsync_dir, stale_entries
from ..groundwork.errors import TaskarithError, quote
from ..groundwork.safety import read_regular
from ..groundwork.tensor_files import DTYPES
from .sources import WEIGHT_SUFFIXES

SKIPPED = {"model.safetensors.index.json", "pytorch_model.bin.index.json", "README.md", "recipe.yaml"}
CODES = {dtype: code for code, dtype in DTYPES.items()}

Layout = Sequence[tuple[str, torch.dtype, tuple[int, ...]]]


@dataclass(frozen=True)
class _Slot:
    """Where one planned tensor goes: its shard and its absolute byte offset there."""
    dtype: torch.dtype
    shape: tuple[int, ...]
    shard: int
    offset: int


def _nbytes(dtype: torch.dtype, shape: tuple[int, ...]) -> int:
    return math.prod(shape) * dtype.itemsize


def plan_shards(layout: Layout, max_shard_bytes: int) -> list[list[tuple[str, torch.dtype, tuple[int, ...]]]]:
    """The layout cut greedily in its order: a new shard starts when adding a tensor would pass the limit
    (a tensor over the limit gets a shard of its own). Always one shard at least."""
    shards: list[list] = [[]]
    size, seen = 0, set()
    for name, dtype, shape in layout:
        if name in seen or dtype not in CODES:
            problem = "is planned twice" if name in seen else f"has dtype {dtype}, which safetensors cannot hold"
            raise TaskarithError(f"tensor {quote(name)} of the merged model {problem}")
        seen.add(name)
        nbytes = _nbytes(dtype, shape)
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, dtype, tuple(shape)))
        size += nbytes
    return shards


def shard_header(entries: list[tuple[str, torch.dtype, tuple[int, ...]]]) -> tuple[bytes, dict[str, int]]:
    """A safetensors file's first bytes for these tensors, and each tensor's absolute offset in the file.

    As safetensors orders them: widest element first, then by name, so every tensor is aligned to its element
    size (tensors lie back to back, with no room for padding) and the file is what `safetensors.torch.save`
    writes, byte for byte, unless two dtypes of one width are mixed (safetensors then orders by its own dtype
    list). The JSON is compact, `__metadata__` first, padded with spaces to a multiple of 8 bytes."""
    tree: dict = {"__metadata__": {"format": "pt"}}
    end = 0
    for name, dtype, shape in sorted(entries, key=lambda e: (-e[1].itemsize, e[0])):
        start, end = end, end + _nbytes(dtype, shape)
        tree[name] = {"dtype": CODES[dtype], "shape": list(shape), "data_offsets": [start, end]}
    text = json.dumps(tree, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    base = 8 + len(text)
    return len(text).to_bytes(8, "little") + text, {name: base + info["data_offsets"][0]
                                                     for name, info in tree.items() if name != "__metadata__"}


class ModelFolderWriter:
    """Shards and files of one HF folder; `finish()` puts it at `out`, `abort()` removes what was written.

    `layout` is every tensor the model will have, (name, dtype, shape), in the order they will be added."""

    def __init__(self, out: Path, max_shard_bytes: int, layout: Layout):
        self.out = out
        if out.exists() or out.is_symlink():
            raise TaskarithError(f"{out}: already exists; export to a new folder")
        layout = list(layout)
        shards = plan_shards(layout, max_shard_bytes)
        count = len(shards)
        self.files = ["model.safetensors"] if count == 1 else [f"model-{i + 1:05d}-of-{count:05d}.safetensors"
                                                               for i in range(count)]
        self.total_bytes = sum(_nbytes(dtype, shape) for _, dtype, shape in layout)
        self._fds: list[int] = []
        self._slots: dict[str, _Slot] = {}
        self._added: set[str] = set()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            self._remove_stale()
            self.tmp = out.parent / f".{out.name}.{os.getpid()}.partial"
            self.tmp.mkdir()
        except OSError as e:
            raise TaskarithError(f"{out.parent}: cannot write here ({e.strerror})") from e
        try:
            for i, entries in enumerate(shards):
                self._start_shard(i, entries)
        except BaseException:
            self.abort()
            raise

    def _remove_stale(self) -> None:
        for entry in stale_entries(self.out, ".partial"):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)  # rmtree removes links inside, never what they point to

    def _start_shard(self, index: int, entries: list[tuple[str, torch.dtype, tuple[int, ...]]]) -> None:
        header, offsets = shard_header(entries)
        path = self.tmp / self.files[index]
        try:
            # the folder is ours, yet a link planted in it is never followed
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
            self._fds.append(fd)
            self._write(fd, memoryview(header), 0)
        except OSError as e:
            raise TaskarithError(f"{self.out}: cannot write {path.name} ({e.strerror})") from e
        for name, dtype, shape in entries:
            self._slots[name] = _Slot(dtype, shape, index, offsets[name])

    @staticmethod
    def _write(fd: int, data: memoryview, offset: int) -> None:
        done = 0
        while done < len(data):  # one pwrite moves at most about 2 GiB
            done += os.pwrite(fd, data[done:], offset + done)

    def add(self, name: str, tensor: torch.Tensor) -> None:
        """Write `tensor` at its planned place; it must have the planned dtype and shape, and come once."""
        slot = self._slots.get(name)
        if slot is None or name in self._added:
            problem = "was added twice" if slot else "is not in the planned layout"
            raise TaskarithError(f"tensor {quote(name)} of the merged model {problem}")
        if tensor.dtype != slot.dtype or tuple(tensor.shape) != slot.shape:
            raise TaskarithError(f"tensor {quote(name)} of the merged model is {tensor.dtype} of shape "
                                 f"{tuple(tensor.shape)}; {slot.dtype} of shape {slot.shape} was planned")
        # the tensor's own bytes, seen as uint8 (a 0-d tensor is reshaped first: view cannot change its width)
        data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data
        try:
            self._write(self._fds[slot.shard], data, slot.offset)
        except OSError as e:
            raise TaskarithError(f"{self.out}: cannot write {self.files[slot.shard]} ({e.strerror})") from e
        self._added.add(name)

    def copy_from(self, files: Mapping[str, Path], label: str) -> list[str]:
        """The base's other top-level files (config, tokenizer, processor), given by name (`ModelSource.files`,
        which holds no link but a hub cache's checked ones): every one that is not a weight file, an index or a
        model card; returns their names."""
        copied = []
        for name, path in sorted(files.items()):
            if Path(name).suffix not in WEIGHT_SUFFIXES and name not in SKIPPED:
                (self.tmp / name).write_bytes(read_regular(path))
                copied.append(name)
        if "config.json" not in copied:
            raise TaskarithError(f"{label}: no config.json as a regular file (a link is not followed); the merged "
                                 "folder needs the base's config")
        return copied

    def write_text(self, name: str, text: str) -> None:
        (self.tmp / name).write_text(text, encoding="utf-8")

    def _close_shards(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):  # a failed write surfaces in finish's fsync, which reopens each file
                os.close(fd)

    def finish(self) -> Path:
        missing = [name for name in self._slots if name not in self._added]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise TaskarithError(f"{self.out}: tensor {quote(missing[0])}{more} of the merged model was never "
                                 "written; nothing was exported")
        self._close_shards()
        if len(self.files) > 1:
            weight_map = {name: self.files[slot.shard] for name, slot in self._slots.items()}
            index = {"metadata": {"total_size": self.total_bytes}, "weight_map": dict(sorted(weight_map.items()))}
            self.write_text("model.safetensors.index.json", json.dumps(index, indent=2) + "\n")
        for path in self.tmp.iterdir():
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(self.tmp)
        if self.out.exists() or self.out.is_symlink():
            raise TaskarithError(f"{self.out}: appeared during the export; the merged model is left at {self.tmp}")
        os.rename(self.tmp, self.out)
        fsync_dir(self.out.parent)
        return self.out

    def abort(self) -> None:
        self._close_shards()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.tmp)
