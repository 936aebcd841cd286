"""A run's shared state: the config, the run folder, the loaded model, the tasks with their frozen heads and
tokenized evaluation sets, and scoring under coefficient combinations of task vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from ..config import ExperimentConfig
from ..data import SplitSpec, TaskData, resolve_task
from ..groundwork.errors import TaskarithError
from ..evaluate import EvalSet, accuracy_table, make_evalset
from ..models import load_model
from ..models.base import Model
from ..models.heads import zero_shot_head
from ..results_record import Splits
from ..vectors import TaskVector

Log = Callable[[str], None]
Split = Literal["val", "test"]
SPLITS: tuple[Split, ...] = ("val", "test")


class Experiment:
    """Everything the stages share, built once per process and only read afterwards."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, *, progress: bool = True, log: Log = print):
        self.cfg, self.run_dir, self.progress, self.log = cfg, Path(run_dir), progress, log
        self.model: Model = load_model(cfg.model)
        self._data: dict[tuple[str, int], TaskData] = {}
        self._base_accuracy: dict[tuple[str, str], tuple[list, float]] = {}  # (task, split) -> (labels, θ0's)
        self.sources: dict[str, str] = {}  # task name -> its config entry (a name or a file path)
        for entry in cfg.data.tasks:
            data = self._load(entry, 0)
            if data.name in self.sources:
                raise TaskarithError(f"data.tasks: task {data.name!r} is listed twice")
            self.sources[data.name] = entry
            self._data[(data.name, 0)] = data
        self.tasks = list(self.sources)
        base = self.data(0)
        self.heads = {t: zero_shot_head(self.model, base[t].class_names, base[t].templates) for t in self.tasks}
        self.evalsets: dict[str, dict[str, EvalSet]] = {
            t: {split: make_evalset(self.model, getattr(base[t], split).inputs, getattr(base[t], split).labels,
                                    cfg.eval.batch_size)
                for split in SPLITS}
            for t in self.tasks
        }

    def _load(self, entry: str, seed: int) -> TaskData:
        d = self.cfg.data
        split = SplitSpec(seed=seed, test_fraction=d.test_fraction, val_fraction=d.val_fraction, val_cap=d.val_cap,
                          caps={part: cap for part, cap in d.caps.items()} or None)
        return resolve_task(entry, root=d.root, split=split)

    def data(self, seed: int) -> dict[str, TaskData]:
        """Every task's splits for a seed: test and validation are fixed, the train cap follows the seed."""
        for t, entry in self.sources.items():
            if (t, seed) not in self._data:
                self._data[(t, seed)] = self._load(entry, seed)
        return {t: self._data[(t, seed)] for t in self.tasks}

    def base_accuracy(self, task: str, split: str) -> float:
        """θ0's accuracy on a split, computed once: an all-zero combination is θ0 itself (in-place application
        and the affine sweep both reproduce it bit for bit)."""
        evalset = self.evalsets[task][split]
        labels, acc = self._base_accuracy.get((task, split), (None, 0.0))
        if labels is not evalset.labels:  # first use, or the split's labels were replaced
            acc = float(accuracy_table(self.model, [], [[]], [evalset], [self.heads[task]])[0, 0])
            self._base_accuracy[(task, split)] = (evalset.labels, acc)
        return acc

    def scores(self, vectors: Sequence[TaskVector], combos: Sequence[Sequence[float]],
               sets: list[tuple[str, str]]) -> dict[tuple[str, str], np.ndarray]:
        """Accuracy per combination on each (task, split), every split scored under one application of each
        combination."""
        zero = np.array([not any(c) for c in combos], dtype=bool)
        out = {key: np.empty(len(combos)) for key in sets}
        if zero.any():
            for key in sets:
                out[key][zero] = self.base_accuracy(*key)
        rest = [c for c, z in zip(combos, zero) if not z]
        if rest:
            table = accuracy_table(self.model, vectors, rest, [self.evalsets[t][s] for t, s in sets],
                                   [self.heads[t] for t, _ in sets])
            for key, row in zip(sets, table):
                out[key][~zero] = row
        return out

    def pretrained(self) -> Splits:
        """θ0's accuracy on every task, on validation and on test."""
        return {"val": {t: self.base_accuracy(t, "val") for t in self.tasks},
                "test": {t: self.base_accuracy(t, "test") for t in self.tasks}}
