"""`taskarith vector ...`: inspect task vectors, merge them with a data-free method, and extract them from
checkpoints made anywhere."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, List, Optional

import typer

from .terminal import echo, start_computing, warn
from ..groundwork.errors import TaskarithError, quote
from ..training.selection import PRESETS
from ..merging.methods import MERGE_METHODS

vector_app = typer.Typer(no_args_is_help=True, help="Inspect, merge and extract task vectors.")


@vector_app.command("merge")
def vector_merge(
    paths: List[Path] = typer.Argument(..., help="Task vectors of one base and paradigm."),
    method: str = typer.Option("ties", help=" | ".join(MERGE_METHODS) + " (see `taskarith methods`)."),
    weights: Optional[str] = typer.Option(None, help="One weight per vector, comma-separated, e.g. 1,0.5."),
    setting: List[str] = typer.Option([], "--setting", help="A setting of the method, NAME=VALUE, e.g. density=0.2 "
                                      "(repeatable; `taskarith methods` lists each method's settings and defaults)."),
    density: Optional[float] = typer.Option(None, help="The same as --setting density=VALUE."),
    seed: int = typer.Option(0, help="Seed of DARE's random drops."),
    out: Path = typer.Option(..., help="Where to write the merged task vector (.safetensors)."),
) -> None:
    """Merge task vectors into one with a data-free method (apply it with one α like any task vector)."""
    from ..merging.merge import check_merge, merge_vectors
    from ..vectors import load_vectors

    settings = _settings(setting)
    if density is not None:
        if "density" in settings:
            raise TaskarithError("--density and --setting density=... are one setting; give it once")
        settings["density"] = density
    per_vector = _weights(weights)
    # fails before any vector is read
    check_merge(method, len(paths), settings, where="vector merge", seed=seed, weights=per_vector)
    start_computing()
    merged = merge_vectors(load_vectors(paths, "vector merge"), method, seed=seed, weights=per_vector, **settings)
    merged.save(out)
    echo(f"{merged.meta['task']}: norm {merged.norm():.6g}")
    echo(out)


def _settings(items: List[str]) -> dict[str, Any]:
    """--setting NAME=VALUE as {name: value}, each value read as YAML (0.2 a number, total a str): of any kind,
    for the method's own check to judge."""
    from ..groundwork.safe_yaml import load_yaml_value

    settings: dict[str, Any] = {}
    for item in items:
        name, equals, text = item.partition("=")
        name = name.strip()
        if not equals or not name:
            raise TaskarithError(f"--setting {quote(item)}: expected NAME=VALUE, e.g. density=0.2")
        if name in settings:
            raise TaskarithError(f"--setting {quote(name)} is given twice")
        settings[name] = load_yaml_value(text, f"--setting {quote(item)}")
    return settings


def _weights(text: Optional[str]) -> Optional[list[float]]:
    """--weights 1,0.5 as numbers."""
    if text is None:
        return None
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise TaskarithError(f"--weights takes comma-separated numbers, e.g. 1,0.5; got {quote(text)}") from None
    if not all(map(math.isfinite, weights)):
        raise TaskarithError(f"--weights must be finite numbers; got {quote(text)}")
    return weights


@vector_app.command("info")
def vector_info(path: Path = typer.Argument(..., help="A task vector file (.safetensors)."),
                as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON.")) -> None:
    """Show a task vector's metadata, size and norm."""
    from ..vectors import TaskVector

    start_computing()
    tv = TaskVector.load(path)
    if as_json:
        typer.echo(json.dumps(tv.meta, indent=2))  # JSON escapes every control character itself
        return
    echo(path)
    for key in ("task", "paradigm", "preset", "base_model", "base_hash", "taskarith_version"):
        echo(f"  {key:18} {tv.meta.get(key)}")
    echo(f"  {'tensors':18} {len(tv.tensors)}")
    echo(f"  {'parameters':18} {tv.numel():,}")
    echo(f"  {'norm':18} {tv.norm():.6g}")


@vector_app.command("extract")
def vector_extract(
    base: str = typer.Option(..., help="The pre-trained model: a local HF folder or a hub id in the local cache."),
    finetuned: str = typer.Option(..., help="The fine-tuned model, of the base's architecture."),
    preset: str = typer.Option("full", help="Which parameters to keep: " + ", ".join(PRESETS) + " or regex:PATTERN."),
    family: str = typer.Option("text-encoder", help="The model family both load as (text-encoder, clip, t5)."),
    task: Optional[str] = typer.Option(None, help="The task name to record (default: the fine-tuned model's)."),
    trust_pickle: bool = typer.Option(False, help="Allow pickled weight files (an open_clip checkpoint) of "
                                      "models you trust; they are read as weights only."),
    out: Path = typer.Option(..., help="Where to write the task vector (.safetensors)."),
) -> None:
    """Extract the task vector θ_ft − θ0 of any fine-tune, over a preset's parameters."""
    from ..extraction import extract_vector, load_weights
    from ..training.selection import patterns_for

    patterns_for(preset)  # a mistyped preset fails before either model loads
    start_computing()
    base_model = load_weights(base, family, trust_pickle=trust_pickle)
    tuned_model = load_weights(finetuned, family, trust_pickle=trust_pickle)
    extracted = extract_vector(base_model, tuned_model, preset, family=family, task=task)
    if extracted.changed_outside:
        warn(f"warning: the fine-tune changed {extracted.changed_outside} parameter(s) outside preset {preset!r}; "
             f"{extracted.dropped_share:.1%} of its change (squared norm) is left out of the vector")
    extracted.vector.save(out)
    sel = extracted.vector.meta["selection"]
    echo(f"{sel['count']:,} of {sel['total']:,} parameters ({sel['share']:.1%}), norm {extracted.vector.norm():.6g}")
    echo(out)
