"""The fine-tuning stage: one unit (seed, paradigm, task) becomes one task vector in the run folder.

A finished vector made with the same training config is reused, and an interrupted fine-tune resumes from
its checkpoint, so a run started again picks up where it stopped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..training.distributed import current_ranks
from ..training.trainer import TrainingJob, finetune
from ..paradigms import resolve_paradigm
from ..groundwork.safety import check_name, is_plain_name
from ..vectors import TaskVector
from .experiment import Experiment


@dataclass(frozen=True)
class Unit:
    """One fine-tune of a run. `preset` replaces the paradigm's own (the ablation); `lr` replaces train.lr
    (an lr_search candidate)."""

    seed: int
    paradigm: str
    task: str
    preset: str | None = None
    lr: float | None = None


def vector_label(paradigm: str, preset: str | None = None, lr: float | None = None) -> str:
    """The folder a paradigm's vectors live in, a plain name: `preset` replaces the paradigm's own (the
    ablation), `lr` replaces train.lr (an lr_search rate), each getting a folder of its own."""
    label = paradigm if preset is None else f"{paradigm}-{preset}"
    if preset is not None and not is_plain_name(label):
        # a regex:PATTERN preset may hold "/" or "..": its folder is named by a digest instead
        label = f"{paradigm}-regex-{hashlib.sha256(preset.encode()).hexdigest()[:16]}"
    return label if lr is None else f"{label}-lr{lr:g}"


def _vector_file(seed: int, label: str, task: str) -> Path:
    return Path("vectors") / f"seed{seed}" / label / check_name(task, "task name") / "vector.safetensors"


def vector_path(seed: int, paradigm: str, task: str, preset: str | None = None, lr: float | None = None) -> Path:
    """Where a run keeps a task vector, relative to the run folder; every part is a plain name."""
    return _vector_file(seed, vector_label(paradigm, preset, lr), task)


def unit_label(exp: Experiment, unit: Unit) -> str:
    """The unit's folder name, which its vector and its seed's stage artifacts share; train.lr's vectors keep
    the plain name."""
    return vector_label(unit.paradigm, unit.preset, None if unit.lr in (None, exp.cfg.train.lr) else unit.lr)


def unit_vector_file(exp: Experiment, unit: Unit) -> Path:
    """The unit's vector path relative to the run folder."""
    return _vector_file(unit.seed, unit_label(exp, unit), unit.task)


def trained_vector(exp: Experiment, unit: Unit) -> TaskVector:
    """The unit's task vector: reused when made with the same training config, else fine-tuned (resuming)."""
    paradigm = resolve_paradigm(unit.paradigm, unit.preset)
    path = exp.run_dir / unit_vector_file(exp, unit)
    train = exp.cfg.train.model_copy(update={"seed": exp.cfg.train.seed + unit.seed,
                                             "lr": exp.cfg.train.lr if unit.lr is None else unit.lr})
    if path.exists():
        tv = TaskVector.load(path)
        if tv.meta.get("train_config") == train.model_dump() and tv.meta.get("preset") == paradigm.preset:
            tv.check_base(exp.model)
            # a run killed between saving the vector and removing its checkpoint leaves one behind
            if current_ranks().writes:
                (path.parent / "checkpoint.safetensors").unlink(missing_ok=True)
            return tv
        exp.log(f"{path}: made with another training config; training again")
        if current_ranks().writes:
            path.unlink()
    split = exp.data(unit.seed)[unit.task].train
    job = TrainingJob(paradigm, train, path.parent, unit.task, progress=exp.progress,
                      device_batch_size=exp.cfg.resources.device_batch_size)
    return finetune(exp.model, split.inputs, split.labels, exp.heads[unit.task], job)
