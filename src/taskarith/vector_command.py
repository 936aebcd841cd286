"""`taskarith vector ...`: inspect task vectors, merge them with a data-free method, and extract them from
checkpoints made anywhere."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional

import typer

from .errors import TaskarithError, printable, quote
from .training.selection import PRESETS
from .merging.methods import MERGE_METHODS

vector_app = typer.Typer(no_args_is_help=True, help="Inspect, merge and extract task vectors.")


def _echo(text: object) -> None:
    """Print one line whose parts may come from a file: control characters are shown escaped, never obeyed."""
    typer.echo(printable(text))


@vector_app.command("merge")
def vector_merge(
    paths: List[Path] = typer.Argument(..., help="Task vectors of one base and paradigm."),
    method: str = typer.Option("ties", "--method", "--rule", help=" | ".join(MERGE_METHODS) + " (see `taskarith "
                               "merges`; --rule is the old name)."),
    weights: Optional[str] = typer.Option(None, help="One weight per vector, comma-separated, e.g. 1,0.5."),
    density: float = typer.Option(0.2, help="Share of entries TIES and DARE keep."),
    seed: int = typer.Option(0, help="Seed of DARE's random drops."),
    majority_sign: str = typer.Option("total", help="How TIES elects each entry's sign: total (the summed values) "
                                      "| frequency (the summed signs)."),
    out: Path = typer.Option(..., help="Where to write the merged task vector (.safetensors)."),
) -> None:
    """Merge task vectors into one with a data-free method (apply it with one α like any task vector)."""
    from .merging import check_merge, merge_vectors
    from .vectors import load_vectors

    settings = {"density": density, "seed": seed, "weights": _weights(weights), "majority_sign_method": majority_sign}
    check_merge(method, len(paths), **settings)  # a mistyped method or setting fails before the vectors are read
    merged = merge_vectors(load_vectors(paths, "vector merge"), method, **settings)
    merged.save(out)
    _echo(f"{merged.meta['task']}: norm {merged.norm():.6g}")
    _echo(out)


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
    from .vectors import TaskVector

    tv = TaskVector.load(path)
    if as_json:
        typer.echo(json.dumps(tv.meta, indent=2))  # JSON escapes every control character itself
        return
    _echo(path)
    for key in ("task", "paradigm", "preset", "base_model", "base_hash", "taskarith_version"):
        _echo(f"  {key:18} {tv.meta.get(key)}")
    _echo(f"  {'tensors':18} {len(tv.tensors)}")
    _echo(f"  {'parameters':18} {tv.numel():,}")
    _echo(f"  {'norm':18} {tv.norm():.6g}")


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
    from .extraction import extract_vector, load_weights
    from .training.selection import patterns_for

    patterns_for(preset)  # a mistyped preset fails before either model loads
    models = [load_weights(name, family, trust_pickle=trust_pickle) for name in (base, finetuned)]
    extracted = extract_vector(*models, preset, family=family, task=task)
    if extracted.changed_outside:
        _warn(f"warning: the fine-tune changed {extracted.changed_outside} parameter(s) outside preset {preset!r}; "
              f"{extracted.dropped_share:.1%} of its change (squared norm) is left out of the vector")
    extracted.vector.save(out)
    sel = extracted.vector.meta["selection"]
    _echo(f"{sel['count']:,} of {sel['total']:,} parameters ({sel['share']:.1%}), norm {extracted.vector.norm():.6g}")
    _echo(out)


def _warn(text: str) -> None:
    typer.echo(printable(text), err=True)
