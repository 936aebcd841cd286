"""The Python surface for notebooks: load a model by name, extract, merge and export task vectors, score them.

Thin wrappers over the library's own functions, taking names and files where a notebook has them; everything
they return is the library's own type (Model, TaskVector, Path)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import yaml

from .config import validate
from .recipes import Recipe, merge_recipe
from .extraction import extract_vector, load_weights
from .merging import merge_vectors
from .models import load_model as _load_configured
from .models.base import Model
from .vectors import TaskVector


def load_model(name: str, family: str = "text-encoder", **options) -> Model:
    """A model by name (an HF folder, a cached hub id, or for clip an open_clip file), with any option of the
    config's `model` section (max_length, device, precision, trust_pickle, tokenizer)."""
    return _load_configured(validate({"model": {"family": family, "name": name, **options}}, "load_model").model)


def extract(base: Model | str, finetuned: Model | str, preset: str = "full", *, family: str = "text-encoder",
            task: str | None = None) -> TaskVector:
    """τ = θ_ft − θ0 over a preset's parameters (see `taskarith vector extract`)."""
    base, finetuned = (m if isinstance(m, Model) else load_weights(m, family) for m in (base, finetuned))
    return extract_vector(base, finetuned, preset, family=family, task=task).vector


def merge(vectors: Sequence[TaskVector | str | os.PathLike], method: str = "task_arithmetic", **settings) -> TaskVector:
    """One merged task vector by a data-free method (see `taskarith merges`); settings as merge_vectors takes."""
    loaded = [v if isinstance(v, TaskVector) else TaskVector.load(v) for v in vectors]
    return merge_vectors(loaded, method, **settings)


def export(base: str | os.PathLike, vectors: Sequence[str | os.PathLike], out: str | os.PathLike, *,
           method: str = "task_arithmetic", alpha: float = 1.0, **settings) -> Path:
    """θ0 + α · method(vectors) as an HF folder at `out` that transformers loads (see `taskarith merge`)."""
    recipe = Recipe.model_validate({"base": str(base), "method": method, "alpha": alpha, **settings,
                                    "inputs": [{"vector": str(v)} for v in vectors]})
    text = yaml.safe_dump(recipe.model_dump(exclude_defaults=True), sort_keys=False)
    return merge_recipe(recipe, Path.cwd(), Path(out), recipe_text=text)
