"""The paper's analyses: formulas checked by hand on tiny models, then the suite and CLI on a tiny run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import make_tiny_encoder, tiny_config

from taskarith.analysis.advantage import nonlinear_advantage
from taskarith.analysis.disentangle import alpha_grid, disentanglement_error
from taskarith.analysis.kernel import posthoc_linear
from taskarith.analysis.similarity import similarity
from taskarith.groundwork.errors import TaskarithError
from taskarith.evaluate import make_evalset, sweep
from taskarith.training.linearize import base_params, linearized_represent
from taskarith.training.selection import select
from taskarith.paradigms import resolve_paradigm
from taskarith.vectors import TaskVector

TEXTS_1 = ["what city river name", "where is the river", "what name of the city", "free prize win now",
           "call now win free"]
TEXTS_2 = ["good movie great film", "bad awful movie", "great game team", "small bad film"]


def random_vector(family, names, seed: int, scale: float, paradigm: str = "nonlinear") -> TaskVector:
    gen = torch.Generator().manual_seed(seed)
    params = family.named_weights()
    tensors = {n: scale * torch.randn(params[n].shape, generator=gen, dtype=params[n].dtype) for n in names}
    return TaskVector(tensors, {"paradigm": paradigm, "task": f"t{seed}"})


def random_head(family, classes: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    dim = family.net.config.hidden_size
    dtype = next(family.net.parameters()).dtype
    return torch.nn.functional.normalize(torch.randn(classes, dim, generator=gen, dtype=dtype), dim=-1)


def evalsets(family):
    return [make_evalset(family, texts, [0] * len(texts), batch_size=3) for texts in (TEXTS_1, TEXTS_2)]


def hand_xi(family, evalsets_, heads, grid, represent_at):
    """Eq. 2 written out cell by cell, with explicit forward passes and KL as Σ p·log(p/q)."""
    n = len(grid)
    rep, pred = np.zeros((n, n)), np.zeros((n, n))
    for i1, a1 in enumerate(grid):
        for i2, a2 in enumerate(grid):
            for t, (evalset, head) in enumerate(zip(evalsets_, heads)):
                alone = [a1, 0.0] if t == 0 else [0.0, a2]
                kl = disagree = 0.0
                for batch in evalset.batches:
                    single, joint = represent_at(batch, alone), represent_at(batch, [a1, a2])
                    p, q = torch.softmax(single.double(), -1), torch.softmax(joint.double(), -1)
                    kl += float((p * torch.log(p / q)).sum())
                    disagree += float((family.logits(single, head).argmax(-1)
                                       != family.logits(joint, head).argmax(-1)).sum())
                rep[i1, i2] += kl / evalset.size
                pred[i1, i2] += disagree / evalset.size
    return rep, pred


def test_alpha_grid_is_symmetric_and_holds_zero():
    grid = alpha_grid(15, 2.0)
    assert len(grid) == 15 and grid[0] == -2.0 and grid[-1] == 2.0
    assert grid[7] == 0.0
    assert grid == [-a for a in reversed(grid)]
    assert 0.0 not in alpha_grid(4, 1.0)


@pytest.mark.parametrize("paradigm", ["nonlinear", "linear"])
def test_xi_is_exactly_zero_at_the_origin(encoder, paradigm):
    names = select(encoder.net, "attention").names
    vectors = [random_vector(encoder, names, s, 0.05, paradigm) for s in (1, 2)]
    heads = [random_head(encoder, 3, 1), random_head(encoder, 2, 2)]
    xi = disentanglement_error(encoder, vectors, evalsets(encoder), heads, alpha_grid(3, 1.0))
    for measure in ("representation", "prediction"):
        assert xi[measure][1, 1] == 0.0
    assert xi["representation"].max() > 0


def test_xi_equals_hand_computation(tokenizer):
    """In-place path against explicit forward passes at θ0 + α1 τ1 + α2 τ2 (float64: exact up to rounding)."""
    family = make_tiny_encoder(tokenizer, dtype=torch.float64)
    names = select(family.net, "attention+mlp").names
    vectors = [random_vector(family, names, s, 0.1) for s in (1, 2)]
    heads = [random_head(family, 3, 1), random_head(family, 2, 2)]
    grid = [-1.5, 0.0, 1.0]
    sets = evalsets(family)
    theta0 = {n: p.detach().clone() for n, p in family.named_weights().items()}

    def at(batch, coefs):
        params = {n: theta0[n] + sum(c * tv.tensors[n] for c, tv in zip(coefs, vectors)) for n in names}
        with torch.no_grad():
            return family.represent(batch, params)

    rep, pred = hand_xi(family, sets, heads, grid, at)
    assert pred.max() > 0  # the test must see predictions flip, or it checks nothing
    xi = disentanglement_error(family, vectors, sets, heads, grid)
    np.testing.assert_allclose(xi["representation"], rep, rtol=1e-7, atol=1e-12)
    np.testing.assert_array_equal(xi["prediction"], pred)


def test_affine_path_of_xi_equals_point_by_point_linearization(encoder):
    names = select(encoder.net, "attention").names
    vectors = [random_vector(encoder, names, s, 0.3, "linear") for s in (1, 2)]
    heads = [random_head(encoder, 3, 1), random_head(encoder, 2, 2)]
    grid = [-2.0, 0.0, 2.0]
    sets = evalsets(encoder)
    theta0 = base_params(encoder, names)

    def at(batch, coefs):
        tau = {n: sum(c * tv.tensors[n] for c, tv in zip(coefs, vectors)) for n in names}
        with torch.no_grad():
            return linearized_represent(encoder, batch, theta0, tau)

    rep, pred = hand_xi(encoder, sets, heads, grid, at)
    assert rep.max() > 1e-3
    xi = disentanglement_error(encoder, vectors, sets, heads, grid)
    np.testing.assert_allclose(xi["representation"], rep, atol=1e-5)
    np.testing.assert_allclose(xi["prediction"], pred, atol=1e-5)


def test_posthoc_linearization_is_exact_at_zero_and_second_order_elsewhere(tokenizer):
    family = make_tiny_encoder(tokenizer, dtype=torch.float64)
    tv = random_vector(family, select(family.net, "full").names, 3, 0.05)
    lin = posthoc_linear(tv)
    assert lin.linear and not tv.linear and lin.meta["posthoc_of"] == "nonlinear"
    evalset = make_evalset(family, TEXTS_1, [0] * len(TEXTS_1), batch_size=8)

    def reps(vector, s):
        out = []
        sweep(family, [vector], [[s]], [evalset], lambda c, i, b, rep: out.append(rep.clone()))
        return torch.cat(out)

    torch.testing.assert_close(reps(lin, 0.0), reps(tv, 0.0), rtol=0, atol=1e-12)
    gaps = [float((reps(lin, s) - reps(tv, s)).norm()) for s in (0.1, 0.05, 0.025)]
    assert gaps[0] > 1e-6
    for big, small in zip(gaps, gaps[1:]):
        assert 3.5 < big / small < 4.5


def test_cosine_matrix_is_symmetric_with_unit_diagonal(encoder):
    names = select(encoder.net, "attention").names
    vectors = {f"t{s}": random_vector(encoder, names, s, 1.0) for s in (1, 2, 3)}
    vectors["t3"] = vectors["t1"] * 0.5 + vectors["t3"]  # one correlated pair
    m = np.array(similarity(vectors)["matrix"])
    np.testing.assert_allclose(m, m.T)
    np.testing.assert_allclose(np.diag(m), 1.0)
    flat = {t: torch.cat([tv.tensors[n].flatten() for n in names]).double() for t, tv in vectors.items()}
    expected = float(flat["t1"] @ flat["t3"] / (flat["t1"].norm() * flat["t3"].norm()))
    assert m[0, 2] == pytest.approx(expected, abs=1e-6)
    assert m[0, 2] > 0.3


def test_nonlinear_advantage_is_nonlinear_minus_other():
    def entry(accs):
        return {"summary": {"per_task": {t: {"individual": {"mean": a}} for t, a in accs.items()}}}

    paradigms = {"nonlinear": entry({"a": 0.9, "b": 0.8}), "linear": entry({"a": 0.7, "b": 0.9})}
    adv = nonlinear_advantage(paradigms)
    assert set(adv) == {"linear"}
    assert adv["linear"]["per_task"] == pytest.approx({"a": 0.2, "b": -0.1})
    assert adv["linear"]["mean"] == pytest.approx(0.05)
    assert nonlinear_advantage({"linear": paradigms["linear"]}) == {}


# --- the suite and the CLI on a tiny run ------------------------------------------------------------

PRESETS = ["attention", "attention+mlp"]


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, csv_tasks, tmp_path_factory):
    from taskarith.run import run_experiment

    cfg = tiny_config(tiny_model_dir, csv_tasks, eval={"alphas": [0.0, 0.5, 1.0], "negation": False},
                      analysis={"kernel": True, "disentangle_pairs": [["places", "reviews"]],
                                "disentangle_grid": 3, "disentangle_points": 6, "ablation": PRESETS})
    run_dir = tmp_path_factory.mktemp("analysis-run")
    lines: list[str] = []
    path = run_experiment(cfg, run_dir, progress=False, log=lines.append)
    return cfg, run_dir, json.loads(path.read_text()), lines


def test_suite_runs_every_switched_on_analysis(tiny_run):
    _, _, results, lines = tiny_run
    analysis = results["analysis"]
    assert set(analysis) == {"similarity", "efficiency", "advantage", "kernel", "disentangle", "ablation"}
    assert sum(line.startswith("analysis:") for line in lines) == len(analysis)  # one line per analysis
    assert set(analysis["kernel"]) == {"nonlinear", "attention"}
    for entry in analysis["kernel"].values():
        gaps = [r["posthoc_linear"] - r["model"] for r in entry["per_task"].values()]
        assert entry["mean_gap"] == pytest.approx(np.mean(gaps))
    assert set(analysis["advantage"]) == {"linear", "attention"}


def test_kernel_model_accuracy_is_the_individual_accuracy(tiny_run):
    _, _, results, _ = tiny_run
    for paradigm, entry in results["analysis"]["kernel"].items():
        individual = results["paradigms"][paradigm]["seeds"]["0"]["individual"]["test"]
        assert {t: r["model"] for t, r in entry["per_task"].items()} == individual


def test_disentangle_entry(tiny_run):
    _, _, results, _ = tiny_run
    entry = results["analysis"]["disentangle"]["places+reviews"]
    assert entry["grid"] == [-2.0, 0.0, 2.0]
    limits = {json.dumps(entry[p]["threshold"], sort_keys=True) for p in ("nonlinear", "linear", "attention")}
    assert len(limits) == 1  # one threshold per pair and measure, shared by the paradigms
    largest = max(max(map(max, entry[p]["representation"])) for p in ("nonlinear", "linear", "attention"))
    assert entry["nonlinear"]["threshold"]["representation"] == pytest.approx(0.1 * largest)
    for p in ("nonlinear", "linear", "attention"):
        for measure in ("representation", "prediction"):
            xi = np.array(entry[p][measure])
            assert xi.shape == (3, 3) and xi[1, 1] == 0.0
            limit = entry[p]["threshold"][measure]
            assert entry[p]["low_area"][measure] == pytest.approx(float((xi <= limit).mean()))


def test_efficiency_counts_are_the_presets_parameter_counts(tiny_run, encoder):
    _, _, results, _ = tiny_run
    total = sum(p.numel() for p in encoder.net.parameters())
    for paradigm, entry in results["analysis"]["efficiency"].items():
        assert entry["trainable_parameters"] == select(encoder.net, resolve_paradigm(paradigm).preset).count
        assert entry["total_parameters"] == total


def test_ablation_has_one_entry_per_preset(tiny_run, encoder):
    _, run_dir, results, _ = tiny_run
    ablation = results["analysis"]["ablation"]
    assert list(ablation) == PRESETS
    for preset, entry in ablation.items():
        assert entry["preset"] == preset
        assert entry["selection"]["count"] == select(encoder.net, preset).count
        assert set(entry["seeds"]) == {"0"} and 0 <= entry["summary"]["normalized"]["mean"]
    # the attention preset is the attention paradigm: its vectors are reused, not trained again
    assert not (run_dir / "vectors" / "seed0" / "attention-attention").exists()
    assert (run_dir / "vectors" / "seed0" / "attention-attention+mlp").is_dir()


def test_unknown_task_in_a_pair_is_named(tiny_run):
    from taskarith.run import Experiment
    from taskarith.run.analyses import FirstSeed, run_analyses

    cfg, run_dir, _, _ = tiny_run
    bad = cfg.model_copy(update={"analysis": cfg.analysis.model_copy(
        update={"disentangle_pairs": [("places", "nope")]})})
    exp = Experiment(bad, run_dir, progress=False, log=lambda *_: None)
    with pytest.raises(TaskarithError, match="'nope'"):
        run_analyses(exp, FirstSeed({}, {}), {})


def test_analyze_command_merges_into_results(tiny_run, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from taskarith.cli.analyze import analyze_app

    _, run_dir, before, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    reports = []
    monkeypatch.setattr("taskarith.report.write_report", lambda d: reports.append(d) or d / "report.md")

    result = CliRunner().invoke(analyze_app, ["disentangle", str(copy), "--pair", "reviews+places", "--grid", "5",
                                              "--points", "4"])
    assert result.exit_code == 0, result.output
    after = json.loads((copy / "results.json").read_text())
    assert set(after["analysis"]["disentangle"]) == {"places+reviews", "reviews+places"}
    assert len(after["analysis"]["disentangle"]["reviews+places"]["grid"]) == 5
    assert after["analysis"]["kernel"] == before["analysis"]["kernel"]
    assert reports == [copy]

    result = CliRunner().invoke(analyze_app, ["disentangle", str(copy), "--pair", "places+nope"])
    assert isinstance(result.exception, TaskarithError) and "'nope'" in str(result.exception)
