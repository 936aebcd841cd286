"""The Python surface: every public name resolves, `import taskarith` stays cheap, and the notebook example
of docs/python-api.md runs as written."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

from test_extract import _finetuned, _save

import taskarith
from conftest import make_tiny_encoder

DOC = Path(__file__).resolve().parent.parent / "docs" / "python-api.md"


def test_every_public_name_resolves():
    assert set(taskarith.__all__) >= {"TaskVector", "load_model", "finetune", "merge", "extract", "export",
                                      "run_experiment", "PARADIGMS", "MERGE_METHODS", "FAMILIES", "PRESETS", "TASKS"}
    for name in taskarith.__all__:
        assert getattr(taskarith, name) is not None, name
    assert "ties" in taskarith.MERGE_METHODS and "attention" in taskarith.PARADIGMS
    from taskarith.vectors import TaskVector

    assert taskarith.TaskVector is TaskVector


def test_import_is_cheap():
    code = "import sys, taskarith; print('torch' in sys.modules, taskarith.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", taskarith.__version__]


def test_the_notebook_example_runs_as_written(tmp_path, tokenizer, monkeypatch):
    models = tmp_path / "models"
    _save(make_tiny_encoder(tokenizer).net, tokenizer, models / "base")
    _finetuned(tokenizer, models / "ft-spam", scale=0.02)
    _finetuned(tokenizer, models / "ft-city", scale=0.03)
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block, str(DOC), "exec"), {})
    difference = float(re.search(r"max difference: (\S+)", printed.getvalue()).group(1))
    assert difference < 1e-5, printed.getvalue()
    assert (tmp_path / "models" / "merged" / "config.json").exists()
