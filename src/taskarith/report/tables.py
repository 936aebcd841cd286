"""Markdown tables built from a results dict (docs/results-schema.md). Pure functions, no I/O.

Accuracies are shown as percentages with one decimal, `mean ± sd` over seeds when the run has more than one
seed, the sd a sample sd (ddof 1) taken from the per-seed values (the summaries in results.json hold the
population std). Every number is read from results.json; the only arithmetic is display-level (means and sds
over seeds, the pre-trained mean over tasks, the mean |cos| of a similarity matrix).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from ..merging.methods import BASELINE, MERGE_METHODS
from ..paradigms import PARADIGMS

DASH = "—"
MIB = 2**20


# --- formatting -------------------------------------------------------------------------------

def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def over_seeds(values: Sequence[float], several: bool) -> str:
    """Per-seed accuracies as mean ± sample sd (ddof 1), in percent; the sd only exists with several seeds."""
    mean = pct(float(np.mean(values)))
    return f"{mean} ± {pct(float(np.std(values, ddof=1)))}" if several and len(values) > 1 else mean


def alpha_list(alphas: Iterable[float]) -> str:
    return ", ".join(f"{a:g}" for a in alphas)


def cell(text: object) -> str:
    # A "|" inside a cell would end it early.
    return str(text).replace("|", "\\|")


def table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> str:
    """A markdown table; `align` holds one "l" or "r" per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = [":---" if a == "l" else "---:" for a in align]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(cell(c) for c in line) + " |" for line in lines) + "\n"


# --- reading the results dict ----------------------------------------------------------------

def several_seeds(results: Mapping) -> bool:
    return len(results["seeds"]) > 1


def seed_keys(results: Mapping) -> list[str]:
    return [str(s) for s in results["seeds"]]


def paradigm_names(paradigms: Mapping) -> list[str]:
    """Known paradigms in the registry's (the paper's) order, then any others in file order."""
    known = [p for p in PARADIGMS if p in paradigms]
    return known + [p for p in paradigms if p not in PARADIGMS]


def label(name: str, entry: Mapping | None = None) -> str:
    known = PARADIGMS.get(name)
    return known.label if known else (entry or {}).get("label") or name


def task_names(results: Mapping) -> list[str]:
    return list(results["tasks"])


# --- tables -----------------------------------------------------------------------------------

def addition_table(results: Mapping) -> str:
    """Table 2 analogue: absolute and normalized accuracy of the unified model, and the α chosen."""
    several = several_seeds(results)
    pre = results["pretrained"]["test"]
    rows = [["Pre-trained", pct(float(np.mean([pre[t] for t in task_names(results)]))), DASH, DASH]]
    for name in paradigm_names(results["paradigms"]):
        entry = results["paradigms"][name]
        runs = [entry["seeds"][s]["addition"] for s in seed_keys(results)]
        rows.append([label(name, entry), over_seeds([r["absolute"] for r in runs], several),
                     over_seeds([r["normalized"] for r in runs], several), alpha_list(r["alpha"] for r in runs)])
    return table(["Method", "Absolute (%)", "Normalized (%)", "α chosen"], rows)


TRANSDUCTIVE_MARK = " †"  # the method read the unlabeled test inputs


def merge_label(name: str) -> str:
    if name not in MERGE_METHODS:
        return name
    method = MERGE_METHODS[name]
    return method.label + (TRANSDUCTIVE_MARK if method.needs == "test-inputs" else "")


def merge_density(eval_config: Mapping) -> float | None:
    """The share TIES and DARE keep: as the run set it, or the rule's default (older runs: eval.merge_density)."""
    if "merge_settings" not in eval_config:
        return eval_config.get("merge_density")
    ties = eval_config["merge_settings"].get("ties", {})
    return ties.get("density", MERGE_METHODS["ties"].settings["density"])


def has_merges(results: Mapping) -> bool:
    return any(entry["summary"].get("merges") for entry in results["paradigms"].values())


