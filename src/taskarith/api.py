"""The Python surface for notebooks: load a model by name, extract, merge and export task vectors, fine-tune
and score on a named task, run the whole protocol.

Thin wrappers over the library's own functions, taking names and files where a notebook has them; everything
they return is the library's own type (Model, TaskVector, Path). Each checks its arguments on entry: a wrong
type is a TypeError, a bad value a TaskarithError, both naming the parameter."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from .groundwork.arguments import (as_int, as_list, as_number, as_path, as_str, keywords, optional, require,
                                   require_sequence, validated)
from .config import ExperimentConfig, TrainConfig
from .config import load_config as _load_config
from .data import SplitSpec, resolve_task
from .data.split_spec import SPLITS
from .evaluate import accuracies, make_evalset
from .groundwork.atomic import remove_temp_files
from .groundwork.errors import TaskarithError, unknown
from .groundwork.lock import run_lock
from .extraction import extract_vector, load_weights
from .merging.merge import check_merge, merge_vectors
from .merging.methods import setting_names
from .models import load_model as _load_configured
from .models.base import Model
from .models.heads import zero_shot_head
from .paradigms import resolve_paradigm
from .recipes import Recipe, merge_recipe
from .run import run_experiment as _run_experiment
from .training.selection import patterns_for
from .training.trainer import TrainingJob
from .training.trainer import finetune as _finetune
from .vectors import TaskVector, applied_in_place, combine, load_vectors


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


def merge(vectors: Sequence[TaskVector | str | os.PathLike], method: str = "task_arithmetic", *, seed: int = 0,
          weights: Sequence[float] | None = None, **settings) -> TaskVector:
    """One merged task vector by a data-free method, with any of its settings by name (density=0.2; see
    `taskarith methods`); `seed` and `weights` as merge_vectors takes them."""
    sources = as_list("merge", "vectors", vectors, _vector_or_path, "task vectors or paths")
    keywords("merge", {k: v for k, v in settings.items() if k not in setting_names()}, merge)
    check_merge(as_str("merge", "method", method), len(sources), settings, seed=seed, weights=weights)  # files unread
    return merge_vectors(load_vectors(sources), method, seed=seed, weights=weights, **settings)


def export(base: str | os.PathLike, vectors: Sequence[str | os.PathLike], out: str | os.PathLike, *,
           method: str = "task_arithmetic", alpha: float = 1.0, dtype: str | None = None, device: str | None = None,
           **settings) -> Path:
    """θ0 + α · method(vectors) as an HF folder at `out` that transformers loads (see `taskarith export`), in
    `dtype` (float32, bfloat16, float16; the base's by default), its arithmetic run on `device`; `settings` are
    the method's settings by name (density=0.2) and a recipe's other keys (preset, seed, max_shard_bytes)."""
    base, out = as_path("export", "base", base), as_path("export", "out", out)
    paths = as_list("export", "vectors", vectors, as_path, "paths")
    recipe = validated(Recipe, {"base": str(base), "method": method, "alpha": alpha, "dtype": dtype, **settings,
                                "inputs": [{"vector": str(v)} for v in paths]}, "export")
    text = recipe.text()
    if device is not None:
        as_str("export", "device", device)
    return merge_recipe(recipe, Path.cwd(), out, recipe_text=text, device=device, where="export")


def finetune(model: Model, task: str, paradigm: str = "attention", *, out: str | os.PathLike | None = None,
             preset: str | None = None, max_train: int | None = None, root: str | None = None,
             progress: bool = True, **train) -> TaskVector:
    """Fine-tune `model` on a task's training split under a paradigm (taskarith.PARADIGMS), the task's zero-shot
    head frozen; `train` takes the keys of a config's train section (steps, lr, batch_size, seed, warmup_steps,
    ...). A task is what `taskarith run` takes: a built-in name, image:NAME, glue:NAME or a labelled .csv/.jsonl
    file. With `out` the vector is kept at out/vector.safetensors and a call cut short resumes from there."""
    where = "finetune"
    require(where, "model", model, Model, "a Model (taskarith.load_model)")
    task = as_str(where, "task", task)
    chosen = resolve_paradigm(as_str(where, "paradigm", paradigm), optional(as_str)(where, "preset", preset))
    patterns_for(chosen.preset)  # a mistyped preset fails before the task loads
    max_train = optional(_at_least_one)(where, "max_train", max_train)
    root, out = optional(as_str)(where, "root", root), optional(as_path)(where, "out", out)
    require(where, "progress", progress, bool, "a bool")
    settings = validated(TrainConfig, train, where)
    data = resolve_task(task, root=root, split=SplitSpec(seed=settings.seed, caps={"train": max_train}))
    head = zero_shot_head(model, data.class_names, data.templates)
    with contextlib.ExitStack() as stack:
        folder = out if out is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        stack.enter_context(run_lock(folder))  # one writer per folder, as for `taskarith finetune`
        remove_temp_files(folder)  # left by a killed fine-tune; the lock says no writer is active
        job = TrainingJob(chosen, settings, folder, data.name, progress=progress)
        return _finetune(model, data.train.inputs, data.train.labels, head, job)


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read a run config (YAML), apply `key.path=value` overrides, validate (see `taskarith run`)."""
    path = optional(as_path)("load_config", "path", path)
    return _load_config(path, as_list("load_config", "overrides", overrides, as_str, "KEY.PATH=VALUE strings"))


