"""`taskarith run`: config → data and model → fine-tune → task vectors → merge and evaluate → results.json.

Finished task vectors are reused and interrupted fine-tunes resume from their checkpoints, so a run
started again picks up where it stopped. The report is drawn from results.json alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import time
from pathlib import Path

import numpy as np

from . import __version__
from .analysis.disentangle import resolve_pair
from .analysis.suite import run_analyses
from .atomic import remove_temp_files, write_json
from .config import ExperimentConfig
from .data import TaskData, resolve_task
from .errors import TaskarithError
from .evaluate import (EvalSet, absolute_accuracy, accuracy_table, choose_alpha, choose_negation_alpha,
                       make_evalset, normalized_accuracy, tied_alphas)
from .finetune.selection import select
from .finetune.trainer import finetune, resolve_paradigm
from .lock import run_lock
from .lr_search import search_learning_rates
from .merge import merge_vectors
from .models import load_model
from .models.base import Family
from .models.heads import zero_shot_head
from .summary import summarize
from .safety import check_name, is_plain_name
from .vectors import TaskVector

RESULTS_SCHEMA = 1
LABELS = {"nonlinear": "Non-linear", "linear": "NTK linearization", "attention": "Attention-only"}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def vector_path(seed: int, paradigm: str, task: str, preset: str | None = None, lr: float | None = None) -> Path:
    """Where a run keeps a task vector, relative to the run folder; every part is a plain name.

    `lr` is given for a rate other than train.lr (an lr_search candidate), which gets a folder of its own."""
    label = paradigm if preset is None else f"{paradigm}-{preset}"
    if not is_plain_name(label):
        # a regex:PATTERN preset may hold "/" or "..": its folder is named by a digest instead
        label = f"{paradigm}-regex-{hashlib.sha256(preset.encode()).hexdigest()[:16]}"
    if lr is not None:
        label = f"{label}-lr{lr:g}"
    return Path("vectors") / f"seed{seed}" / label / check_name(task, "task name") / "vector.safetensors"


def _alpha_key(alpha: float) -> str:
    return f"{alpha:g}"


class Experiment:
    """One run folder: the loaded model, tasks, heads and evaluation sets, shared by every stage."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, *, progress: bool = True, log=print):
        self.cfg, self.run_dir, self.progress, self.log = cfg, Path(run_dir), progress, log
        self.family: Family = load_model(cfg.model)
        self._data: dict[tuple[str, int], TaskData] = {}
        self._base_acc: dict[tuple[str, str], tuple[list, float]] = {}  # (task, split) -> (labels, θ0's accuracy)
        self.sources: dict[str, str] = {}  # task name -> its config entry (a name or a file path)
        for entry in cfg.data.tasks:
            data = self._load(entry, 0)
            if data.name in self.sources:
                raise TaskarithError(f"data.tasks: task {data.name!r} is listed twice")
            self.sources[data.name] = entry
            self._data[(data.name, 0)] = data
        self.tasks = list(self.sources)
        base = self.data(0)
        self.heads = {t: zero_shot_head(self.family, base[t].class_names, base[t].templates) for t in self.tasks}
        bs = cfg.eval.batch_size
        self.evalsets: dict[str, dict[str, EvalSet]] = {
            t: {split: make_evalset(self.family, getattr(base[t], split).texts, getattr(base[t], split).labels, bs)
                for split in ("val", "test")}
            for t in self.tasks
        }

    def _load(self, entry: str, seed: int) -> TaskData:
        d = self.cfg.data
        return resolve_task(entry, seed=seed, root=d.root, test_fraction=d.test_fraction,
                            val_fraction=d.val_fraction, val_cap=d.val_cap, caps=dict(d.caps) or None)

    def data(self, seed: int) -> dict[str, TaskData]:
        """Every task's splits for a seed: test and validation are fixed, the train cap follows the seed."""
        for t, entry in self.sources.items():
            if (t, seed) not in self._data:
                self._data[(t, seed)] = self._load(entry, seed)
        return {t: self._data[(t, seed)] for t in self.tasks}

    # --- fine-tuning -------------------------------------------------------------------------
    def vector_file(self, seed: int, paradigm: str, task: str, preset: str | None = None,
                    lr: float | None = None) -> Path:
        """The vector's path relative to the run folder; train.lr's vectors keep the plain layout."""
        return vector_path(seed, paradigm, task, preset, None if lr in (None, self.cfg.train.lr) else lr)

    def vector(self, seed: int, paradigm: str, task: str, preset: str | None = None,
               lr: float | None = None) -> TaskVector:
        par = resolve_paradigm(paradigm, preset)
        path = self.run_dir / self.vector_file(seed, paradigm, task, preset, lr)
        folder = path.parent
        train = self.cfg.train.model_copy(update={"seed": self.cfg.train.seed + seed,
                                                  "lr": self.cfg.train.lr if lr is None else lr})
        if path.exists():
            tv = TaskVector.load(path)
            if tv.meta.get("train_config") == train.model_dump() and tv.meta.get("preset") == par.preset:
                tv.check_base(self.family)
                # a run killed between saving the vector and removing its checkpoint leaves one behind
                (folder / "checkpoint.safetensors").unlink(missing_ok=True)
                return tv
            self.log(f"{path}: made with another training config; training again")
            path.unlink()
        data = self.data(seed)[task]
        return finetune(self.family, data.train.texts, data.train.labels, self.heads[task], par, train, folder,
                        task=data.name, progress=self.progress)

    # --- evaluation --------------------------------------------------------------------------
    def _base_accuracy(self, task: str, split: str) -> float:
        """θ0's accuracy on a split, computed once: an all-zero combination is θ0 itself (in-place application
        and the affine sweep both reproduce it bit for bit)."""
        evalset = self.evalsets[task][split]
        labels, acc = self._base_acc.get((task, split), (None, 0.0))
        if labels is not evalset.labels:  # first use, or the split's labels were replaced
            acc = float(accuracy_table(self.family, [], [[]], [evalset], [self.heads[task]])[0, 0])
            self._base_acc[(task, split)] = (evalset.labels, acc)
        return acc

    def scores(self, vectors, combos, sets: list[tuple[str, str]]) -> dict[tuple[str, str], np.ndarray]:
        """Accuracy per combination on each (task, split), every split scored under one application of each
        combination."""
        zero = np.array([not any(c) for c in combos], dtype=bool)
        out = {key: np.empty(len(combos)) for key in sets}
        if zero.any():
            for key in sets:
                out[key][zero] = self._base_accuracy(*key)
        rest = [c for c, z in zip(combos, zero) if not z]
        if rest:
            table = accuracy_table(self.family, vectors, rest, [self.evalsets[t][s] for t, s in sets],
                                   [self.heads[t] for t, _ in sets])
            for key, row in zip(sets, table):
                out[key][~zero] = row
        return out

    def pretrained(self) -> dict:
        return {split: {t: self._base_accuracy(t, split) for t in self.tasks} for split in ("val", "test")}

    def evaluate(self, vectors: dict[str, TaskVector], pretrained: dict) -> dict:
        alphas = self.cfg.eval.alphas
        individual: dict[str, dict[str, float]] = {"val": {}, "test": {}}
        for t in self.tasks:
            alone = self.scores([vectors[t]], [[1.0]], [(t, "val"), (t, "test")])
            for split in individual:
                individual[split][t] = float(alone[(t, split)][0])
        ordered = [vectors[t] for t in self.tasks]
        result = {"individual": individual,
                  "addition": self._unified(ordered, [[a] * len(ordered) for a in alphas], individual)}
        if self.cfg.eval.merges:
            seed = next(iter(vectors.values())).meta.get("train_config", {}).get("seed", 0)
            result["merges"] = {
                rule: self._unified([merge_vectors(ordered, rule, density=self.cfg.eval.merge_density, seed=seed)],
                                    [[a] for a in alphas], individual)
                for rule in self.cfg.eval.merges}
        if self.cfg.eval.negation and len(self.tasks) > 1:
            result["negation"] = {t: self.negate(vectors[t], t, pretrained) for t in self.tasks}
        return result

    def _unified(self, vectors: list[TaskVector], combos: list[list[float]], individual: dict) -> dict:
        """One model per α (combos[i] scales `vectors` for alphas[i]); α chosen on validation, reported on test.

        With `eval.test_curve` off, test is scored at the chosen α only: the curve is validation's."""
        alphas = self.cfg.eval.alphas
        splits = ("val", "test") if self.cfg.eval.test_curve else ("val",)
        swept = self.scores(vectors, combos, [(t, split) for split in splits for t in self.tasks])
        curve = {}
        for i, a in enumerate(alphas):
            point = {}
            for split in splits:
                unified = {t: float(swept[(t, split)][i]) for t in self.tasks}
                point[f"{split}_abs"] = absolute_accuracy(unified)
                point[f"{split}_norm"] = normalized_accuracy(unified, individual[split])
            curve[_alpha_key(a)] = point
        val_scores = [curve[_alpha_key(a)]["val_norm"] for a in alphas]
        alpha = choose_alpha(alphas, val_scores)
        i = alphas.index(alpha)
        if self.cfg.eval.test_curve:
            unified_test = {t: float(swept[(t, "test")][i]) for t in self.tasks}
        else:
            chosen = self.scores(vectors, [combos[i]], [(t, "test") for t in self.tasks])
            unified_test = {t: float(chosen[(t, "test")][0]) for t in self.tasks}
        return {"alpha": alpha, "alpha_ties": tied_alphas(val_scores), "curve": curve, "test": unified_test,
                "absolute": absolute_accuracy(unified_test),
                "normalized": normalized_accuracy(unified_test, individual["test"])}

    def negate(self, tv: TaskVector, target: str, pretrained: dict) -> dict:
        """Ilharco's protocol: θ0 − α τ; α lowers the target most while control keeps >= 95%."""
        control = self.cfg.eval.negation_control
        if control is None or control == target:
            others = [t for t in self.tasks if t != target]
            control = others[0]
        alphas = self.cfg.eval.alphas
        val = self.scores([tv], [[-a] for a in alphas], [(target, "val"), (control, "val")])
        alpha = choose_negation_alpha(alphas, val[(target, "val")], val[(control, "val")], pretrained["val"][control],
                                      self.cfg.eval.negation_keep)
        test = self.scores([tv], [[-alpha]], [(target, "test"), (control, "test")])
        return {
            "control_task": control,
            "alpha": alpha,
            "target": float(test[(target, "test")][0]),
            "control": float(test[(control, "test")][0]),
            "pretrained_target": pretrained["test"][target],
            "pretrained_control": pretrained["test"][control],
        }


