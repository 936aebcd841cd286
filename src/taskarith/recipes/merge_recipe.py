"""`taskarith merge RECIPE.yaml --out DIR`: θ0 + α · merged(τ_1 … τ_T) written as a normal HF folder.

The merge streams: for each tensor of the base, in name order, it reads that tensor from the base and from
every input (a task vector file, or a fine-tuned checkpoint whose difference from the base is taken on the
fly), merges it with the method's per-tensor rule and adds it to the shard being written. Peak memory is
about the largest tensor times (inputs + 2), plus one output shard, whatever the model's size. It works on
tensors by name, so any architecture with safetensors weights merges, decoder-only LLMs included.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from ..errors import TaskarithError, quote
from ..input_files import refuse_repeats
from ..training.selection import match_names, patterns_for
from ..merging.methods import RULE_SETTINGS, check_merge
from ..tensor_files import named_digest
from ..vectors import vector_meta
from ..version import __version__
from .hf_folder import ModelFolderWriter
from .recipe import Recipe, RecipeInput, resolve
from .sources import TensorFiles, file_sha256, model_files, model_folder


class _Input:
    """One recipe input, open: its task vector's tensor for a name, or its checkpoint's difference from θ0."""

    def __init__(self, spec: RecipeInput, folder: Path, base_names: list[str], preset: str):
        self.spec = spec
        if spec.vector is not None:
            self.path = resolve(folder, spec.vector, "vector")
            self.files, self.label = [self.path], str(self.path)
        else:
            self.path = resolve(folder, spec.checkpoint, "checkpoint")
            self.files, self.label = model_files(self.path), str(self.path)
        self.tensors = TensorFiles(self.files, self.label)
        self.preset_names = match_names(base_names, patterns_for(preset))

    def names(self) -> list[str]:
        return self.tensors.names() if self.spec.vector is not None else self.preset_names

    def delta(self, name: str, theta0: torch.Tensor) -> torch.Tensor:
        if self.spec.vector is not None:
            return self.tensors.get(name)
        return (self.tensors.get(name).double() - theta0.double()).to(theta0.dtype)


def _check_inputs(inputs: list[_Input], base: TensorFiles, covered: list[str]) -> None:
    """Every input covers the same parameters, of the base's shapes and dtypes; a vector is non-linear and was
    made on this base (its θ0 hash, streamed)."""
    base_hash, in_base = None, set(base.names())
    for source in inputs:
        if sorted(source.names()) != covered:
            extra = sorted(set(source.names()) ^ set(covered))[0]
            raise TaskarithError(f"{source.label}: covers other parameters than {inputs[0].label} ({extra!r})")
        stored = set(source.tensors.names())
        for name in covered:
            if name not in in_base or name not in stored:
                where = f"the base {base.label}" if name not in in_base else source.label
                raise TaskarithError(f"{source.label}: tensor {name!r} is not in {where}")
            if source.tensors.shape(name) != base.shape(name) or source.tensors.dtype(name) != base.dtype(name):
                raise TaskarithError(f"{name}: {source.tensors.dtype(name)} {source.tensors.shape(name)} in "
                                     f"{source.label} vs {base.dtype(name)} {base.shape(name)} in {base.label}")
        if source.spec.vector is None:
            continue
        meta = vector_meta(source.path, source.tensors.metadata)
        if meta.get("paradigm") == "linear":
            raise TaskarithError(f"{source.label}: a linearized (NTK) task vector applies through f(θ0) + J·τ, "
                                 "not θ0 + τ, so it cannot become a plain HF model")
        base_hash = base_hash or named_digest(covered, base.get)
        if meta.get("base_hash") != base_hash:
            raise TaskarithError(f"{source.label}: made on another base (θ0 hash {str(meta.get('base_hash'))[:12]}, "
                                 f"{base.label} has {base_hash[:12]})")


def merge_recipe(recipe: Recipe, folder: Path, out: Path, *, recipe_text: str, progress: bool = False) -> Path:
    """Merge as the recipe says and write the HF folder `out`; returns it."""
    method, settings = check_merge(recipe.method, len(recipe.inputs), density=recipe.density, seed=recipe.seed,
                                   weights=recipe.weights(), majority_sign_method=recipe.majority_sign_method,
                                   common_share=recipe.common_share)
    base_dir = resolve(folder, recipe.base, "base")
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(model_folder(base_dir))
        inputs = [_Input(spec, folder, base.names(), recipe.preset) for spec in recipe.inputs]
        refuse_repeats([base_dir, *(source.path for source in inputs)], "recipe inputs")
        for source in inputs:
            stack.enter_context(source.tensors)
        covered = sorted(inputs[0].names())
        _check_inputs(inputs, base, covered)
        writer = ModelFolderWriter(out, recipe.max_shard_bytes)
        try:
            writer.copy_from(base_dir)  # first: a base without its config fails before any merging
            _stream(recipe, method, settings, base, inputs, set(covered), writer, progress)
            writer.write_text("recipe.yaml", recipe_text)
            writer.write_text("README.md", model_card(recipe, method.label, inputs, recipe_text))
            return writer.finish()
        except BaseException:
            writer.abort()
            raise


def _stream(recipe, method, settings, base, inputs, covered, writer, progress) -> None:
    generator = torch.Generator().manual_seed(recipe.seed)  # draws in name order, as merge_vectors makes them
    rule_settings = {k: settings[k] for k in RULE_SETTINGS if k in settings}
    changed = False
    for name in tqdm(base.names(), desc="merging", unit="tensor", disable=not progress, leave=False):
        theta = base.get(name)
        if name in covered:
            stacked = torch.empty((len(inputs), *theta.shape), dtype=theta.dtype)
            for t, source in enumerate(inputs):
                stacked[t] = source.delta(name, theta)
            tau = method.rule(stacked, generator=generator, statistic=None, **rule_settings)
            changed = changed or bool(tau.any())
            theta = (theta.double() + recipe.alpha * tau.double()).to(theta.dtype)
            del stacked, tau
        if theta.is_floating_point() and not torch.isfinite(theta).all():
            cause = (f"θ0 + α · merged τ overflows {theta.dtype}: check the inputs' weights and alpha"
                     if name in covered else f"as it does in the base {base.label}")
            raise TaskarithError(f"tensor {quote(name)} of the merged model holds NaN or Inf ({cause}); "
                                 "nothing was written")
        writer.add(name, theta)
    if not changed:  # as `vector merge` refuses: the export would only be a copy of the base
        raise TaskarithError(f"the merged task vector is zero in every tensor (the inputs' weights cancel, or "
                             f"{recipe.method} keeps nothing); nothing was written")


def model_card(recipe: Recipe, label: str, inputs: list[_Input], recipe_text: str) -> str:
    """README.md: what was merged, how, from which inputs (with their files' sha256) and by which taskarith."""
    rows = [f"| {i + 1} | {'vector' if s.spec.vector is not None else 'checkpoint'} | `{s.label}` | "
            f"{1.0 if s.spec.weight is None else s.spec.weight:g} | `{file_sha256(s.files)}` |"
            for i, s in enumerate(inputs)]
    header = yaml.safe_dump({"library_name": "transformers", "tags": ["taskarith", "merge", recipe.method]})
    return (f"---\n{header}---\n\n# Merged with taskarith {__version__}\n\n"
            f"θ = θ0 + α · {label}(τ_1 … τ_{len(inputs)}), α = {recipe.alpha:g}, over the `{recipe.preset}` "
            f"parameters; θ0 is `{recipe.base}`.\n\n| # | Input | Path | Weight | sha256 of its files |\n"
            "| ---: | :--- | :--- | ---: | :--- |\n" + "\n".join(rows)
            + f"\n\n## Recipe\n\n```yaml\n{recipe_text.rstrip()}\n```\n")
