"""The paper's evaluation protocol on a run's task vectors: each task's own model, task addition and the
other merge methods with α chosen on validation and reported on test, and negation."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..evaluate import (absolute_accuracy, choose_alpha, choose_negation_alpha, normalized_accuracy,
                        tied_alphas)
from ..merging.data import MergeData
from ..merging.merge import merge_vectors
from ..merging.methods import MERGE_METHODS
from ..results_record import CurvePoint, Evaluation, MergeResult, Negation, Splits, Sweep
from ..vectors import TaskVector
from .experiment import SPLITS, Experiment, Split


def alpha_key(alpha: float) -> str:
    return f"{alpha:g}"


def individual_accuracy(exp: Experiment, vectors: Mapping[str, TaskVector]) -> Splits:
    """Each task's accuracy under θ0 + τ_task, on validation and on test."""
    individual: Splits = {"val": {}, "test": {}}
    for t in exp.tasks:
        alone = exp.scores([vectors[t]], [[1.0]], [(t, "val"), (t, "test")])
        for split in SPLITS:
            individual[split][t] = float(alone[(t, split)][0])
    return individual


def alpha_sweep(exp: Experiment, vectors: Sequence[TaskVector], alphas: Sequence[float],
                individual: Splits) -> Sweep:
    """One merged model θ0 + α Σ vectors per α; α chosen on validation, reported on test. With
    `eval.test_curve` off, test is scored at the chosen α only: the curve is validation's."""
    alphas = list(alphas)
    combos = [[a] * len(vectors) for a in alphas]
    splits: tuple[Split, ...] = SPLITS if exp.cfg.eval.test_curve else ("val",)
    swept = exp.scores(vectors, combos, [(t, split) for split in splits for t in exp.tasks])
    curve: dict[str, CurvePoint] = {}
    for i, a in enumerate(alphas):
        merged = {split: {t: float(swept[(t, split)][i]) for t in exp.tasks} for split in splits}
        point: CurvePoint = {"val_abs": absolute_accuracy(merged["val"]),
                             "val_norm": normalized_accuracy(merged["val"], individual["val"])}
        if "test" in merged:
            point["test_abs"] = absolute_accuracy(merged["test"])
            point["test_norm"] = normalized_accuracy(merged["test"], individual["test"])
        curve[alpha_key(a)] = point
    val_scores = [curve[alpha_key(a)]["val_norm"] for a in alphas]
    alpha = choose_alpha(alphas, val_scores)
    i = alphas.index(alpha)
    if exp.cfg.eval.test_curve:
        test = {t: float(swept[(t, "test")][i]) for t in exp.tasks}
    else:
        chosen = exp.scores(vectors, [combos[i]], [(t, "test") for t in exp.tasks])
        test = {t: float(chosen[(t, "test")][0]) for t in exp.tasks}
    return {"alpha": alpha, "alpha_ties": tied_alphas(val_scores), "curve": curve, "test": test,
            "absolute": absolute_accuracy(test), "normalized": normalized_accuracy(test, individual["test"])}


def evaluate_vectors(exp: Experiment, vectors: Mapping[str, TaskVector], seed: int = 0) -> Evaluation:
    """Individual accuracy, task addition (one α for the sum, on eval.alphas) and each of `eval.merges` (one α
    for the merged vector, on the method's own grid); `seed` is the run's seed index the vectors belong to."""
    alphas = exp.cfg.eval.alphas
    individual = individual_accuracy(exp, vectors)
    ordered = [vectors[t] for t in exp.tasks]
    result: Evaluation = {"individual": individual,
                          "addition": alpha_sweep(exp, ordered, alphas, individual)}
    if exp.cfg.eval.merges:
        result["merges"] = {name: evaluate_merge(exp, ordered, name, individual, seed) for name in exp.cfg.eval.merges}
    return result


def evaluate_merge(exp: Experiment, ordered: Sequence[TaskVector], name: str,
                   individual: Splits, seed: int = 0) -> MergeResult:
    """The method's merged vector scaled on its own grid (eval.merge_alphas, else the registry's), or why the
    method is not defined for these vectors' paradigm."""
    method = MERGE_METHODS[name]
    paradigm = ordered[0].meta.get("paradigm")
    if paradigm not in method.paradigms:
        return {"not_applicable": f"{method.label} is not defined for the {paradigm} paradigm"}
    grid = exp.cfg.eval.merge_alphas.get(name, list(method.alphas))
    merge_seed = ordered[0].meta.get("train_config", {}).get("seed", 0)
    data = merge_data(exp, seed) if method.needs != "vectors" else None
    # the method's own settings by name, checked with the config before the run began (pipeline.check_merges)
    settings: dict[str, Any] = dict(exp.cfg.eval.merge_settings.get(name, {}))
    merged = merge_vectors(ordered, name, seed=merge_seed, data=data, **settings)
    return alpha_sweep(exp, [merged], grid, individual)


def merge_data(exp: Experiment, seed: int) -> MergeData:
    """What the data methods read, task by task in the run's order: seed's training split (Fisher, RegMean)
    and the unlabeled test inputs (AdaMerging, transductive)."""
    splits = exp.data(seed)
    return MergeData(exp.model, [exp.heads[t] for t in exp.tasks],
                     train_inputs=[splits[t].train.inputs for t in exp.tasks],
                     train_labels=[splits[t].train.labels for t in exp.tasks],
                     test_inputs=[splits[t].test.inputs for t in exp.tasks],
                     settings=exp.cfg.eval.merge_data, progress=exp.progress)


def negation_control(exp: Experiment, target: str) -> str:
    """The task whose accuracy must hold while `target` is negated: eval.negation_control, else the first other."""
    control = exp.cfg.eval.negation_control
    if control is None or control == target:
        control = next(t for t in exp.tasks if t != target)
    return control


def negate(exp: Experiment, tv: TaskVector, target: str, pretrained: Splits) -> Negation:
    """Ilharco's protocol: θ0 − α τ; α lowers the target most while control keeps >= negation_keep of θ0's."""
    control = negation_control(exp, target)
    alphas = exp.cfg.eval.alphas
    val = exp.scores([tv], [[-a] for a in alphas], [(target, "val"), (control, "val")])
    alpha = choose_negation_alpha(alphas, val[(target, "val")], val[(control, "val")], pretrained["val"][control],
                                  exp.cfg.eval.negation_keep)
    test = exp.scores([tv], [[-alpha]], [(target, "test"), (control, "test")])
    return {
        "control_task": control,
        "alpha": alpha,
        "target": float(test[(target, "test")][0]),
        "control": float(test[(control, "test")][0]),
        "pretrained_target": pretrained["test"][target],
        "pretrained_control": pretrained["test"][control],
    }


def negate_each(exp: Experiment, vectors: Mapping[str, TaskVector], pretrained: Splits) -> dict[str, Negation]:
    """Every task negated in turn."""
    return {t: negate(exp, vectors[t], t, pretrained) for t in exp.tasks}