def run_experiment(cfg: ExperimentConfig, run_dir: str | Path, *, seeds: int | None = None,
                   progress: bool = True, log=print) -> Path:
    """Run everything the config asks for and write results.json; returns its path."""
    with run_lock(run_dir):
        remove_temp_files(run_dir)  # left by writes of a killed run; the lock says no writer is active
        return _run(cfg, Path(run_dir), seeds, progress, log)


def _run(cfg: ExperimentConfig, run_dir: Path, seeds: int | None, progress: bool, log) -> Path:
    started = time.perf_counter()
    n_seeds = seeds or cfg.seeds
    exp = Experiment(cfg, run_dir, progress=progress, log=log)
    for pair in cfg.analysis.disentangle_pairs:  # a typo fails before any fine-tuning
        resolve_pair(exp, pair)
    for preset in cfg.analysis.ablation:
        select(exp.family.net, preset)
    control = cfg.eval.negation_control
    if control is not None and control not in exp.tasks:
        raise TaskarithError(f"eval.negation_control = {control!r}: not a task of this run; expected one of "
                             f"{', '.join(exp.tasks)}")
    log(f"model {cfg.model.name}; tasks {', '.join(exp.tasks)}; paradigms {', '.join(cfg.paradigms)}; "
        f"{n_seeds} seed(s)")
    pretrained = exp.pretrained()
    timings: dict = {"finetune_seconds": 0.0, "evaluate_seconds": 0.0,
                     "per_seed": {str(s): {"finetune_seconds": 0.0, "evaluate_seconds": 0.0} for s in range(n_seeds)}}
    lr_search, rates = None, {p: cfg.train.lr for p in cfg.paradigms}
    if cfg.lr_search:
        searched = time.perf_counter()
        lr_search = search_learning_rates(exp, log=log)  # seed 0's vectors at each chosen rate are cached
        rates = {p: lr_search[p]["chosen"] for p in cfg.paradigms}
        timings["lr_search_seconds"] = time.perf_counter() - searched
    paradigms: dict[str, dict] = {}
    all_vectors: dict[str, dict[int, dict[str, TaskVector]]] = {}
    for paradigm in cfg.paradigms:
        entry = {"label": LABELS[paradigm], "preset": resolve_paradigm(paradigm).preset, "lr": rates[paradigm],
                 "seeds": {}}
        all_vectors[paradigm] = {}
        for seed in range(n_seeds):
            t0 = time.perf_counter()
            vectors = {t: exp.vector(seed, paradigm, t, lr=rates[paradigm]) for t in exp.tasks}
            t1 = time.perf_counter()
            log(f"evaluating {paradigm} (seed {seed})")
            result = exp.evaluate(vectors, pretrained)
            for bucket in (timings, timings["per_seed"][str(seed)]):
                bucket["finetune_seconds"] += t1 - t0
                bucket["evaluate_seconds"] += time.perf_counter() - t1
            result["training"] = {t: {**tv.meta["training"], "steps": tv.meta["train_config"]["steps"]}
                                  for t, tv in vectors.items()}
            result["vectors"] = {t: str(exp.vector_file(seed, paradigm, t, lr=rates[paradigm])) for t in exp.tasks}
            entry["seeds"][str(seed)] = result
            all_vectors[paradigm][seed] = vectors
            entry["selection"] = next(iter(vectors.values())).meta["selection"]
        entry["summary"] = summarize(entry["seeds"], exp.tasks)
        paradigms[paradigm] = entry
        log(f"{LABELS[paradigm]}: absolute {entry['summary']['absolute']['mean']:.1%}, "
            f"normalized {entry['summary']['normalized']['mean']:.1%}")

    analysed = time.perf_counter()
    analysis = run_analyses(exp, all_vectors, paradigms, log=log)
    timings["analysis_seconds"] = time.perf_counter() - analysed
    timings["total_seconds"] = time.perf_counter() - started
    results = {
        "schema": RESULTS_SCHEMA,
        "taskarith_version": __version__,
        "git_commit": _git_commit(),
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": cfg.model_dump(mode="json"),
        "model": {"family": cfg.model.family, "name": cfg.model.name, "base_hash": exp.family.fingerprint(),
                  "parameters": sum(p.numel() for p in exp.family.net.parameters())},
        "seeds": list(range(n_seeds)),
        "tasks": {t: {"classes": list(d.class_names), "templates": list(d.templates), "sizes": d.sizes()}
                  for t, d in exp.data(0).items()},
        "pretrained": pretrained,
        "paradigms": paradigms,
        **({"lr_search": lr_search} if lr_search else {}),
        "analysis": analysis,
        "timings": timings,
    }
    path = run_dir / "results.json"
    write_json(path, results)
    return path
