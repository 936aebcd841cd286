"""Tensors read one at a time, by name, from safetensors files: an HF model folder (one file or shards) or a
task vector file. Nothing is loaded until asked for, so a merge holds a handful of tensors however big the
model; every name, shape and dtype is known from the headers alone."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Iterable

import torch

from ..errors import TaskarithError, quote
from ..input_files import note_input
from ..safety import parse_json, read_text
from ..tensor_files import DTYPES, TensorEntry, open_regular, read_header

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")


class TensorFiles(contextlib.ExitStack):
    """The tensors of one or more safetensors files, by name; open as a context manager.

    Each tensor is read with pread from its byte range, not through a memory map: pages of a map stay in
    the process's resident set once touched, so mapping every input would make the merge hold them all."""

    def __init__(self, files: Iterable[Path], label: str):
        super().__init__()
        self.label, self._files = label, list(files)
        self._where: dict[str, tuple[int, TensorEntry]] = {}
        self.metadata: dict[str, str] = {}

    def __enter__(self) -> "TensorFiles":
        super().__enter__()
        for path in self._files:
            fd = open_regular(path)
            self.callback(os.close, fd)
            note_input(path)
            entries, metadata = read_header(path, fd)
            self.metadata.update(metadata)
            for name, entry in entries.items():
                if name in self._where:
                    raise TaskarithError(f"{self.label}: tensor {quote(name)} is stored twice ({path.name})")
                self._where[name] = (fd, entry)
        return self

    def names(self) -> list[str]:
        return sorted(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._where[name][1].shape

    def dtype(self, name: str) -> str:
        return self._where[name][1].dtype

    def get(self, name: str) -> torch.Tensor:
        if name not in self._where:
            raise TaskarithError(f"{self.label}: has no tensor {quote(name)}")
        fd, e = self._where[name]
        data = bytearray(e.end - e.start)
        if os.preadv(fd, [data], e.start) != len(data):
            raise TaskarithError(f"{self.label}: tensor {quote(name)} is cut short")
        if not data:
            return torch.empty(e.shape, dtype=DTYPES[e.dtype])
        return torch.frombuffer(data, dtype=DTYPES[e.dtype]).reshape(e.shape)


def model_files(folder: Path) -> list[Path]:
    """An HF folder's safetensors weights: the files its index names, else every *.safetensors file."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = parse_json(read_text(index), str(index))["weight_map"]
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