def merge_cell(runs: Sequence[Mapping], several: bool) -> str:
    """Absolute / normalized accuracy and the α chosen per seed; n/a where the method is not defined."""
    if "not_applicable" in runs[0]:
        return "n/a"
    return (f"{over_seeds([r['absolute'] for r in runs], several)} / "
            f"{over_seeds([r['normalized'] for r in runs], several)} (α {alpha_list(r['alpha'] for r in runs)})")


def merges_table(results: Mapping) -> str:
    """Merge methods × paradigms: the plain sum (task arithmetic) and every other method of the run."""
    several = several_seeds(results)
    names = paradigm_names(results["paradigms"])
    methods = [BASELINE] + list(dict.fromkeys(m for p in names for m in results["paradigms"][p]["summary"]
                                              .get("merges", {})))
    rows = []
    for method in methods:
        row = [merge_label(method)]
        for name in names:
            entry = results["paradigms"][name]
            seeds = [entry["seeds"][s] for s in seed_keys(results)]
            if method == BASELINE:
                row.append(merge_cell([r["addition"] for r in seeds], several))
            elif method not in entry["summary"].get("merges", {}):
                row.append(DASH)
            else:
                row.append(merge_cell([r["merges"][method] for r in seeds], several))
        rows.append(row)
    header = ["Method", *(f"{label(n, results['paradigms'][n])}: absolute / normalized (%)" for n in names)]
    return table(header, rows)


def per_task_table(results: Mapping) -> str:
    """Test accuracy per task: zero-shot, then each paradigm's individual and unified models."""
    several = several_seeds(results)
    tasks = task_names(results)
    rows = [["Pre-trained (zero-shot)", *(pct(results["pretrained"]["test"][t]) for t in tasks)]]
    for name in paradigm_names(results["paradigms"]):
        entry = results["paradigms"][name]
        runs = [entry["seeds"][s] for s in seed_keys(results)]
        rows.append([f"{label(name, entry)} individual",
                     *(over_seeds([r["individual"]["test"][t] for r in runs], several) for t in tasks)])
        rows.append([f"{label(name, entry)} unified",
                     *(over_seeds([r["addition"]["test"][t] for r in runs], several) for t in tasks)])
    return table(["Model", *tasks], rows)


def advantage_table(advantage: Mapping, tasks: Sequence[str]) -> str:
    """Non-linear advantage in percentage points, from analysis.advantage."""
    names = paradigm_names(advantage)
    header = ["Paradigm", *tasks, "Mean"]
    rows = [[label(p), *(pct(advantage[p]["per_task"][t]) for t in tasks), pct(advantage[p]["mean"])]
            for p in names]
    return table(header, rows)


def negation_table(results: Mapping) -> str:
    """Task negation per target task over the seeds that ran it (the first seed in current runs): the
    pre-trained model for reference, then each paradigm."""
    names = [p for p in paradigm_names(results["paradigms"]) if negated_seeds(results["paradigms"][p])]
    reference = results["paradigms"][names[0]]
    pretrained = reference["seeds"][negated_seeds(reference)[0]]["negation"]  # the same in every seed
    rows = []
    for task in task_names(results):
        first = pretrained[task]
        rows.append([task, "Pre-trained", DASH, pct(first["pretrained_target"]), first["control_task"],
                     pct(first["pretrained_control"])])
        for name in names:
            entry = results["paradigms"][name]
            runs = [entry["seeds"][s]["negation"][task] for s in negated_seeds(entry)]
            several = len(runs) > 1
            rows.append([task, label(name, entry), alpha_list(r["alpha"] for r in runs),
                         over_seeds([r["target"] for r in runs], several), runs[0]["control_task"],
                         over_seeds([r["control"] for r in runs], several)])
    return table(["Target task", "Model", "α", "Target (%)", "Control task", "Control (%)"], rows, "llrrlr")


def negated_seeds(entry: Mapping) -> list[str]:
    return [s for s, r in entry["seeds"].items() if r.get("negation")]


def has_negation(results: Mapping) -> bool:
    return any(negated_seeds(e) for e in results["paradigms"].values())


