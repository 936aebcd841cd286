"""`taskarith export RECIPE.yaml --out DIR`: θ0 + α · merged(τ_1 … τ_T) written as a normal HF folder.

The merge streams through the one per-tensor loop that `merge_vectors` runs (merging/tensor_loop.py): for
each covered tensor, in name order, it reads that tensor from the base and from every input (a task vector
file, or a fine-tuned checkpoint whose difference from the base is taken on the fly) straight into one stack,
merges it with the method's rule and writes the result at its place in the output shard. Reading runs ahead
on a thread; each input's tensors are hashed as they are read, for the model card. Peak memory is about the
largest tensor times (inputs + 3), whatever the model's size. It works on tensors by name, so any
architecture with safetensors weights merges, decoder-only LLMs included.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from ..groundwork.errors import TaskarithError, quote
from ..groundwork.input_files import refuse_repeats
from ..merging.merge import check_merge, loaded
from ..merging.tensor_loop import merged_tensors, work_dtype
from ..groundwork.tensor_files import DTYPES, named_digest
from ..training.selection import match_names, patterns_for
from ..vectors import vector_meta
from ..version import __version__
from .hf_folder import ModelFolderWriter
from .output import OUTPUT_DTYPES, compute_device, retyped_config
from .recipe import Recipe, RecipeInput, resolve
from .sources import TensorFiles, model_files, model_source, model_tensors


class _Input:
    """One recipe input, open: its task vector's tensor for a name, or its checkpoint's difference from θ0;
    the sha256 of the tensors read from it, in name order (`named_digest`'s)."""

    def __init__(self, spec: RecipeInput, folder: Path, base_names: list[str], preset: str, hashed: bool):
        self.spec = spec
        if spec.vector is not None:
            self.path = resolve(folder, spec.vector, "vector")
            self.files, self.label = [self.path], str(self.path)
        elif spec.checkpoint is not None:  # always, when there is no vector: RecipeInput holds exactly one
            source = model_source(folder, spec.checkpoint, "checkpoint")
            self.files, self.label = model_files(source), source.label
            self.path = self.files[0]  # who it is, for refusing an input given twice
        self.tensors = TensorFiles(self.files, self.label)
        self.preset_names = match_names(base_names, patterns_for(preset))
        self.digest = hashlib.sha256() if hashed else None

    def names(self) -> list[str]:
        return self.tensors.names() if self.spec.vector is not None else self.preset_names

    def read(self, name: str, out: torch.Tensor) -> None:
        """The stored tensor `name` into `out` (its dtype converted to out's), hashed as it is read."""
        stored = DTYPES[self.tensors.dtype(name)]
        raw = self.tensors.read_into(name, out if stored == out.dtype else torch.empty(out.shape, dtype=stored))
        if self.digest is not None:
            self.digest.update(f"{name}|{raw.dtype}|{tuple(raw.shape)}|".encode())
            self.digest.update(raw.reshape(-1).view(torch.uint8).numpy().data)
        if raw is not out:
            out.copy_(raw)


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


def merge_recipe(recipe: Recipe, folder: Path, out: Path, *, recipe_text: str, progress: bool = False,
                 dtype: str | None = None, device: str | None = None, hash_inputs: bool | None = None,
                 where: str = "recipe") -> Path:
    """Merge as the recipe says and write the HF folder `out`; returns it. `dtype` (else the recipe's, else
    the base's) is the output's; `device` runs the rule's arithmetic there; `hash_inputs` (else the recipe's)
    whether the model card gives the sha256 of each input's tensors, which costs about a second per 1 GB;
    `where` names the recipe's source in an error."""
    method, keywords = check_merge(recipe.method, len(recipe.inputs), recipe.settings, seed=recipe.seed,
                                   weights=recipe.weights(), where=where)
    dtype_name = dtype or recipe.dtype
    out_dtype = OUTPUT_DTYPES.get(dtype_name) if dtype_name else None
    if dtype is not None and out_dtype is None:
        raise TaskarithError(f"--dtype {quote(dtype)}: not one of {', '.join(OUTPUT_DTYPES)}")
    target = compute_device(device) if device is not None else None
    base_source = model_source(folder, recipe.base, "base")
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(model_tensors(base_source))
        hashed = recipe.hash_inputs if hash_inputs is None else hash_inputs
        inputs = [_Input(spec, folder, base.names(), recipe.preset, hashed) for spec in recipe.inputs]
        refuse_repeats([model_files(base_source)[0], *(source.path for source in inputs)], "recipe inputs")
        for source in inputs:
            stack.enter_context(source.tensors)
        covered = sorted(inputs[0].names())
        _check_inputs(inputs, base, covered)
        written = {n: out_dtype if out_dtype is not None and DTYPES[base.dtype(n)].is_floating_point
                   else DTYPES[base.dtype(n)] for n in base.names()}
        writer = ModelFolderWriter(out, recipe.max_shard_bytes, [(n, written[n], base.shape(n)) for n in base.names()])
        try:
            writer.copy_from(base_source.files, base_source.label)  # first: a base without its config fails early
            if out_dtype is not None:
                writer.write_text("config.json", retyped_config(base_source.files["config.json"], out_dtype))
            _stream(recipe, method, keywords, base, inputs, covered, writer, written, target, progress)
            writer.write_text("recipe.yaml", recipe_text)
            writer.write_text("README.md", model_card(recipe, method.label, inputs, recipe_text))
            return writer.finish()
        except BaseException:
            writer.abort()
            raise


def _checked(name: str, theta: torch.Tensor, covered: bool, base_label: str) -> torch.Tensor:
    # a finite sum means every entry is finite (a NaN or an Inf would carry through), at one cheap pass;
    # only a sum that overflows, or a tensor that truly holds NaN or Inf, pays for the exact check
    if theta.is_floating_point() and not torch.isfinite(theta.sum()) and not torch.isfinite(theta).all():
        cause = (f"θ0 + α · merged τ overflows {theta.dtype}: check the inputs' weights and alpha"
                 if covered else f"as it does in the base {base_label}")
        raise TaskarithError(f"tensor {quote(name)} of the merged model holds NaN or Inf ({cause}); "
                             "nothing was written")
    return theta


def _stream(recipe, method, keywords, base, inputs, covered, writer, written, device, progress) -> None:
    for name in sorted(set(base.names()) - set(covered)):  # copied through, in the output's dtype
        writer.add(name, _checked(name, base.get(name).to(written[name]), False, base.label))
    readers = ThreadPoolExecutor(max_workers=min(len(inputs), len(os.sched_getaffinity(0))))

    def work(name: str) -> torch.dtype:
        return work_dtype(DTYPES[base.dtype(name)])

    def read(name: str, stack: torch.Tensor) -> None:
        # the inputs read and hashed side by side, and θ0 meanwhile (all of it runs outside the GIL)
        reads = [readers.submit(source.read, name, stack[t]) for t, source in enumerate(inputs)]
        theta = base.get(name).to(work(name))
        for done in reads:
            done.result()
        for t, source in enumerate(inputs):
            if source.spec.vector is None:  # a checkpoint's τ is its difference from θ0
                stack[t].sub_(theta)

    def shape(name: str) -> tuple[tuple[int, ...], torch.dtype]:
        return (len(inputs), *base.shape(name)), work(name)

    changed = False
    bar = tqdm(total=sum(len(inputs) * base.nbytes(n) for n in covered), desc="merging", unit="B", unit_scale=True,
               unit_divisor=1024, disable=not progress, leave=False)
    with bar, readers:
        for name, tau in merged_tensors(covered, read, shape, loaded(method.rule), keywords, recipe.seed,
                                        device=device):
            changed = changed or bool(tau.any())
            # θ0 read again rather than held: the stack in flight is the peak, and this keeps it alone
            theta = base.get(name).to(work(name)).add_(tau, alpha=recipe.alpha).to(written[name])
            del tau
            writer.add(name, _checked(name, theta, True, base.label))
            bar.update(len(inputs) * base.nbytes(name))
    if not changed:  # as `vector merge` refuses: the export would only be a copy of the base
        raise TaskarithError(f"the merged task vector is zero in every tensor (the inputs' weights cancel, or "
                             f"{recipe.method} keeps nothing); nothing was written")


def model_card(recipe: Recipe, label: str, inputs: list[_Input], recipe_text: str) -> str:
    """README.md: what was merged, how, from which inputs (with the sha256 of the tensors read from each, as
    `tensors_sha256` computes it) and by which taskarith."""
    rows = [f"| {i + 1} | {'vector' if s.spec.vector is not None else 'checkpoint'} | `{s.label}` | "
            f"{1.0 if s.spec.weight is None else s.spec.weight:g} | "
            + (f"`{s.digest.hexdigest()}` |" if s.digest is not None else "not hashed |")
            for i, s in enumerate(inputs)]
    header = yaml.safe_dump({"library_name": "transformers", "tags": ["taskarith", "merge", recipe.method]})
    return (f"---\n{header}---\n\n# Merged with taskarith {__version__}\n\n"
            f"θ = θ0 + α · {label}(τ_1 … τ_{len(inputs)}), α = {recipe.alpha:g}, over the `{recipe.preset}` "
            f"parameters; θ0 is `{recipe.base}`.\n\n| # | Input | Path | Weight | sha256 of the tensors merged |\n"
            "| ---: | :--- | :--- | ---: | :--- |\n" + "\n".join(rows)
            + f"\n\n## Recipe\n\n```yaml\n{recipe_text.rstrip()}\n```\n")
