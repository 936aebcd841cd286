"""Reading safetensors files with one-line errors for missing, truncated, corrupt or ambiguous files.

Every safetensors file taskarith reads, whoever parses it afterwards (safetensors, transformers or the merge
stream), first passes `read_header`: one set of checks for lying offsets, names stored twice and unknown
dtypes, on every path that reads the kind of file."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from .errors import TaskarithError, first_line, quote
from .safety import parse_json, require_regular

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
_HEADER_LIMIT = 100 << 20  # safetensors' own bound on a header


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offsets in the file
    end: int


def open_regular(path: Path) -> int:
    """A read-only descriptor of a regular file, or one line naming it (a FIFO or device is never opened)."""
    try:
        require_regular(path)
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TaskarithError(f"{path}: no such file") from None
    except OSError as e:
        raise TaskarithError(f"{path}: cannot read ({e.strerror})") from None


def read_header(path: Path, fd: int) -> tuple[dict[str, TensorEntry], dict[str, str]]:
    """A safetensors file's tensors and string metadata from its header: 8 bytes of length, then JSON with no
    name twice; every byte range inside the file and of its dtype and shape's size."""
    size = os.fstat(fd).st_size
    head = os.pread(fd, 8, 0)
    length = int.from_bytes(head, "little") if len(head) == 8 else -1
    if not 0 < length <= min(size - 8, _HEADER_LIMIT):
        raise TaskarithError(f"{path}: not a safetensors file (no header)")
    tree = parse_json(os.pread(fd, length, 8).decode("utf-8", "replace"), str(path), problem="not a safetensors header")
    if not isinstance(tree, dict):
        raise TaskarithError(f"{path}: not a safetensors header")
    metadata = tree.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise TaskarithError(f"{path}: its header's __metadata__ is not a map of strings")
    entries, base = {}, 8 + length
    for name, info in tree.items():
        try:
            dtype, shape, (start, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
            typed = all(type(v) is int for v in (*shape, start, end))
            width = torch.empty((), dtype=DTYPES[dtype]).element_size()
            valid = typed and min(shape, default=0) >= 0 and 0 <= start <= end and base + end <= size \
                and end - start == width * math.prod(shape)
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            raise TaskarithError(f"{path}: tensor {quote(name)} has a damaged entry in the header")
        entries[name] = TensorEntry(dtype, shape, base + start, base + end)
    return entries, metadata


def check_safetensors(path: str | Path) -> dict[str, TensorEntry]:
    """The entries of a safetensors file's header, checked."""
    path = Path(path)
    fd = open_regular(path)
    try:
        return read_header(path, fd)[0]
    finally:
        os.close(fd)


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the string metadata of a safetensors file."""
    from safetensors import safe_open

    path = Path(path)
    check_safetensors(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for damaged files
        raise TaskarithError(f"{path}: not a readable safetensors file ({first_line(e)})") from e
    return tensors, meta


def named_digest(names: Iterable[str], get: Callable[[str], torch.Tensor]) -> str:
    """sha256 over name|dtype|shape| and the bytes of each tensor, in name order (so storage order is moot),
    reading one tensor at a time: a model's θ0 hash, a vector's input hash and a folder's streamed check are
    this one digest."""
    h = hashlib.sha256()
    for name in sorted(names):
        t = get(name).detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
