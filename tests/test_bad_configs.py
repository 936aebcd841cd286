"""Bad tasks, models, paradigms, presets, data and configs: one-line errors, nothing partial on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from taskarith.data.registry import make_task
from taskarith.groundwork.tensor_files import read_safetensors

from cli_cases import Case, Ctx, _no_vectors_written, _write, check_bad_input

# --- builders --------------------------------------------------------------------------------------------

def _csv(ctx: Ctx, name: str, rows: list[tuple[str, str]], header=("text", "label")) -> str:
    path = ctx.tmp / name
    with open(path, "w") as f:
        f.write(",".join(header) + "\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    return str(path)


def _model_copy(ctx: Ctx, name: str, drop: str | None = None) -> Path:
    folder = ctx.tmp / name
    shutil.copytree(ctx.model, folder)
    if drop:
        (folder / drop).unlink()
    return folder


def _pickle_only_model(ctx: Ctx) -> Path:
    folder = _model_copy(ctx, "pickled", drop="model.safetensors")
    torch.save(read_safetensors(ctx.model / "model.safetensors")[0], folder / "pytorch_model.bin")
    return folder


def _t5_model(ctx: Ctx) -> Path:
    from transformers import T5Config, T5Model

    folder = _model_copy(ctx, "t5", drop="model.safetensors")
    (folder / "config.json").unlink()
    T5Model(T5Config(vocab_size=64, d_model=16, d_kv=4, num_heads=4, d_ff=32, num_layers=1,
                     num_decoder_layers=1)).save_pretrained(folder)
    return folder


# --- the table -------------------------------------------------------------------------------------------

CASES = [
    # tasks, models, paradigms, presets
    Case("unknown-task", lambda c: ["finetune", "--task", "nope"], "unknown task 'nope'"),
    Case("unknown-task-in-config", lambda c: ["run", str(c.config(data={"tasks": ["nope"]}))],
         "unknown task 'nope'"),
    Case("unknown-model-folder", lambda c: c.finetune_args("--set", f"model.name={c.tmp / 'none'}"),
         "none: no such model folder"),
    Case("unknown-model-family", lambda c: c.finetune_args("--set", "model.family=nope"),
         "unknown model family 'nope'"),
    Case("unknown-paradigm", lambda c: c.finetune_args("--paradigm", "nope"), "unknown paradigm 'nope'"),
    Case("unknown-paradigm-in-config", lambda c: ["run", str(c.config(paradigms=["nope"]))], "paradigms.0"),
    Case("unknown-preset", lambda c: c.finetune_args("--preset", "nope"), "unknown preset 'nope'"),
    Case("unknown-merge-method-in-config", lambda c: ["run", str(c.config(eval={"merges": ["nope"]})),
                                                      "--out", str(c.tmp / "r")],
         "eval.merges: 'nope' is not a method to compare with the plain sum; expected one of ties,",
         _no_vectors_written),
    Case("baseline-as-merge-method", lambda c: ["run", str(c.config(eval={"merges": ["task_arithmetic"]}))],
         "eval.merges: 'task_arithmetic' is not a method to compare"),
    Case("unknown-merge-rule", lambda c: ["vector", "merge", str(c.finished_run / "none.safetensors"), "--method",
                                          "nope", "--out", str(c.tmp / "m.safetensors")], "unknown merge method 'nope'"),
    Case("regex-selects-nothing", lambda c: c.finetune_args("--preset", "regex:^nothing$"),
         "preset 'regex:^nothing$' selects no parameter"),
    Case("unknown-ablation-preset", lambda c: ["run", str(c.config(analysis={"ablation": ["nope"]})),
                                               "--out", str(c.tmp / "r")], "unknown preset 'nope'",
         _no_vectors_written),
    Case("unknown-negation-control", lambda c: ["run", str(c.config(eval={"negation_control": "nope"})),
                                                "--out", str(c.tmp / "r")], "eval.negation_control = 'nope'",
         _no_vectors_written),
    Case("model-folder-without-weights", lambda c: c.finetune_args(
        "--set", f"model.name={_model_copy(c, 'empty', drop='model.safetensors')}"),
         "no file named model.safetensors"),
    Case("model-with-pickled-weights-only", lambda c: c.finetune_args("--set", f"model.name={_pickle_only_model(c)}"),
         "no file named model.safetensors"),
    Case("unsupported-architecture", lambda c: c.finetune_args("--set", f"model.name={_t5_model(c)}"),
         "T5Model is not a supported text encoder"),
    # data
    Case("empty-split", lambda c: c.finetune_args("--task", _csv(c, "small.csv", [("what city", "a"), ("free win", "b"),
                                                                                    ("big river", "a")])),
         "the val split is empty"),
    Case("label-outside-class-list", lambda c: lambda: make_task(
        "t", ("a", "b"), ("{}.",), [f"text {i}" for i in range(30)], [i % 3 for i in range(30)]),
         "label 2 is outside the class list (expected 0..1)"),
    Case("task-file-without-label-column", lambda c: c.finetune_args(
        "--task", _csv(c, "nolabel.csv", [("what city", "a")], header=("text", "category"))),
         "no column 'label'"),
    Case("task-listed-twice", lambda c: ["run", str(c.config(data={"tasks": [c.tasks[0], c.tasks[0]]}))],
         "task 'places' is listed twice"),
    # configs
    Case("config-missing", lambda c: ["run", str(c.tmp / "none.yaml")], "none.yaml: no such config file"),
    Case("config-is-a-folder", lambda c: ["run", str(c.tmp)], "cannot read the config file (Is a directory)"),
    Case("config-invalid-yaml", lambda c: ["run", str(_write(c.tmp / "c.yaml", b"train: {steps: 2\n"))],
         "c.yaml: not valid YAML"),
    Case("config-not-a-mapping", lambda c: ["run", str(_write(c.tmp / "c.yaml", b"- a\n- b\n"))],
         "expected a mapping at the top level, got list"),
    Case("config-python-tag", lambda c: ["run", str(_write(c.tmp / "c.yaml",
                                                            b"name: !!python/object/apply:os.getcwd []\n"))],
         "not valid YAML"),
    Case("config-unknown-key", lambda c: ["run", str(c.config(train={"stepz": 3}))], "train.stepz: unknown key"),
    Case("config-wrong-type", lambda c: ["run", str(c.config(train={"steps": "many"}))],
         "train.steps: Input should be a valid integer"),
    Case("config-negative-steps", lambda c: ["run", str(c.config()), "--set", "train.steps=-5"],
         "train.steps: Input should be greater than 0 (got -5)"),
    Case("config-nan-lr", lambda c: ["run", str(c.config()), "--set", "train.lr=.nan"], "train.lr: Input should be"),
    Case("config-overflowing-lr", lambda c: ["run", str(c.config()), "--set", "train.lr=1e39"],
         "train.lr: Input should be less than"),
    Case("config-alpha-out-of-range", lambda c: ["run", str(c.config(eval={"alphas": [0.5, 17]}))],
         "α values must lie in [0, 16], got 17"),
    Case("config-alpha-grid-empty", lambda c: ["run", str(c.config(eval={"alphas": []}))],
         "eval.alphas: List should have at least 1 item"),
    Case("override-without-value", lambda c: ["run", str(c.config()), "--set", "train.steps"],
         "override 'train.steps': expected KEY.PATH=VALUE"),
    Case("override-into-a-value", lambda c: ["run", str(c.config()), "--set", "name.first=1"],
         "override 'name.first': 'name' is not a section"),
    Case("seeds-zero", lambda c: ["run", str(c.config()), "--seeds", "0"], "--seeds must lie in [1, 1000], got 0"),
    Case("unknown-executor", lambda c: ["run", str(c.config()), "--executor", "spark"],
         "--executor 'spark': expected local or ray"),
    Case("address-without-ray", lambda c: ["run", str(c.config()), "--address", "auto"],
         "--address names a Ray cluster"),
    Case("zero-cpus", lambda c: ["run", str(c.config(resources={"finetune": {"num_cpus": 0}}))],
         "resources.finetune.num_cpus"),
    Case("zero-device-batch", lambda c: c.finetune_args("--set", "resources.device_batch_size=0"),
         "resources.device_batch_size"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run):
    check_bad_input(case, Ctx(tmp_path, monkeypatch, tiny_model_dir, csv_tasks, tokenizer, finished_run))
