"""Assembles report.md from a results dict. Each section appears only when its data is in results.json.

Figures are drawn through the `draw(name, figure_function, *args)` callback, which writes
figures/<name>.png and returns the path to put in the markdown (relative to report.md); keeping the
drawing behind a callback lets the sections decide what to show without doing any I/O themselves.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

from . import analysis_tables, figures, tables
from .checks import protocol_checks
from .claims import paper_claims
from .tables import label, paradigm_names

Draw = Callable[..., str]


def slug(text: str) -> str:
    """A file-name-safe form of a task, pair or paradigm name."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)


def image(alt: str, path: str) -> str:
    return f"![{alt}]({path})\n"


def header(results: Mapping) -> str:
    name = results.get("config", {}).get("name", "run")
    model = results["model"]
    total = results.get("timings", {}).get("total_seconds")
    facts = [
        f"**Model:** {model['name']} ({model['family']})",
        f"**Tasks:** {', '.join(tables.task_names(results))}",
        f"**Seeds:** {', '.join(str(s) for s in results['seeds'])}",
        f"**taskarith:** {results.get('taskarith_version', tables.DASH)}",
        f"**Git commit:** {results.get('git_commit') or 'unknown'}",
        f"**Created:** {results.get('created', tables.DASH)}",
        f"**Total wall time:** {tables.DASH if total is None else f'{total:.1f} s ({total / 60:.1f} min)'}",
    ]
    return f"# Task arithmetic report: {name}\n\n" + " · ".join(facts) + "\n" + pooled(results)


def pooled(results: Mapping) -> str:
    """Where a pooled record's seeds were run: each piece's seeds and commit."""
    pieces = results.get("pooled_from")
    if not pieces:
        return ""
    rows = [[p["run"], ", ".join(map(str, p["seeds"])), p.get("git_commit") or "unknown",
             p.get("created") or tables.DASH] for p in pieces]
    return ("\nPooled with `taskarith results pool` from the runs below; the commit above is the pooling's.\n\n"
            + tables.table(["Run", "Seeds", "Git commit", "Created"], rows, "llll"))


def addition(results: Mapping) -> str:
    seeds = "mean ± sd over seeds, sample sd (ddof 1); " if tables.several_seeds(results) else ""
    return ("## Task addition\n\n"
            "The unified model adds every task vector scaled by one α. Absolute accuracy is the mean test "
            "accuracy over tasks; normalized accuracy divides each task's accuracy by that of its own "
            f"fine-tuned model before averaging ({seeds}Table 2 of the paper).\n\n"
            + tables.addition_table(results)
            + "\nα was chosen on the validation splits only (highest normalized validation accuracy); "
              "test accuracy played no part in the choice.\n")


def claims(results: Mapping) -> str:
    rows = [[c.claim, c.paper, c.ours, c.test, c.paper_effect, f"**{c.verdict}**"] for c in paper_claims(results)]
    return ("## Claims of the paper\n\n"
            "Each claim of the paper, its figure for CLIP ViT-B/32, ours with its 95% interval and n, the test, "
            "whether the paper's own effect lies inside our interval, and the verdict: *holds*, *does not "
            "hold* or *unresolved* by a paired test (the rule is in the Protocol section). A claim the run "
            "cannot measure is *not measured*, with why.\n\n"
            + tables.table(["Claim", "Paper (ViT-B/32)", "Ours", "Test", "Paper's effect", "Verdict"], rows,
                           "llllll"))


def checks(results: Mapping) -> str:
    rows = [[c.claim, c.paper, c.ours, c.test, f"**{c.verdict}**"] for c in protocol_checks(results)]
    return ("## Checks of the protocol, and measures of our own\n\n"
            "Not claims of the paper: whether the protocol did what it should on this data, and what we "
            "measure beyond the paper. A *note* marks a choice at the edge of its grid, which makes the "
            "number a bound.\n\n"
            + tables.table(["Check", "Expected", "Ours", "Over", "Result"], rows, "lllll"))


STATISTICS = (
    "**Statistics.** A comparison of two methods is a paired test: the mean difference, oriented so that "
    "positive is the paper's direction, with its two-sided 95% t-interval (sample sd, ddof 1) and n, over seeds "
    "(every seed shares the splits), or over tasks or task pairs where an analysis ran on the first seed only "
    "(task pairs share tasks, so those are not independent). *holds*: significant at 5% in the paper's "
    "direction; *does not hold*: significant against it; *unresolved*: not significant. Table 2's six "
    "comparisons form one family and Table 5's three another, each corrected by Holm's step-down method: the "
    "verdict reads the adjusted p-value, and the interval shown is the unadjusted 95% one. One value, or "
    "differences without spread, allow no test. A row of two comparisons holds only when both hold. Every ± "
    "in the tables is a sample sd over seeds.")


