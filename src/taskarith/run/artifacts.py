"""Each stage writes its result to the run folder, with the inputs it was computed from.

A stage run again with the same inputs reads its artifact instead of computing again, so a run killed in its
analyses resumes without evaluating every paradigm anew. A stage's inputs are what its compute reads (its
`StageReads`: the config settings, and the code that computes it with everything that code imports) and its
task vectors: a setting or a module it never reads leaves its artifact valid. A changed input, or an artifact
that is damaged, means the stage computes again: an artifact is never trusted beyond its inputs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import numpy as np

from ..groundwork.atomic import write_json
from ..groundwork.errors import TaskarithError
from ..groundwork.safety import check_name, parse_json, read_text
from .code_closure import code_digest
from .experiment import Experiment

Result = TypeVar("Result")  # what a stage computes, read back from its artifact as the same JSON
STAGES = "stages"
_identities: "weakref.WeakKeyDictionary[Experiment, dict]" = weakref.WeakKeyDictionary()  # computed once a run


@dataclass(frozen=True)
class StageReads:
    """What a stage's compute reads besides its task vectors and the inputs passed with it: `config`, dotted
    config keys (a section, or one setting of it), less the settings of those sections in `ignores`; `code`,
    the modules that compute it (their imports follow). A section read whole, less what it ignores, takes in
    a setting added to it later: a key errs on the side of computing again."""

    config: tuple[str, ...]
    code: tuple[str, ...]
    ignores: tuple[str, ...] = ()


# what the run's model, evaluation sets and zero-shot heads are built from: every stage that scores reads them
_SCORING = ("model", "data", "eval.batch_size")
_SEED_STAGE = ("taskarith.run.stages", "taskarith.run.protocol")
_NEGATION = ("eval.negation", "eval.negation_control", "eval.negation_keep")
EVALUATE = StageReads(("model", "data", "eval"), _SEED_STAGE, ignores=_NEGATION)
# whether negation runs decides only whether this stage is asked for
NEGATE = StageReads(("model", "data", "eval"), _SEED_STAGE, ignores=(
    "eval.negation", "eval.test_curve", "eval.merges", "eval.merge_settings", "eval.merge_alphas", "eval.merge_data"))
SIMILARITY = StageReads((), ("taskarith.run.analyses", "taskarith.analysis.similarity"))
EFFICIENCY = StageReads((), ("taskarith.run.analyses", "taskarith.analysis.efficiency"))
# the individual accuracies a run hands the kernel test are the evaluation stage's: its code counts too
KERNEL = StageReads(_SCORING, ("taskarith.run.analyses", "taskarith.analysis.kernel", "taskarith.run.protocol"))
DISENTANGLE = StageReads(_SCORING, ("taskarith.run.analyses", "taskarith.analysis.disentangle"))


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


def _settings(exp: Experiment, reads: StageReads) -> dict:
    """The config's value at each dotted key the stage reads, less the settings it ignores. A key that names no
    setting is a bug in the list: KeyError."""
    tree = exp.cfg.model_dump(mode="json")
    for key in reads.ignores:
        *path, last = key.split(".")
        section = functools.reduce(operator.getitem, path, tree)
        del section[last]
    return {key: functools.reduce(operator.getitem, key.split("."), tree) for key in reads.config}


def stage_inputs(exp: Experiment, vector_files: Mapping[str, str | Path] = {}, *, reads: StageReads, **extra) -> dict:
    """What a stage's result depends on: the config settings it reads, the source of the code that computes
    it, the base model's weights, the evaluation data, and each task vector file's identity (its path, size and
    modification time: a retrained vector is a new input)."""
    if exp not in _identities:
        _identities[exp] = {"base_hash": exp.model.fingerprint(), "data": data_digest(exp)}
    files = {}
    for task, rel in vector_files.items():
        st = (exp.run_dir / rel).stat()
        files[task] = [str(rel), st.st_size, st.st_mtime_ns]
    return {"config": _settings(exp, reads), "code": code_digest(reads.code),
            **_identities[exp], "vectors": files, **extra}


def run_stage(exp: Experiment, name: str, inputs: dict, compute: Callable[[], Result]) -> Result:
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
        stored = parse_json(read_text(path), str(path))
    except (TaskarithError, OSError, RecursionError):
        return None
    return stored if isinstance(stored, dict) else None
