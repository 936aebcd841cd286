"""The report: results.json in, report.md and PNG figures out, every number read from the file."""

from __future__ import annotations

import json
import re

import pytest

from taskarith.groundwork.errors import TaskarithError
from taskarith.report import load_results, write_report
from taskarith.report.tables import addition_table, over_seeds

TASKS = ("trec", "sms")
PARADIGMS = ("nonlinear", "linear", "attention")
ALPHAS = (0.0, 0.5, 1.0)


def mean_std(values):
    mean = sum(values) / len(values)
    return {"mean": mean, "std": (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5}


def seed_result(p: int, s: int) -> dict:
    """Seed s of paradigm number p; numbers differ by paradigm and seed so table cells are traceable."""
    base = 0.6 + 0.1 * p + 0.02 * s
    curve = {f"{a:g}": {"val_abs": base * a, "val_norm": base * a + 0.05, "test_abs": base * a - 0.01,
                        "test_norm": base * a + 0.04} for a in ALPHAS}
    return {
        "individual": {"val": {"trec": 0.9 - 0.05 * p, "sms": 0.95}, "test": {"trec": 0.88 - 0.05 * p, "sms": 0.94}},
        "addition": {"alpha": 0.5 if s == 0 else 1.0, "curve": curve,
                     "test": {"trec": base, "sms": base + 0.02},
                     "absolute": [0.80, 0.70, 0.60][p] + 0.02 * s, "normalized": 0.9 - 0.1 * p + 0.02 * s},
        "negation": {t: {"control_task": "sms" if t == "trec" else "trec", "alpha": 0.5 + s,
                         "target": 0.2 + 0.01 * p, "control": 0.93, "pretrained_target": 0.40,
                         "pretrained_control": 0.96} for t in TASKS},
        "training": {t: {"seconds": 40.0, "seconds_per_step": 0.4, "steps": 100, "peak_memory_bytes": 1.3e9,
                         "memory_kind": "process_peak_rss"} for t in TASKS},
        "vectors": {t: f"vectors/seed{s}/x/{t}/vector.safetensors" for t in TASKS},
    }


def paradigm_entry(p: int, name: str, seeds=(0, 1)) -> dict:
    runs = {str(s): seed_result(p, s) for s in seeds}
    return {
        "label": name, "preset": "full", "selection": {"count": 100, "total": 1000, "share": 0.1},
        "seeds": runs,
        "summary": {
            "absolute": mean_std([r["addition"]["absolute"] for r in runs.values()]),
            "normalized": mean_std([r["addition"]["normalized"] for r in runs.values()]),
            "individual": mean_std([sum(r["individual"]["test"].values()) / 2 for r in runs.values()]),
            "per_task": {t: {"individual": mean_std([r["individual"]["test"][t] for r in runs.values()]),
                             "unified": mean_std([r["addition"]["test"][t] for r in runs.values()])}
                         for t in TASKS},
        },
    }


def synthetic_results() -> dict:
    grid = [-1.0, 0.0, 1.0]
    return {
        "schema": 1, "taskarith_version": "0.1.0", "git_commit": "abc1234", "created": "2026-11-22T10:00:00Z",
        "config": {"name": "synthetic", "eval": {"negation_keep": 0.95},
                   "train": {"lr": 1e-4, "steps": 100, "batch_size": 16, "weight_decay": 0.1, "decay_toward": "zero",
                             "warmup_steps": 10, "grad_clip": 1.0}},
        "model": {"family": "text-encoder", "name": "tiny-bert", "base_hash": "h", "parameters": 1000},
        "seeds": [0, 1],
        "tasks": {t: {"classes": ["a", "b"], "templates": ["{}"], "sizes": {}} for t in TASKS},
        "pretrained": {"val": {"trec": 0.41, "sms": 0.61}, "test": {"trec": 0.40, "sms": 0.60}},
        "paradigms": {name: paradigm_entry(p, name) for p, name in enumerate(PARADIGMS)},
        "analysis": {
            "similarity": {p: {"tasks": list(TASKS), "matrix": [[1, 0.1 * i], [0.1 * i, 1]],
                               "mean_off_diagonal": 0.1 * i} for i, p in enumerate(PARADIGMS)},
            "efficiency": {p: {"total_parameters": 22713216, "trainable_parameters": 1000 * (i + 1),
                               "trainable_share": 0.25, "peak_memory_bytes": 3 * 2**20, "memory_kind": "cuda_peak",
                               "seconds_per_step": 0.25, "total_seconds": 80.0, "vector_bytes": 2**21}
                           for i, p in enumerate(PARADIGMS)},
            "advantage": {"linear": {"per_task": {"trec": 0.05, "sms": 0.0}, "mean": 0.025},
                          "attention": {"per_task": {"trec": 0.10, "sms": 0.0}, "mean": 0.05}},
            "kernel": {p: {"per_task": {"trec": {"model": 0.9, "posthoc_linear": 0.7},
                                        "sms": {"model": 0.95, "posthoc_linear": 0.85}}, "mean_gap": -0.15}
                       for p in ("nonlinear", "attention")},
            "disentangle": {"trec+sms": {"grid": grid, **{
                p: {"representation": [[0.1 * (i + 1) * abs(a) + abs(b) for b in grid] for a in grid],
                    "prediction": [[0.05 * (i + 1) * (abs(a) + abs(b)) for b in grid] for a in grid],
                    "low_area": {"representation": 0.25 * (i + 1) / 3, "prediction": 0.5},
                    "threshold": {"representation": 0.1, "prediction": 0.1, "representation_fraction_of_max": 0.1}}
                for i, p in enumerate(PARADIGMS)}}},
            "ablation": {"attention": paradigm_entry(2, "attention", seeds=(0,)),
                         "attention+mlp": paradigm_entry(1, "attention+mlp", seeds=(0,))},
        },
        "timings": {"total_seconds": 612.0, "finetune_seconds": 400.0, "evaluate_seconds": 150.0,
                    "analysis_seconds": 50.0, "per_seed": {"0": {"finetune_seconds": 210.0, "evaluate_seconds": 80.0},
                                                           "1": {"finetune_seconds": 190.0, "evaluate_seconds": 70.0}}},
    }


def write_run(tmp_path, results) -> None:
    (tmp_path / "results.json").write_text(json.dumps(results))


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    write_run(run_dir, synthetic_results())
    report = write_report(run_dir)
    return run_dir, report, report.read_text(encoding="utf-8")


def test_stat_format():
    assert over_seeds([0.80, 0.82], several=True) == "81.0 ± 1.4"  # sample sd, ddof 1
    assert over_seeds([0.81], several=False) == "81.0"


def test_addition_table_rows(full_report):
    _, _, text = full_report
    # absolute 0.80/0.82 -> 81.0 ± 1.4 (sample sd); normalized 0.90/0.92 -> 91.0 ± 1.4; α 0.5 then 1 per seed
    assert "| Non-linear | 81.0 ± 1.4 | 91.0 ± 1.4 | 0.5, 1 |" in text
    assert "| NTK linearization | 71.0 ± 1.4 | 81.0 ± 1.4 | 0.5, 1 |" in text
    assert "| Pre-trained | 50.0 | — | — |" in text  # mean of 0.40 and 0.60
    assert "validation" in text.split("## Per-task")[0]


def test_single_seed_shows_mean_only():
    results = synthetic_results()
    results["seeds"] = [0]
    assert "| Non-linear | 80.0 | 90.0 | 0.5 |" in addition_table(results)  # seed 0's own numbers


def test_sections_in_order_with_their_numbers(full_report):
    _, _, text = full_report
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == ["Claims of the paper", "Checks of the protocol, and measures of our own", "Task addition", "Protocol", "Per-task accuracies",
                        "Single-task accuracy against non-linear fine-tuning",
                        "Accuracy against α", "Task negation", "Task-vector similarity", "Cost of fine-tuning",
                        "Kernel behaviour", "Weight disentanglement", "Which parameters to fine-tune",
                        "Wall time", "How this was made"]
    assert text.startswith("# Task arithmetic report: synthetic\n")
    assert "abc1234" in text and "612.0 s" in text
    assert "| Pre-trained (zero-shot) | 40.0 | 60.0 |" in text
    assert "| Attention-only individual | 78.0 ± 0.0 | 94.0 ± 0.0 |" in text
    assert "| Attention-only | 10.0 | 0.0 | 5.0 |" in text  # non-linear advantage
    assert "| trec | Pre-trained | — | 40.0 | sms | 96.0 |" in text
    assert "| trec | NTK linearization | 0.5, 1.5 | 21.0 ± 0.0 | sms | 93.0 ± 0.0 |" in text
    assert "| Attention-only | 0.200 | 0.200 |" in text  # mean off-diagonal cosine, signed and |cos|
    assert "| Non-linear | 22,713,216 | 1,000 | 25.00 | — | 3.0 | cuda_peak | 0.250 | 80.0 | 2.00 |" in text
    assert "one learning rate, 0.0001" in text and "toward zero" in text
    assert "| seed 1 | 190 | 70 | 260 |" in text and "| analyses (once) | — | — | 50 |" in text
    # attention-only: trec 0.78 − 0.40 = +38, sms 0.94 − 0.60 = +34, the smaller
    assert "| Attention-only | +34.0 (sms) | none |" in text
    assert "| Attention-only | trec | 90.0 | 70.0 |" in text
    assert "| Attention-only | -15.0 |" in text
    assert "| Attention-only | 25.0 | 50.0 |" in text  # low-error areas
    assert "| attention+mlp | 88.5 | 70.0 | 80.0 |" in text  # ablation ran one seed: no ± there
    assert "taskarith report <run_dir>" in text


def test_every_figure_exists_and_is_png(full_report):
    run_dir, _, text = full_report
    paths = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", text)
    assert {"figures/individual_vs_nonlinear.png", "figures/accuracy_vs_alpha.png", "figures/kernel_test.png",
            "figures/similarity_linear.png", "figures/disentangle_trec+sms_representation.png",
            "figures/disentangle_trec+sms_prediction.png"} <= set(paths)
    for rel in paths:
        assert (run_dir / rel).read_bytes().startswith(b"\x89PNG"), rel
    assert not list((run_dir / "figures").glob(".*.tmp"))


def test_report_is_reproducible(full_report):
    run_dir, report, text = full_report
    assert write_report(run_dir) == report
    assert report.read_bytes() == text.encode("utf-8")


def test_missing_analysis_sections_are_skipped(tmp_path):
    results = synthetic_results()
    for key in ("similarity", "kernel", "disentangle", "ablation", "advantage"):
        del results["analysis"][key]
    for part in (results["paradigms"], results["analysis"]["efficiency"]):
        del part["linear"]
    write_run(tmp_path, results)
    text = write_report(tmp_path).read_text()
    assert "## Kernel behaviour" not in text and "## Weight disentanglement" not in text
    assert "## Cost of fine-tuning" in text and "Non-linear advantage" not in text
    assert "NTK linearization" not in text.split("## Checks")[1]  # only the claims table names what is missing
    assert "| Table 2, absolute: Attention-only > NTK linearization | 78.37 vs 76.26 | — |" in text

    del results["analysis"]
    for entry in results["paradigms"].values():
        for run in entry["seeds"].values():
            del run["negation"]
    write_run(tmp_path, results)
    text = write_report(tmp_path).read_text()
    assert "## Task negation" not in text and "## Cost of fine-tuning" not in text


@pytest.mark.parametrize("content, message", [
    ('{"schema": 2}', "unsupported \"schema\" 2"),
    ('{"paradigms": {}}', "unsupported \"schema\" None"),
    ("{not json", "invalid JSON"),
    ("[1, 2]", "JSON object"),
])
def test_bad_results_file(tmp_path, content, message):
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(TaskarithError, match=re.escape(message)):
        write_report(tmp_path)


def test_missing_results_file(tmp_path):
    with pytest.raises(TaskarithError, match="results.json: not found"):
        load_results(tmp_path / "results.json")


def test_missing_entry_names_it(tmp_path):
    results = synthetic_results()
    del results["paradigms"]["linear"]["summary"]
    write_run(tmp_path, results)
    with pytest.raises(TaskarithError, match="results.json: missing or malformed entry.*'summary'"):
        write_report(tmp_path)