def efficiency_table(efficiency: Mapping) -> str:
    """Table 4 analogue: cost of fine-tuning one task vector, per paradigm. The fine-tune's memory is its
    peak above what the process held just before it; the process's absolute peak is shown beside it."""
    header = ["Paradigm", "Total params", "Trainable params", "Trainable (%)", "Fine-tune memory (MiB)",
              "Process peak (MiB)", "Memory measured as", "s/step", "Fine-tuning time (s)", "Vector size (MiB)"]
    rows = []
    for p in paradigm_names(efficiency):
        e = efficiency[p]
        share, increase = e.get("trainable_share"), e.get("memory_increase_bytes")
        rows.append([label(p), f"{e['total_parameters']:,}", f"{e['trainable_parameters']:,}",
                     DASH if share is None else f"{100 * share:.2f}",
                     DASH if increase is None else f"{increase / MIB:.1f}", f"{e['peak_memory_bytes'] / MIB:.1f}",
                     e["memory_kind"], f"{e['seconds_per_step']:.3f}", f"{e['total_seconds']:.1f}",
                     f"{e['vector_bytes'] / MIB:.2f}"])
    return table(header, rows, "lrrrrrlrrr")


def alpha_ties(results: Mapping) -> tuple[int, int] | None:
    """(ties, choices): how many of task addition's α choices (paradigm × seed) were ties on validation."""
    counts = [r["addition"].get("alpha_ties") for e in results["paradigms"].values() for r in e["seeds"].values()]
    if not counts or any(c is None for c in counts):
        return None
    return sum(c > 1 for c in counts), len(counts)


def timings_table(timings: Mapping) -> str:
    """Seconds per seed for fine-tuning and evaluation, then the analyses and the whole run."""
    rows = [[f"seed {s}", f"{t['finetune_seconds']:.0f}", f"{t['evaluate_seconds']:.0f}",
             f"{t['finetune_seconds'] + t['evaluate_seconds']:.0f}"] for s, t in timings["per_seed"].items()]
    if "lr_search_seconds" in timings:  # seed 0's fine-tunes at the chosen rates are inside it
        rows.insert(0, ["lr search (seed 0)", DASH, DASH, f"{timings['lr_search_seconds']:.0f}"])
    rows.append(["analyses (once)", DASH, DASH, f"{timings['analysis_seconds']:.0f}"])
    rows.append(["whole run", f"{timings['finetune_seconds']:.0f}", f"{timings['evaluate_seconds']:.0f}",
                 f"{timings['total_seconds']:.0f}"])
    return table(["Stage", "Fine-tuning (s)", "Evaluation (s)", "Total (s)"], rows)


def gain_table(results: Mapping, needed: float = 0.05) -> str:
    """Whether fine-tuning was worth doing: each paradigm's smallest gain of individual over zero-shot test
    accuracy (mean over seeds), and the tasks that gain less than `needed`."""
    pre = results["pretrained"]["test"]
    rows = []
    for p in paradigm_names(results["paradigms"]):
        per_task = results["paradigms"][p]["summary"]["per_task"]
        gains = {t: per_task[t]["individual"]["mean"] - pre[t] for t in per_task}
        worst = min(gains, key=gains.__getitem__)
        short = [f"{t} ({100 * g:+.1f})" for t, g in gains.items() if g < needed]
        rows.append([label(p), f"{100 * gains[worst]:+.1f} ({worst})", ", ".join(short) or "none"])
    return table(["Paradigm", "Smallest gain over zero-shot, pp (task)",
                  f"Tasks gaining under {100 * needed:g} pp"], rows, "lrl")


def lr_search_table(results: Mapping) -> str:
    """Each paradigm's mean individual validation accuracy at each candidate rate, and the rate chosen."""
    search = results["lr_search"]
    rates = sorted({float(r) for p in search.values() for r in p["validation"]})
    rows = [[label(p)] + [pct(search[p]["validation"][f"{r:g}"]) if f"{r:g}" in search[p]["validation"] else DASH
                          for r in rates] + [f"{search[p]['chosen']:g}"]
            for p in paradigm_names(search)]
    return table(["Paradigm"] + [f"lr {r:g} (%)" for r in rates] + ["Chosen"], rows, "l" + "r" * len(rates) + "r")
