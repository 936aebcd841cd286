"""A merge recipe: a small validated YAML naming the base model, the inputs (task vector files or fine-tuned
checkpoints, each with an optional weight), a data-free method with any of its settings, and α.

    base: path/to/base-model          # an HF folder, or a hub id in the local cache
    method: ties                      # any data-free method of `taskarith methods`
    density: 0.2                      # a setting of the method, by name (`taskarith methods` lists them)
    alpha: 1.0
    preset: full                      # what a checkpoint input contributes (extracted on the fly)
    dtype: bfloat16                   # the output's (float32, bfloat16, float16); the base's by default
    inputs:
      - vector: sms.safetensors
      - checkpoint: path/to/finetuned   # a folder or a cached hub id
        weight: 0.5

Relative paths are read from the recipe's own folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ModelWrapValidatorHandler, PrivateAttr, ValidationError, model_validator

from ..config import MAX_ALPHA
from ..groundwork.errors import TaskarithError, one_line
from ..groundwork.safe_yaml import load_yaml
from ..groundwork.safety import read_text
from ..groundwork.strict import Strict
from ..merging.methods import check_settings, setting_names


class RecipeInput(Strict):
    vector: str | None = None  # a taskarith task vector file
    checkpoint: str | None = None  # a fine-tuned HF folder of the base's architecture
    weight: float | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "RecipeInput":
        if (self.vector is None) == (self.checkpoint is None):
            raise ValueError("give exactly one of vector: or checkpoint:")
        return self


class Recipe(Strict):
    base: str
    inputs: list[RecipeInput] = Field(min_length=1)
    method: str = "task_arithmetic"
    alpha: float = Field(1.0, ge=-MAX_ALPHA, le=MAX_ALPHA)  # negative: negation
    preset: str = "full"
    seed: int = Field(0, ge=0, lt=2**63)
    max_shard_bytes: int = Field(5 * 10**9, gt=0)  # save_pretrained's default shard size, 5 GB
    dtype: Literal["float32", "bfloat16", "float16"] | None = None  # the output's; the base's when not given
    hash_inputs: bool = True  # the model card gives each input's sha256, taken as the tensors are read
    _settings: dict[str, object] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _gather_settings(cls, tree: object, validate: ModelWrapValidatorHandler["Recipe"]) -> "Recipe":
        # a setting of any method (density: 0.2) sits beside the keys above and is kept apart, for check_settings
        # to check against the recipe's method; any other key is refused as unknown
        if not isinstance(tree, dict):
            return validate(tree)
        names = setting_names()
        recipe = validate({k: v for k, v in tree.items() if k not in names})
        recipe._settings = {k: v for k, v in tree.items() if k in names}
        return recipe

    @property
    def settings(self) -> dict[str, object]:
        """The method's settings the recipe gives, by name."""
        return dict(self._settings)

    def text(self) -> str:
        """The recipe as YAML, as a recipe file would give it: the keys set and the settings, without defaults."""
        return yaml.safe_dump(self.model_dump(exclude_defaults=True) | self.settings, sort_keys=False)

    def weights(self) -> list[float] | None:
        given = [i.weight for i in self.inputs]
        if all(w is None for w in given):
            return None
        return [1.0 if w is None else w for w in given]


def load_recipe(path: str | os.PathLike) -> tuple[Recipe, Path]:
    """The validated recipe and the folder its relative paths are read from."""
    path = Path(path)
    text = read_text(path)
    try:
        tree = load_yaml(text)
    except Exception as e:  # the safe loader raises several YAML error types
        raise TaskarithError(f"{path}: not valid YAML ({one_line(str(e))})") from None
    if not isinstance(tree, dict):
        raise TaskarithError(f"{path}: a recipe is a mapping of keys (base, inputs, method, ...)")
    try:
        recipe = Recipe.model_validate(tree)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "recipe"
        raise TaskarithError(f"{path}: {where}: {err['msg']}") from None
    check_settings(recipe.method, recipe.settings, str(path))
    return recipe, path.resolve().parent


def recipe_path(folder: Path, name: str) -> Path:
    """A path named by the recipe: ~ expanded, relative to the recipe's folder."""
    target = Path(os.path.expanduser(name))
    return target if target.is_absolute() else folder / target


def resolve(folder: Path, name: str, what: str) -> Path:
    """A path named by the recipe, which must exist."""
    target = recipe_path(folder, name)
    if not target.exists():
        raise TaskarithError(f"{what} {name!r}: no such file or folder ({target})")
    return target
