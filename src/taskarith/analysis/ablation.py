"""Which parameters to fine-tune (the paper's Table 5): every task fine-tuned non-linearly with each preset,
then merged and evaluated exactly like a paradigm of the run."""

from __future__ import annotations

from typing import Sequence

from ..finetune.selection import select
from ..finetune.trainer import resolve_paradigm
from ..summary import summarize
from ..vectors import TaskVector


def preset_vector(exp, seed: int, task: str, preset: str) -> TaskVector:
    """τ trained in place with `preset`; a paradigm of the run that trains exactly that preset is reused."""
    for paradigm in ("attention", "nonlinear"):
        if resolve_paradigm(paradigm).preset == preset:
            return exp.vector(seed, paradigm, task)
    return exp.vector(seed, "attention", task, preset=preset)


def ablation(exp, presets: Sequence[str], pretrained: dict, log=print, seed: int = 0) -> dict:
    """{preset: entry shaped like a paradigm entry of results.json}, for one seed."""
    for preset in presets:  # a bad preset fails here, before any training
        select(exp.family.net, preset)
    out = {}
    for preset in presets:
        log(f"ablation: fine-tuning {len(exp.tasks)} task(s) with preset {preset}")
        vectors = {t: preset_vector(exp, seed, t, preset) for t in exp.tasks}
        result = exp.evaluate(vectors, pretrained)
        result["training"] = {t: {**tv.meta["training"], "steps": tv.meta["train_config"]["steps"]}
                              for t, tv in vectors.items()}
        entry = {"label": preset, "preset": preset, "selection": next(iter(vectors.values())).meta["selection"],
                 "seeds": {str(seed): result}}
        entry["summary"] = summarize(entry["seeds"], exp.tasks)
        log(f"ablation {preset}: absolute {entry['summary']['absolute']['mean']:.1%}, "
            f"normalized {entry['summary']['normalized']['mean']:.1%}")
        out[preset] = entry
    return out
