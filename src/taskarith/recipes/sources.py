"""Tensors read one at a time, by name, from safetensors files: an HF model folder (one file or shards) or a
task vector file. Nothing is loaded until asked for, so a merge holds a handful of tensors however big the
model; every name, shape and dtype is known from the headers alone."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from ..groundwork.errors import TaskarithError, quote
from ..groundwork.input_files import note_input
from ..groundwork.safety import parse_json, read_text
from ..groundwork.tensor_files import DTYPES, TensorEntry, open_regular, read_header
from .hub_cache import cached_snapshot
from .recipe import recipe_path

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

    def nbytes(self, name: str) -> int:
        entry = self._where[name][1]
        return entry.end - entry.start

    def get(self, name: str) -> torch.Tensor:
        """The tensor, in a buffer of its own."""
        if name not in self._where:
            raise TaskarithError(f"{self.label}: has no tensor {quote(name)}")
        entry = self._where[name][1]
        return self.read_into(name, torch.empty(entry.shape, dtype=DTYPES[entry.dtype]))

    def read_into(self, name: str, out: torch.Tensor) -> torch.Tensor:
        """The tensor's bytes read straight into `out`, a contiguous tensor of its dtype and shape; returns it."""
        fd, e = self._where[name]
        view = out.reshape(-1).view(torch.uint8).numpy().data  # a memoryview: preadv fills it in place
        done = 0
        while done < len(view):  # one read returns at most about 2 GB
            count = os.preadv(fd, [view[done:]], e.start + done)
            if count == 0:
                raise TaskarithError(f"{self.label}: tensor {quote(name)} is cut short")
            done += count
        return out


@dataclass(frozen=True)
class ModelSource:
    """A model as the recipe names it: a local HF folder or a cached hub id, with its top-level files."""
    label: str
    files: dict[str, Path]  # file name -> a regular file to read


def model_source(folder: Path, name: str, what: str) -> ModelSource:
    """The model a recipe's `what` entry names: a folder (~ expanded, relative to the recipe's folder), else a
    hub id in the local cache. A folder's links are not followed; only a hub cache's own links are."""
    target = recipe_path(folder, name)
    if target.is_dir():
        files = {p.name: p for p in sorted(target.iterdir()) if p.is_file() and not p.is_symlink()}
        return ModelSource(str(target), files)
    cached = cached_snapshot(name, what)
    if cached is None:
        raise TaskarithError(f"{what} {quote(name)}: no such folder ({target}), and not a hub id")
    return ModelSource(name, cached)


def model_files(source: ModelSource) -> list[Path]:
    """A model's safetensors weights: the files its index names, else every *.safetensors file."""
    index = source.files.get("model.safetensors.index.json")
    if index is not None:
        try:
            weight_map = parse_json(read_text(index), str(index))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TaskarithError(f"{index}: not a safetensors index (no weight_map of file names)") from None
        if not all(isinstance(n, str) and Path(n).name == n and n.endswith(".safetensors") for n in names):
            raise TaskarithError(f"{index}: its weight_map names a file outside the folder")
        missing = next((n for n in names if n not in source.files), None)
        if missing is not None:
            raise TaskarithError(f"{source.label}: its index names {quote(missing)}, which is not there")
        return [source.files[n] for n in names]
    files = [path for name, path in source.files.items() if name.endswith(".safetensors")]
    if not files:
        others = sorted(n for n in source.files if Path(n).suffix in WEIGHT_SUFFIXES)
        raise TaskarithError(f"{source.label}: no safetensors weights" + (
            f" (only {', '.join(others)}: pickled weights are not read)" if others else ""))
    return files


def model_tensors(source: ModelSource) -> TensorFiles:
    return TensorFiles(model_files(source), source.label)
