"""Which parameters to fine-tune (the paper's Table 5): every task fine-tuned in place with each preset,
then merged and evaluated exactly like a paradigm of the run."""

from __future__ import annotations

from functools import partial
from typing import Sequence

from ..training.selection import select
from ..paradigms import PARADIGMS
from ..results_record import ParadigmEntry, Splits
from .experiment import Experiment
from .stages import run_entry
from .finetunes import Unit


def preset_unit(seed: int, task: str, preset: str) -> Unit:
    """τ trained in place with `preset`; a paradigm of the run that trains exactly that preset is reused."""
    for name in ("attention", "nonlinear"):
        if PARADIGMS[name].preset == preset:
            return Unit(seed, name, task)
    return Unit(seed, "attention", task, preset=preset)


def ablation_units(exp: Experiment, preset: str, seed: int = 0) -> list[Unit]:
    return [preset_unit(seed, t, preset) for t in exp.tasks]


def ablation(exp: Experiment, presets: Sequence[str], pretrained: Splits,
             seeds: Sequence[int] = (0,)) -> dict[str, ParadigmEntry]:
    """{preset: entry shaped like a paradigm entry of results.json}, over the run's seeds."""
    for preset in presets:  # a bad preset fails here, before any training
        select(exp.model.net, preset)
    out = {}
    for preset in presets:
        exp.log(f"ablation: fine-tuning {len(exp.tasks)} task(s) with preset {preset}")
        out[preset] = run_entry(exp, {"label": preset, "preset": preset}, partial(ablation_units, exp, preset),
                                list(seeds), pretrained, f"ablation {preset}").record
    return out
