"""Every fine-tune a run needs, listed before any is trained, and the first seed's vectors the analyses read.

The sequential run, the ranks torchrun starts and the Ray executor all take their fine-tunes from here, so
each trains exactly the units the others would, into the same files; and they, like `taskarith analyze`,
take the analyses' vectors from here, read back from those files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .ablation import ablation_units
from .analyses import FirstSeed
from .experiment import Experiment
from .finetunes import Unit, trained_vector, unit_vector_file
from .seeds import FIRST_SEED


def paradigm_units(exp: Experiment, paradigm: str, seed: int, rates: Mapping[str, float]) -> list[Unit]:
    """One seed of one paradigm: a fine-tune per task at the paradigm's rate."""
    return [Unit(seed, paradigm, t, lr=rates[paradigm]) for t in exp.tasks]


def lr_candidates(exp: Experiment) -> list[Unit]:
    """Seed 0 of every paradigm at every rate lr_search tries."""
    return [Unit(0, p, t, lr=lr) for p in exp.cfg.paradigms for lr in exp.cfg.lr_search for t in exp.tasks]


def finetune_units(exp: Experiment, seeds: Sequence[int], rates: Mapping[str, float]) -> list[Unit]:
    """Every fine-tune after the rate search: each seed of each paradigm, then the ablation's presets at each
    seed; a vector file that two entries share (an ablation preset that is a paradigm's own) is listed once."""
    units = [u for s in seeds for p in exp.cfg.paradigms for u in paradigm_units(exp, p, s, rates)]
    units += [u for s in seeds for preset in exp.cfg.analysis.ablation for u in ablation_units(exp, preset, s)]
    return unique(exp, units)


def unique(exp: Experiment, units: Iterable[Unit]) -> list[Unit]:
    """The units in order, the first of those that share a vector file kept."""
    seen: dict[Path, Unit] = {}
    for u in units:
        seen.setdefault(unit_vector_file(exp, u), u)
    return list(seen.values())


def first_seed(exp: Experiment, rates: Mapping[str, float]) -> FirstSeed:
    """The first seed's vectors of every paradigm at its rate, each trained only where it is missing, and
    their files relative to the run folder."""
    units = {p: paradigm_units(exp, p, FIRST_SEED, rates) for p in exp.cfg.paradigms}
    vectors = {p: {u.task: trained_vector(exp, u) for u in us} for p, us in units.items()}
    files = {p: {u.task: str(unit_vector_file(exp, u)) for u in us} for p, us in units.items()}
    return FirstSeed(vectors, files)
