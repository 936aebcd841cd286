"""Each stage writes its result to the run folder, with the inputs it was computed from.

A stage run again with the same inputs (config, task vectors, code) reads its artifact instead of computing
again, so a run killed in its analyses resumes without evaluating every paradigm anew. A changed input, or
an artifact that is damaged, means the stage computes again: an artifact is never trusted beyond its inputs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import weakref
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..atomic import write_json
from ..errors import TaskarithError
from ..safety import check_name, read_regular
from .experiment import Experiment

STAGES = "stages"
_identities: "weakref.WeakKeyDictionary[Experiment, dict]" = weakref.WeakKeyDictionary()  # computed once a run


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 over the package's source: results computed by other code are not reused."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _update(h, item: Any) -> None:
    """Feed one example's input (a text, an image path or array, a text-to-text example) to the digest."""
    if isinstance(item, np.ndarray):
        h.update(f"{item.dtype}{item.shape}".encode() + item.tobytes())
    else:
        h.update(repr(item).encode())
    h.update(b"\0")


def data_digest(exp: Experiment) -> str:
    """sha256 over what evaluation reads of every task: class names, templates, validation and test splits."""
    h = hashlib.sha256()
    for name, task in exp.data(0).items():
        h.update(repr((name, task.class_names, task.templates)).encode())
        for split in (task.val, task.test):
            for item in split.inputs:
                _update(h, item)
            h.update(repr(split.labels).encode())
    return h.hexdigest()


def stage_inputs(exp: Experiment, vector_files: Mapping[str, Path] = {}, **extra) -> dict:
    """What a stage's result depends on: the config (less its name, seed count and resources), the code, the base model's
    weights, the evaluation data, and each task vector file's identity (its path, size and modification
    time: a retrained vector is a new input)."""
    if exp not in _identities:
        _identities[exp] = {"code": code_digest(), "base_hash": exp.model.fingerprint(), "data": data_digest(exp)}
    files = {}
    for task, rel in vector_files.items():
        st = (exp.run_dir / rel).stat()
        files[task] = [str(rel), st.st_size, st.st_mtime_ns]
    return {"config": exp.cfg.model_dump(mode="json", exclude={"name", "seeds", "resources"}), **_identities[exp],
            "vectors": files, **extra}


def run_stage(exp: Experiment, name: str, inputs: dict, compute: Callable[[], dict]) -> dict:
    """The stage's result: read from `stages/NAME.json` when it was computed from these inputs, else computed
    and written there. NAME is a /-separated path of plain names."""
    path = exp.run_dir / STAGES / Path(*(check_name(part, "stage name") for part in name.split("/")))
    path = path.with_suffix(".json")
    inputs = json.loads(json.dumps(inputs))  # as the artifact will hold them: tuples become lists
    stored = _read(exp.run_dir, path)
    if stored is not None and stored.get("inputs") == inputs and stored.get("digest") == _digest(stored.get("result")):
        return stored["result"]
    result = json.loads(json.dumps(compute()))  # what a later run reads back: the same either way
    write_json(path, {"inputs": inputs, "digest": _digest(result), "result": result})
    return result


def _digest(result: Any) -> str:
    """sha256 of the result as JSON: an artifact edited or damaged after it was written does not match."""
    return hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()


def _read(run_dir: Path, path: Path) -> dict | None:
    """The artifact, or None where it is missing, damaged or reached through a symlink planted in the run
    folder (it is then computed again, never trusted; the write refuses the link)."""
    if not path.exists() or any(part.is_symlink() for part in [path, *path.parents] if part != run_dir
                                and part.is_relative_to(run_dir)):
        return None
    try:
        stored = json.loads(read_regular(path).decode("utf-8"))
    except (TaskarithError, OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return stored if isinstance(stored, dict) else None