def protocol(results: Mapping) -> str:
    train = results.get("config", {}).get("train")
    if not train:
        return "## Protocol\n\n" + STATISTICS + "\n"
    ties = tables.alpha_ties(results)
    tie_text = "" if ties is None else (
        f" Task addition's α was a tie on validation in {ties[0]} of {ties[1]} choices (paradigm × seed); a tie "
        "goes to the smallest tied α.")
    return ("## Protocol\n\n"
            + _rates(results, train) + f": {train['steps']} steps of batch {train['batch_size']}, AdamW with "
            f"weight decay {train['weight_decay']:g} toward {_DECAY[train.get('decay_toward')]}, cosine "
            f"schedule with {train['warmup_steps']} warm-up steps, gradient clipping at {train['grad_clip']}. "
            "Every table in this report comes from this one protocol." + tie_text + "\n\n" + STATISTICS + "\n\n"
            + (tables.lr_search_table(results) + "\n" if results.get("lr_search") else "")
            + tables.gain_table(results))


def _rates(results: Mapping, train: Mapping) -> str:
    if not results.get("lr_search"):
        return f"Every paradigm was fine-tuned with one learning rate, {train['lr']:g}, as in the paper"
    chosen = ", ".join(f"{tables.label(p)} {s['chosen']:g}" for p, s in results["lr_search"].items())
    return (f"Each paradigm was fine-tuned at its own learning rate, **not the paper's single rate**: the "
            f"candidate with the best mean individual validation accuracy of seed 0 (ties keep {train['lr']:g}; "
            f"test is never read), here {chosen}. The table below gives the search. All used")


_DECAY = {"zero": "zero (θ decays; for the linearized model θ0 + τ, the paper's choice)",
          "base": "θ0 (τ decays)",
          None: "zero for what each paradigm trains (θ, but τ when linearized; runs before train.decay_toward)"}


def timings(results: Mapping) -> str:
    t = results.get("timings") or {}
    if "per_seed" not in t:
        return ""
    return ("## Wall time\n\n"
            "Seconds of the run, split by stage; analyses run once, on the first seed's vectors.\n\n"
            + tables.timings_table(t))


def merges(results: Mapping) -> str:
    if not tables.has_merges(results):
        return ""
    density = tables.merge_density(results.get("config", {}).get("eval", {}))
    return ("## Merge rules\n\n"
            "Each paradigm's task vectors merged by each method, then scaled by one α chosen on validation from "
            "the method's own grid (task arithmetic: the run's α grid). Each cell gives test accuracy, absolute / "
            "normalized, and the α chosen per seed; n/a marks a method not defined for that paradigm. TIES keeps "
            "each vector's largest entries, elects a sign per entry and averages the entries that agree; DARE drops "
            "entries at random and rescales the rest"
            + (f" (both keep a share {density:g} of the entries)" if density is not None else "") + ". "
            + data_methods(results) + "\n\n" + tables.merges_table(results))


def data_methods(results: Mapping) -> str:
    """What the merge methods that read data read, for the methods the run has."""
    run = {m for entry in results["paradigms"].values() for m in entry["summary"].get("merges", {})}
    settings = results.get("config", {}).get("eval", {}).get("merge_data", {})
    text = []
    if run & {"fisher", "regmean"}:
        text.append(f"Fisher merging and RegMean read training examples ({settings.get('fisher_examples', '?')} and "
                    f"{settings.get('regmean_examples', '?')} per task) at each task's fine-tuned weights, so they "
                    "are n/a for linearized vectors.")
    if "adamerging" in run:
        text.append(f"AdaMerging{tables.TRANSDUCTIVE_MARK} is transductive: it learns a coefficient per task and "
                    f"layer by minimising prediction entropy on the unlabeled test inputs ({settings.get('steps', '?')}"
                    f" Adam steps at {settings.get('lr', '?')}, batches of {settings.get('batch_size', '?')} per "
                    "task), and is applied as learned (α = 1).")
    return " ".join(text)


def per_task(results: Mapping) -> str:
    return ("## Per-task accuracies\n\n"
            "Test accuracy (%) per task: zero-shot, each task's own fine-tuned model (individual), and the "
            "unified model at the chosen α.\n\n" + tables.per_task_table(results))


def individual(results: Mapping, draw: Draw) -> str:
    paradigms = results["paradigms"]
    if "nonlinear" not in paradigms or len(paradigms) < 2:
        return ""
    path = draw("individual_vs_nonlinear", figures.individual_vs_nonlinear, paradigms)
    text = ("## Single-task accuracy against non-linear fine-tuning\n\n"
            "Each point is one task: its individual test accuracy with non-linear fine-tuning (x) and with "
            "another paradigm (y); below the diagonal, non-linear fine-tuning is better (Figure 5 of the "
            "paper).\n\n" + image("Individual accuracy vs non-linear", path))
    advantage = results.get("analysis", {}).get("advantage")
    if advantage:
        text += ("\nNon-linear advantage: non-linear individual accuracy minus the paradigm's, in percentage "
                 "points.\n\n" + tables.advantage_table(advantage, tables.task_names(results)))
    return text