def run_experiment(cfg: ExperimentConfig, run_dir: str | os.PathLike, *, seeds: int | Sequence[int] | None = None,
                   progress: bool = True, log: Callable[[str], Any] = print) -> Path | None:
    """Run everything the config asks for and write results.json; returns its path (None on a torchrun rank
    other than 0). `seeds` is a count (seeds 0 to count-1) or the seed indices to run; None means the config's
    count."""
    where = "run_experiment"
    require(where, "cfg", cfg, ExperimentConfig, "an ExperimentConfig (taskarith.load_config)")
    run_dir = as_path(where, "run_dir", run_dir)
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int)):
        seeds = as_list(where, "seeds", seeds, as_int, "seed indices (or one count)")
    require(where, "progress", progress, bool, "a bool")
    if not callable(log):
        raise TypeError(f"{where}: log must be callable, not {type(log).__name__}")
    return _run_experiment(cfg, run_dir, seeds=seeds, progress=progress, log=log)


def score(model: Model, task: str, vectors: Sequence[TaskVector | str | os.PathLike] = (),
          coefficients: Sequence[float] | Sequence[Sequence[float]] | None = None, *, split: str = "test",
          root: str | None = None, batch_size: int = 64) -> float | list[float]:
    """Accuracy on a task's split (test, val or train) with the model's zero-shot head for the task, of the
    model θ0 or of θ0 + Σ c_t τ_t: `coefficients` is one c per vector (all 1 by default), giving one accuracy,
    or a list of such lists, giving one per combination (the split is tokenized once for all of them)."""
    where = "score"
    require(where, "model", model, Model, "a Model (taskarith.load_model)")
    task = as_str(where, "task", task)
    if as_str(where, "split", split) not in SPLITS:
        raise unknown("split", split, SPLITS)
    batch_size = _at_least_one(where, "batch_size", batch_size)
    root = optional(as_str)(where, "root", root)
    vectors, combos, many = _weighted(where, model, vectors, coefficients)
    data = resolve_task(task, root=root)
    part = getattr(data, split)
    head = zero_shot_head(model, data.class_names, data.templates)
    found = accuracies(model, vectors, combos, make_evalset(model, part.inputs, part.labels, batch_size), head)
    return [float(a) for a in found] if many else float(found[0])


def applied(model: Model, vectors: Sequence[TaskVector | str | os.PathLike],
            coefficients: Sequence[float] | None = None) -> contextlib.AbstractContextManager[None]:
    """A `with` block in which the model's weights are θ0 + Σ c_t τ_t (each c 1 by default); θ0 comes back bit
    for bit after it. Score through `score(model, task, vectors, ...)`, not inside the block: a task's head is
    the zero-shot head of the weights it finds. A linear vector acts through the linearized model, not the
    weights: score it with `score`."""
    where = "applied"
    require(where, "model", model, Model, "a Model (taskarith.load_model)")
    vectors, combos, many = _weighted(where, model, vectors, coefficients)
    if many:
        raise TypeError(f"{where}: coefficients must be a list of numbers, one per vector, not a list of lists")
    linear = next((tv.label() for tv in vectors if tv.linear), None)
    if linear is not None:
        raise TaskarithError(f"{where}: {linear} is a linear task vector, which acts through the linearized "
                             "model, not the weights; score it with taskarith.score")
    return applied_in_place(model, combine(list(zip(vectors, combos[0]))) if vectors else {})


def _at_least_one(where: str, name: str, value: Any) -> int:
    if as_int(where, name, value) < 1:
        raise TaskarithError(f"{where}: {name} must be at least 1, got {value}")
    return int(value)


def _weighted(where: str, model: Model, vectors: Any,
              coefficients: Any) -> tuple[list[TaskVector], list[list[float]], bool]:
    """The task vectors, checked against the model's θ0, the coefficient combinations to apply them at, and
    whether several were given: None is one combination of all ones, a list of numbers one combination, a
    list of such lists one each."""
    vectors = load_vectors(as_list(where, "vectors", vectors, _vector_or_path, "task vectors or paths"), where)
    many = False
    if coefficients is None:
        combos = [[1.0] * len(vectors)]
    else:
        require_sequence(where, "coefficients", coefficients, "numbers, or lists of numbers")
        many = bool(coefficients) and all(isinstance(c, Sequence) and not isinstance(c, str) for c in coefficients)
        if many:
            rows = [(f"coefficients[{i}]", c) for i, c in enumerate(coefficients)]
        else:
            rows = [("coefficients", coefficients)]
        combos = [as_list(where, name, row, as_number, "numbers") for name, row in rows]
    wrong = next((len(c) for c in combos if len(c) != len(vectors)), None)
    if wrong is not None:
        raise TaskarithError(f"{where}: {wrong} coefficients for {len(vectors)} task vectors; give one per vector")
    for tv in vectors:
        tv.check_base(model)
    if len({tv.linear for tv in vectors}) > 1:
        raise TaskarithError(f"{where}: linear and non-linear task vectors cannot be applied together")
    return vectors, combos, many
