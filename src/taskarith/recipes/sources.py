"""Tensors read one at a time, by name, from safetensors files: an HF model folder (one file or shards) or a
task vector file. Nothing is loaded until asked for, so a merge holds a handful of tensors however big the
model; every name, shape and dtype is known from the headers alone."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Callable, Iterable

import torch

from ..errors import TaskarithError, one_line
from ..safety import read_text, require_regular

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")


class TensorFiles(contextlib.ExitStack):
    """The tensors of one or more safetensors files, by name; open as a context manager."""

    def __init__(self, files: Iterable[Path], label: str):
        super().__init__()
        self.label, self._files, self._where, self._handles = label, list(files), {}, {}
        self.metadata: dict[str, str] = {}

    def __enter__(self) -> "TensorFiles":
        from safetensors import safe_open

        super().__enter__()
        for path in self._files:
            try:
                require_regular(path)
                handle = self.enter_context(safe_open(str(path), framework="pt"))
            except Exception as e:  # safetensors raises several types for damaged files
                raise TaskarithError(f"{path}: not a readable safetensors file ({one_line(str(e))})") from None
            self.metadata.update(handle.metadata() or {})
            for name in handle.keys():
                if name in self._where:
                    raise TaskarithError(f"{self.label}: tensor {name!r} is stored twice ({path.name})")
                self._where[name] = handle
        return self

    def names(self) -> list[str]:
        return sorted(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._where[name].get_slice(name).get_shape())

    def dtype(self, name: str) -> str:
        return self._where[name].get_slice(name).get_dtype()

    def get(self, name: str) -> torch.Tensor:
        if name not in self._where:
            raise TaskarithError(f"{self.label}: has no tensor {name!r}")
        return self._where[name].get_tensor(name)


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


def streamed_sha256(names: Iterable[str], get: Callable[[str], torch.Tensor]) -> str:
    """Model.fingerprint's digest (sha256 over name|dtype|shape| and the bytes, in name order), one tensor at a
    time: a vector's base hash checked against a folder without loading it whole."""
    h = hashlib.sha256()
    for name in sorted(names):
        t = get(name).contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def file_sha256(paths: Iterable[Path]) -> str:
    """sha256 over the bytes of files, in the order given, read in chunks."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