def alpha_sweep(results: Mapping, draw: Draw) -> str:
    seed = tables.seed_keys(results)[0]
    path = draw("accuracy_vs_alpha", figures.accuracy_vs_alpha, results["paradigms"], seed)
    return ("## Accuracy against α\n\n"
            f"Absolute accuracy of the unified model over the α grid, on validation{_and_test(results)} "
            f"(seed {seed}); "
            "the large dot is the α chosen on validation (Figure 9 of the paper).\n\n"
            + image("Accuracy vs alpha", path))


def _and_test(results: Mapping) -> str:
    scored = results.get("config", {}).get("eval", {}).get("test_curve", True)
    return " and test" if scored else " (test was scored at the chosen α only)"


def negation(results: Mapping) -> str:
    if not tables.has_negation(results):
        return ""
    keep = results.get("config", {}).get("eval", {}).get("negation_keep")
    kept = f"at least {100 * keep:g}% of" if keep is not None else "most of"
    return ("## Task negation\n\n"
            "The model θ0 − α τ should forget the target task and keep the control task. α is the one that "
            f"lowers the target's validation accuracy most while the control keeps {kept} its pre-trained "
            "validation accuracy. Test accuracies (%) over the seeds that ran negation (the first seed, in runs "
            "since negation became a protocol check); the pre-trained row is the starting point.\n\n"
            + tables.negation_table(results))


def similarity(section: Mapping, draw: Draw) -> str:
    images = "".join(image(f"Cosine similarity, {label(p)}",
                           draw(f"similarity_{slug(p)}", figures.similarity_heatmap, section[p], p))
                     for p in paradigm_names(section))
    return ("## Task-vector similarity\n\n"
            "Cosine similarity between the task vectors of each paradigm (first seed; Figure 10 of the "
            "paper).\n\n" + images + "\n" + analysis_tables.similarity_table(section))


def efficiency(section: Mapping) -> str:
    return ("## Cost of fine-tuning\n\n"
            "Per paradigm, as measured while fine-tuning the first seed: parameter counts, memory (the largest "
            "over the tasks' fine-tunes of each one's peak above what the process held just before it, and the "
            "process's absolute peak, which also counts earlier work), mean seconds per step, fine-tuning time "
            "summed over tasks and the mean size of one task-vector file (Table 4 of the paper).\n\n"
            + tables.efficiency_table(section))


def kernel(section: Mapping, draw: Draw) -> str:
    path = draw("kernel_test", figures.kernel_scatter, section)
    return ("## Kernel behaviour\n\n"
            "Each non-linearly trained τ applied to the model it was trained on (x) and to the post-hoc "
            "linearized model f(θ0) + J·τ (y); points near the diagonal mean fine-tuning stayed in the kernel "
            "regime (Figure 3 of the paper).\n\n" + image("Kernel behaviour test", path) + "\n"
            + analysis_tables.kernel_table(section) + "\n" + analysis_tables.kernel_gap_table(section))


def disentangle(section: Mapping, draw: Draw) -> str:
    parts = ["## Weight disentanglement\n\n"
             "Disentanglement error ξ(α1, α2) of each task pair over a grid of scalings, one panel per paradigm "
             "on a shared colour scale; the cross marks α1 = α2 = 0. Low-error area: share of the grid with ξ "
             "at most the pair's threshold, the same for all paradigms (Figures 6 and 8 of the paper).\n"]
    for pair_name, pair in section.items():
        images = "".join(
            image(f"Disentanglement error ({measure}), {pair_name}",
                  draw(f"disentangle_{slug(pair_name)}_{measure}", figures.disentangle_heatmaps, pair, pair_name,
                       measure))
            for measure in ("representation", "prediction"))
        parts.append(f"\n### {pair_name}\n\n" + images + "\n" + analysis_tables.disentangle_table(pair))
    return "".join(parts)


def ablation(section: Mapping) -> str:
    return ("## Which parameters to fine-tune\n\n"
            "Non-linear fine-tuning restricted to each parameter preset, merged and evaluated like the "
            "paradigms (Table 5 of the paper). Single-task is the mean individual test accuracy.\n\n"
            + analysis_tables.ablation_table(section))


def footer() -> str:
    return ("## How this was made\n\n"
            "Every number and figure above is read from `results.json` in this folder; no model is "
            "evaluated again. Regenerate this report and its figures with:\n\n"
            "```\ntaskarith report <run_dir>\n```\n\n"
            "(from inside this folder: `taskarith report .`).\n")


def render(results: Mapping, draw: Draw) -> str:
    analysis = results.get("analysis") or {}
    sections = [header(results), claims(results), checks(results), addition(results), protocol(results),
                merges(results),
                per_task(results),
                individual(results, draw), alpha_sweep(results, draw), negation(results)]
    if analysis.get("similarity"):
        sections.append(similarity(analysis["similarity"], draw))
    if analysis.get("efficiency"):
        sections.append(efficiency(analysis["efficiency"]))
    if analysis.get("kernel"):
        sections.append(kernel(analysis["kernel"], draw))
    if analysis.get("disentangle"):
        sections.append(disentangle(analysis["disentangle"], draw))
    if analysis.get("ablation"):
        sections.append(ablation(analysis["ablation"]))
    sections += [timings(results), footer()]
    return "\n".join(s for s in sections if s)
