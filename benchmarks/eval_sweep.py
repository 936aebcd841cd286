"""A 21-point α sweep of task addition over 2 tasks on the embedded model: the naive way (one full
evaluation per α, the model rebuilt from disk each time, fixed padding) against taskarith's, side by
side in one process, for linear and non-linear vectors. Ends with one JSON line of its figures."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from torch.func import jvp

import common
from taskarith.evaluate import accuracy_table, make_evalset
from taskarith.training.selection import select
from taskarith.vectors import TaskVector

ALPHAS = [round(0.05 * i, 2) for i in range(21)]


def naive_sweep(paths: list[Path], linear: bool, sets: list[tuple], heads: list[torch.Tensor], batch: int) -> list:
    """What the reference scripts do: per α, reload the model and vectors and evaluate from scratch."""
    curve = []
    for alpha in ALPHAS:
        model = common.model()
        vectors = [TaskVector.load(p) for p in paths]
        names = vectors[0].names
        params = model.named_weights()
        delta = {n: alpha * sum(v.tensors[n] for v in vectors) for n in names}
        if not linear:
            state = model.net.state_dict()
            model.net.load_state_dict({**state, **{n: state[n] + delta[n] for n in names}})
        accs = []
        for (texts, labels, _, _), head in zip(sets, heads):
            correct = 0
            for i in range(0, len(texts), batch):
                tok = model.tokenizer(texts[i:i + batch], padding="max_length", truncation=True,
                                       max_length=model.max_length, return_tensors="pt")
                b = {"input_ids": tok["input_ids"], "attention_mask": tok["attention_mask"]}
                with torch.no_grad():
                    if linear:
                        theta0 = {n: params[n].detach() for n in names}
                        f0, tangent = jvp(lambda p: model.represent(b, p), (theta0,), (delta,))
                        rep = f0 + tangent
                    else:
                        rep = model.represent(b)
                correct += int((model.logits(rep, head).argmax(-1) == torch.tensor(labels[i:i + batch])).sum())
            accs.append(correct / len(texts))
        curve.append(accs)
    return curve


def ours_sweep(model, vectors, sets, heads, batch: int) -> list:
    evalsets = [make_evalset(model, texts, labels, batch) for texts, labels, _, _ in sets]
    table = accuracy_table(model, vectors, [[a] * len(vectors) for a in ALPHAS], evalsets, heads)
    return [[float(acc[i]) for acc in table] for i in range(len(ALPHAS))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs=2, default=["trec", "sms"])
    ap.add_argument("--examples", type=int, default=96, help="test examples per task")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    common.setup_threads()

    model = common.model()
    sets = [common.task_split(t, args.examples) for t in args.tasks]
    heads = [common.head_for(model, s[2], s[3]) for s in sets]
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for paradigm in ("linear", "nonlinear"):
            vectors = [common.random_vector(model, paradigm, t, seed=i) for i, t in enumerate(args.tasks)]
            paths = [Path(tmp) / f"{paradigm}-{v.meta['task']}.safetensors" for v in vectors]
            for v, path in zip(vectors, paths):
                v.save(path)
            t_ours, ours = common.timed(lambda: ours_sweep(model, vectors, sets, heads, args.batch))
            t_naive, naive = common.timed(lambda: naive_sweep(paths, paradigm == "linear", sets, heads, args.batch))
            worst = max(abs(a - b) for ra, rb in zip(ours, naive) for a, b in zip(ra, rb))
            figures[paradigm] = {"naive_s": t_naive, "ours_s": t_ours, "speedup": t_naive / t_ours,
                                 "max_accuracy_difference": worst}
            print(f"{paradigm:10} naive {t_naive:7.1f} s   taskarith {t_ours:6.1f} s   speed-up {t_naive / t_ours:5.1f}x"
                  f"   (accuracy_table agree to {worst:.3g})")
    selected = select(model.net, "full").count
    print(json.dumps({"benchmark": "eval_sweep", "alphas": len(ALPHAS), "tasks": args.tasks,
                      "examples_per_task": args.examples, "parameters": selected, **figures}))


if __name__ == "__main__":
    main()
