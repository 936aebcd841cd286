"""Writing a merged model as a normal HF folder, atomically: everything is built in a hidden folder beside
the destination, which only a finished export renames into place. A killed export leaves that hidden folder
(removed by the next export to the same place once its process is gone), never a DIR that looks complete.

Weights are written shard by shard as they are merged, `save_pretrained`'s layout: model.safetensors, or
model-0000i-of-0000N.safetensors with model.safetensors.index.json."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import torch

from ..atomic import fsync_dir, stale_entries
from ..errors import TaskarithError
from ..safety import read_regular
from .sources import WEIGHT_SUFFIXES

SKIPPED = {"model.safetensors.index.json", "pytorch_model.bin.index.json", "README.md", "recipe.yaml"}


class ModelFolderWriter:
    """Shards and files of one HF folder; `finish()` puts it at `out`, `abort()` removes what was written."""

    def __init__(self, out: Path, max_shard_bytes: int):
        self.out, self.max_shard_bytes = out, max_shard_bytes
        if out.exists() or out.is_symlink():
            raise TaskarithError(f"{out}: already exists; export to a new folder")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            self._remove_stale()
            self.tmp = out.parent / f".{out.name}.{os.getpid()}.partial"
            self.tmp.mkdir()
        except OSError as e:
            raise TaskarithError(f"{out.parent}: cannot write here ({e.strerror})") from e
        self.shards: list[list[str]] = []
        self.pending: dict[str, torch.Tensor] = {}
        self.pending_bytes = self.total_bytes = 0

    def _remove_stale(self) -> None:
        for entry in stale_entries(self.out, ".partial"):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)  # rmtree removes links inside, never what they point to

    def add(self, name: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self.pending and self.pending_bytes + size > self.max_shard_bytes:
            self._flush()
        self.pending[name] = tensor.contiguous()
        self.pending_bytes += size
        self.total_bytes += size

    def _flush(self) -> None:
        from safetensors.torch import save_file

        save_file(self.pending, str(self.tmp / f"shard-{len(self.shards)}.part"), metadata={"format": "pt"})
        self.shards.append(list(self.pending))
        self.pending, self.pending_bytes = {}, 0

    def copy_from(self, folder: Path) -> list[str]:
        """The base folder's other top-level files (config, tokenizer, processor): every regular file that is
        not a weight file, an index or a model card; returns their names."""
        copied = []
        for path in sorted(folder.iterdir()):
            # a link is not followed: what it points to could be any file, then published with the model
            if path.is_file() and not path.is_symlink() and path.suffix not in WEIGHT_SUFFIXES \
                    and path.name not in SKIPPED:
                (self.tmp / path.name).write_bytes(read_regular(path))
                copied.append(path.name)
        if "config.json" not in copied:
            raise TaskarithError(f"{folder}: no config.json as a regular file (a link is not followed); the merged "
                                 "folder needs the base's config")
        return copied

    def write_text(self, name: str, text: str) -> None:
        (self.tmp / name).write_text(text, encoding="utf-8")

    def finish(self) -> Path:
        if self.pending or not self.shards:
            self._flush()
        count = len(self.shards)
        names = ["model.safetensors"] if count == 1 else [f"model-{i + 1:05d}-of-{count:05d}.safetensors"
                                                          for i in range(count)]
        for i, name in enumerate(names):
            os.replace(self.tmp / f"shard-{i}.part", self.tmp / name)
        if count > 1:
            weight_map = {t: names[i] for i, shard in enumerate(self.shards) for t in shard}
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
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.tmp)
