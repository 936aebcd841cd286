"""The Python surface for notebooks: load a model by name, extract, merge and export task vectors, fine-tune,
run the whole protocol.

Thin wrappers over the library's own functions, taking names and files where a notebook has them; everything
they return is the library's own type (Model, TaskVector, Path). Each checks its arguments on entry: a wrong
type is a TypeError, a bad value a TaskarithError, both naming the parameter."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import yaml

from .arguments import as_int, as_list, as_path, as_str, keywords, optional, require, require_sequence, validated
from .config import ExperimentConfig, TrainConfig
from .config import load_config as _load_config
from .errors import TaskarithError
from .extraction import extract_vector, load_weights
from .merging import check_merge, merge_vectors
from .models import load_model as _load_configured
from .models.base import Model
from .paradigms import Paradigm
from .recipes import Recipe, merge_recipe
from .run import run_experiment as _run_experiment
from .training.selection import patterns_for
from .training.trainer import TrainingJob
from .training.trainer import finetune as _finetune
from .vectors import TaskVector, load_vectors


def load_model(name: str, family: str = "text-encoder", **options) -> Model:
    """A model by name (an HF folder, a cached hub id, or for clip an open_clip file), with any option of the
    config's `model` section (max_length, device, precision, trust_pickle, tokenizer)."""
    name = str(as_path("load_model", "name", name))
    tree = {"model": {"family": as_str("load_model", "family", family), "name": name, **options}}
    return _load_configured(validated(ExperimentConfig, tree, "load_model", drop=1).model)


def extract(base: Model | str, finetuned: Model | str, preset: str = "full", *, family: str = "text-encoder",
            task: str | None = None) -> TaskVector:
    """τ = θ_ft − θ0 over a preset's parameters (see `taskarith vector extract`)."""
    models = [m if isinstance(m, Model) else str(as_path("extract", name, m))
              for name, m in (("base", base), ("finetuned", finetuned))]
    patterns_for(as_str("extract", "preset", preset))  # a mistyped preset fails before either model loads
    as_str("extract", "family", family)
    optional(as_str)("extract", "task", task)
    base, finetuned = (m if isinstance(m, Model) else load_weights(m, family) for m in models)
    return extract_vector(base, finetuned, preset, family=family, task=task).vector


def _vector_or_path(where: str, name: str, value: Any) -> TaskVector | Path:
    return value if isinstance(value, TaskVector) else as_path(where, name, value)


def merge(vectors: Sequence[TaskVector | str | os.PathLike], method: str = "task_arithmetic", **settings) -> TaskVector:
    """One merged task vector by a data-free method (see `taskarith merges`); settings as merge_vectors takes."""
    sources = as_list("merge", "vectors", vectors, _vector_or_path, "task vectors or paths")
    keywords("merge", settings, merge_vectors)
    check_merge(as_str("merge", "method", method), len(sources), **settings)  # before any file is read
    return merge_vectors(load_vectors(sources), method, **settings)


def export(base: str | os.PathLike, vectors: Sequence[str | os.PathLike], out: str | os.PathLike, *,
           method: str = "task_arithmetic", alpha: float = 1.0, dtype: str | None = None, device: str | None = None,
           **settings) -> Path:
    """θ0 + α · method(vectors) as an HF folder at `out` that transformers loads (see `taskarith merge`), in
    `dtype` (float32, bfloat16, float16; the base's by default), its arithmetic run on `device`."""
    base, out = as_path("export", "base", base), as_path("export", "out", out)
    paths = as_list("export", "vectors", vectors, as_path, "paths")
    recipe = validated(Recipe, {"base": str(base), "method": method, "alpha": alpha, "dtype": dtype, **settings,
                                "inputs": [{"vector": str(v)} for v in paths]}, "export")
    text = yaml.safe_dump(recipe.model_dump(exclude_defaults=True), sort_keys=False)
    if device is not None:
        as_str("export", "device", device)
    return merge_recipe(recipe, Path.cwd(), out, recipe_text=text, device=device)


def finetune(model: Model, inputs: Sequence, labels: Sequence[int], head: torch.Tensor,
             job: TrainingJob) -> TaskVector:
    """Train one task vector into `job.out_dir/vector.safetensors`, resuming from the checkpoint there (see
    taskarith.training.trainer.finetune)."""
    where = "finetune"
    require(where, "model", model, Model, "a Model (taskarith.load_model)")
    require_sequence(where, "inputs", inputs, "examples")
    labels = as_list(where, "labels", labels, as_int, "ints")
    require(where, "head", head, torch.Tensor, "a tensor")
    require(where, "job", job, TrainingJob, "a TrainingJob")
    require(where, "job.paradigm", job.paradigm, Paradigm, "a Paradigm (taskarith.PARADIGMS)")
    require(where, "job.train", job.train, TrainConfig, "a TrainConfig")
    as_str(where, "job.task", job.task)
    job = dataclasses.replace(job, out_dir=as_path(where, "job.out_dir", job.out_dir))
    if head.ndim != 2 or not head.is_floating_point():
        raise TaskarithError(f"{where}: head must be a float tensor of shape [classes, dim], got {head.dtype} "
                             f"of shape {tuple(head.shape)}")
    if len(labels) != len(inputs):
        raise TaskarithError(f"{where}: {len(labels)} labels for {len(inputs)} inputs; give one label per input")
    outside = next((i for i, y in enumerate(labels) if not 0 <= y < head.shape[0]), None)
    if outside is not None:
        raise TaskarithError(f"{where}: labels[{outside}] = {labels[outside]} is not a row of the head "
                             f"(classes 0 to {head.shape[0] - 1})")
    return _finetune(model, inputs, labels, head, job)


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read a run config (YAML), apply `key.path=value` overrides, validate (see `taskarith run`)."""
    path = optional(as_path)("load_config", "path", path)
    return _load_config(path, as_list("load_config", "overrides", overrides, as_str, "KEY.PATH=VALUE strings"))


def run_experiment(cfg: ExperimentConfig, run_dir: str | os.PathLike, *, seeds: int | Sequence[int] | None = None,
                   progress: bool = True, log: Callable[[str], Any] = print) -> Path:
    """Run everything the config asks for and write results.json; returns its path. `seeds` is a count (seeds
    0 to count-1) or the seed indices to run; None means the config's count."""
    where = "run_experiment"
    require(where, "cfg", cfg, ExperimentConfig, "an ExperimentConfig (taskarith.load_config)")
    run_dir = as_path(where, "run_dir", run_dir)
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int)):
        seeds = as_list(where, "seeds", seeds, as_int, "seed indices (or one count)")
    require(where, "progress", progress, bool, "a bool")
    if not callable(log):
        raise TypeError(f"{where}: log must be callable, not {type(log).__name__}")
    return _run_experiment(cfg, run_dir, seeds=seeds, progress=progress, log=log)
