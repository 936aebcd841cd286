"""Tensors read one at a time, by name, from safetensors files: an HF model folder (one file or shards) or a
task vector file. Nothing is loaded until asked for, so a merge holds a handful of tensors however big the
model; every name, shape and dtype is known from the headers alone."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from ..errors import TaskarithError
from ..safety import parse_json, read_text, require_regular

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")


DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


@dataclass(frozen=True)
class _Entry:
    fd: int
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offsets in the file
    end: int


class TensorFiles(contextlib.ExitStack):
    """The tensors of one or more safetensors files, by name; open as a context manager.

    Each tensor is read with pread from its byte range, not through a memory map: pages of a map stay in
    the process's resident set once touched, so mapping every input would make the merge hold them all."""

    def __init__(self, files: Iterable[Path], label: str):
        super().__init__()
        self.label, self._files, self._where = label, list(files), {}
        self.metadata: dict[str, str] = {}

    def __enter__(self) -> "TensorFiles":
        super().__enter__()
        for path in self._files:
            try:
                require_regular(path)
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise TaskarithError(f"{path}: cannot read ({e.strerror})") from None
            self.callback(os.close, fd)
            for name, entry in _header(path, fd, self.metadata).items():
                if name in self._where:
                    raise TaskarithError(f"{self.label}: tensor {name!r} is stored twice ({path.name})")
                self._where[name] = entry
        return self

    def names(self) -> list[str]:
        return sorted(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._where[name].shape

    def dtype(self, name: str) -> str:
        return self._where[name].dtype

    def get(self, name: str) -> torch.Tensor:
        if name not in self._where:
            raise TaskarithError(f"{self.label}: has no tensor {name!r}")
        e = self._where[name]
        data = bytearray(e.end - e.start)
        if os.preadv(e.fd, [data], e.start) != len(data):
            raise TaskarithError(f"{self.label}: tensor {name!r} is cut short")
        if not data:
            return torch.empty(e.shape, dtype=DTYPES[e.dtype])
        return torch.frombuffer(data, dtype=DTYPES[e.dtype]).reshape(e.shape)


def _header(path: Path, fd: int, metadata: dict) -> dict[str, _Entry]:
    """A safetensors file's tensors from its header: 8 bytes of length, then JSON; each byte range checked."""
    size = os.fstat(fd).st_size
    head = os.pread(fd, 8, 0)
    length = int.from_bytes(head, "little") if len(head) == 8 else -1
    if not 0 < length <= min(size - 8, 100 << 20):
        raise TaskarithError(f"{path}: not a safetensors file (no header)")
    tree = parse_json(os.pread(fd, length, 8).decode("utf-8", "replace"), str(path), problem="not a safetensors header")
    if not isinstance(tree, dict):
        raise TaskarithError(f"{path}: not a safetensors header")
    metadata.update({k: v for k, v in (tree.pop("__metadata__", None) or {}).items() if isinstance(v, str)})
    entries, base = {}, 8 + length
    for name, info in tree.items():
        try:
            dtype, shape, (start, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
            width = torch.empty((), dtype=DTYPES[dtype]).element_size()
            valid = min(shape, default=0) >= 0 and 0 <= start <= end and base + end <= size and end - start == width * math.prod(shape)
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            raise TaskarithError(f"{path}: tensor {name!r} has a damaged entry in the header")
        entries[name] = _Entry(fd, dtype, shape, base + start, base + end)
    return entries


def model_files(folder: Path) -> list[Path]:
    """An HF folder's safetensors weights: the files its index names, else every *.safetensors file."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = json.loads(read_text(index))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TaskarithError(f"{index}: not a safetensors index (no weight_map of file names)") from None
        if not all(isinstance(n, str) and Path(n).name == n and n.endswith(".safetensors") for n in names):
            raise TaskarithError(f"{index}: its weight_map names a file outside the folder")
        return [folder / n for n in names]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        others = sorted(p.name for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        raise TaskarithError(f"{folder}: no safetensors weights" + (f" (only {', '.join(others)}: pickled weights "
                                                                     "are not read)" if others else ""))
    return files


def model_folder(folder: Path) -> TensorFiles:
    if not folder.is_dir():
        raise TaskarithError(f"{folder}: not a model folder")
    return TensorFiles(model_files(folder), str(folder))


def file_sha256(paths: Iterable[Path]) -> str:
    """sha256 over the bytes of files, in the order given, read in chunks."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
