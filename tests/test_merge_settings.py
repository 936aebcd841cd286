"""Merge settings defined once: each method's settings are read from its rule's signature without importing torch,
one function checks them, and every entry point (merge_vectors, `vector merge`, a recipe, ta.merge, ta.export, a
run config) takes every setting of every data-free method to the same merge."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from typing import Annotated, Literal, get_args, get_origin

import pytest
import torch
import yaml
from typer.testing import CliRunner

import taskarith as ta
from taskarith.cli.app import app
from taskarith.config import load_config, validate
from taskarith.groundwork.errors import TaskarithError
from taskarith.groundwork.strict import moved
from taskarith.groundwork.tensor_files import read_safetensors
from taskarith.merging import MERGE_METHODS, check_settings
from taskarith.merging.kinds import SettingTypeError
from taskarith.merging.merge import loaded, merge_vectors
from taskarith.merging.methods import LOOP_KEYWORDS, WEIGHTS
from taskarith.merging.signatures import NO_DEFAULT, keywords
from taskarith.recipes import load_recipe, merge_recipe
from taskarith.vectors import TaskVector
from conftest import base_and_vectors

# --- read from the source, as imported ------------------------------------------------------------------------


@pytest.mark.parametrize("name", MERGE_METHODS)
def test_settings_read_from_the_source_are_the_imported_rules_signature(name):
    method = MERGE_METHODS[name]
    for function in filter(None, (method.rule, method.measure)):
        params = inspect.signature(loaded(function)).parameters.values()
        assert {n: (k.annotation, k.default) for n, k in keywords(function).items()} == {
            p.name: (p.annotation if p.annotation is not p.empty else "",
                     NO_DEFAULT if p.default is p.empty else p.default) for p in params if p.kind is p.KEYWORD_ONLY}
    params = inspect.signature(loaded(method.rule)).parameters
    assert method.settings == {n: p.default for n, p in params.items()
                               if p.kind is p.KEYWORD_ONLY and n not in (*LOOP_KEYWORDS, WEIGHTS)}
    assert method.takes_weights == (WEIGHTS in params)


def test_the_settings_are_the_papers_defaults():
    assert {n: m.settings for n, m in MERGE_METHODS.items() if m.settings} == {
        "ties": {"density": 0.2, "majority_sign_method": "total"}, "dare": {"density": 0.2},
        "dare_ties": {"density": 0.2, "majority_sign_method": "total"}, "iso_cts": {"common_share": 0.8},
        "regmean": {"off_diagonal": 0.9}}


def test_listing_the_methods_and_checking_settings_and_configs_imports_no_torch():
    code = ("import sys\nfrom taskarith.merging import MERGE_METHODS, check_settings\n"
            "from taskarith.config import validate\n"
            "listed = {name: method.settings for name, method in MERGE_METHODS.items()}\n"
            "assert listed['iso_cts'] == {'common_share': 0.8}\n"
            "assert check_settings('ties', {'density': 0.5}, 'x')['density'] == 0.5\n"
            "validate({'eval': {'merges': ['ties'], 'merge_settings': {'ties': {'density': 0.5}}}})\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- one check -----------------------------------------------------------------------------------------------


def test_unset_settings_take_their_defaults_and_numbers_are_floats():
    assert check_settings("ties", {}, "run") == {"density": 0.2, "majority_sign_method": "total"}
    checked = check_settings("ties", {"density": 1}, "run")
    assert checked["density"] == 1.0 and isinstance(checked["density"], float)
    assert check_settings("tsv_m", {}, "run") == {}


@pytest.mark.parametrize("method, given, error, message", [
    ("ties", {"density": 0}, TaskarithError, "run: density must lie in (0, 1], got 0.0"),
    ("iso_cts", {"common_share": 1.5}, TaskarithError, "run: common_share must lie in [0, 1], got 1.5"),
    ("regmean", {"off_diagonal": 1.5}, TaskarithError, "run: off_diagonal must lie in [0, 1], got 1.5"),
    ("ties", {"density": "0.5"}, SettingTypeError, "run: density must be a number, not str"),
    ("ties", {"density": True}, SettingTypeError, "run: density must be a number, not bool"),
    ("ties", {"density": float("inf")}, TaskarithError, "run: density must be a finite number, got inf"),
    ("dare_ties", {"majority_sign_method": "median"}, TaskarithError,
     "run: majority_sign_method must be one of total, frequency, got 'median'"),
    ("task_arithmetic", {"density": 0.5}, TaskarithError,
     "run: density = 0.5 is not a setting of task_arithmetic (its settings: none); it is a setting of ties, dare, "
     "dare_ties"),
    ("ties", {"densty": 0.5}, TaskarithError,
     "run: unknown setting of ties 'densty' (did you mean 'density'?); known: density, majority_sign_method"),
    ("nope", {}, TaskarithError, "unknown merge method 'nope'"),
])
def test_a_bad_setting_is_one_line_naming_the_setting_value_and_method(method, given, error, message):
    with pytest.raises(error) as info:
        check_settings(method, given, "run")
    assert str(info.value).startswith(message) and "\n" not in str(info.value), str(info.value)
    assert isinstance(info.value, TaskarithError)  # the CLI's one line and exit code 2, whatever the kind


def test_a_setting_of_the_wrong_type_is_a_type_error_to_python_callers():
    with pytest.raises(TypeError, match="merge: common_share must be a number, not list"):
        ta.merge([_vector("a", 1.0), _vector("b", 2.0)], "iso_cts", common_share=[0.5])
    with pytest.raises(TaskarithError, match="density = 0.5 is not a setting of task_arithmetic"):
        ta.merge([_vector("a", 1.0), _vector("b", 2.0)], "task_arithmetic", density=0.5)


# --- every entry point, every setting -----------------------------------------------------------------------


def _other(kind: object, default: object) -> object:
    """A valid value of the kind other than the default: the other choice, or a share halfway."""
    base = get_args(kind)[0] if get_origin(kind) is Annotated else kind
    if get_origin(base) is Literal:
        return next(v for v in get_args(base) if v != default)
    assert default != 0.5
    return 0.5


CASES = [(name, setting, _other(keywords(method.rule)[setting].kind(), default))
         for name, method in MERGE_METHODS.items() if method.needs == "vectors"
         for setting, default in method.settings.items()]


def _vector(task: str, scale: float) -> TaskVector:
    g = torch.Generator().manual_seed(int(scale * 10))
    return TaskVector({"w": scale * torch.randn(6, 4, generator=g), "b": scale * torch.randn(6, generator=g)},
                      {"base_model": "m", "base_hash": "h", "paradigm": "nonlinear", "task": task})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A base folder and two task vectors made on it."""
    g = torch.Generator().manual_seed(0)
    theta = {"w": torch.randn(6, 4, generator=g), "b": torch.randn(6, generator=g)}
    return base_and_vectors(tmp_path_factory.mktemp("settings"), theta,
                            [_vector(f"t{i}", scale).tensors for i, scale in enumerate((1.0, -0.5))])


@pytest.mark.parametrize("method, setting, value", CASES, ids=[f"{m}-{s}" for m, s, _ in CASES])
def test_every_entry_point_takes_every_setting_to_the_same_merge(folder, tmp_path, method, setting, value):
    paths = [str(folder / f"v{i}.safetensors") for i in range(2)]
    expected = merge_vectors([TaskVector.load(p) for p in paths], method, **{setting: value})
    assert expected.meta["merge"]["params"][setting] == value
    default = merge_vectors([TaskVector.load(p) for p in paths], method)
    assert not torch.equal(expected.tensors["w"], default.tensors["w"])  # the setting reached the rule
    out = tmp_path / "cli.safetensors"
    result = CliRunner().invoke(app, ["vector", "merge", *paths, "--method", method, "--setting",
                                      f"{setting}={value}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert torch.equal(TaskVector.load(out).tensors["w"], expected.tensors["w"])
    assert torch.equal(ta.merge(paths, method, **{setting: value}).tensors["w"], expected.tensors["w"])
    base = read_safetensors(folder / "base" / "model.safetensors")[0]["w"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"base": str(folder / "base"), "method": method, setting: value,
                                      "inputs": [{"vector": p} for p in paths]}))
    spec, where = load_recipe(recipe)
    merge_recipe(spec, where, tmp_path / "recipe-out", recipe_text=recipe.read_text())
    exported = ta.export(folder / "base", paths, tmp_path / "api-out", method=method, **{setting: value})
    for written in (tmp_path / "recipe-out", exported):
        assert torch.equal(read_safetensors(written / "model.safetensors")[0]["w"], base + expected.tensors["w"])
    assert yaml.safe_load((exported / "recipe.yaml").read_text())[setting] == value
    cfg = validate({"eval": {"merges": [method], "merge_settings": {method: {setting: value}}}})
    assert check_settings(method, cfg.eval.merge_settings[method], "eval")[setting] == value


def test_a_recipe_refuses_a_setting_of_another_method_naming_both(folder, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"base": "base", "method": "iso_c", "density": 0.5,
                                      "inputs": [{"vector": "v0.safetensors"}]}))
    with pytest.raises(TaskarithError, match=re.escape(f"{recipe}: density = 0.5 is not a setting of iso_c (its "
                                                       "settings: none); it is a setting of ties, dare, dare_ties")):
        load_recipe(recipe)


# --- the run config, old and new ------------------------------------------------------------------------------


def test_a_run_config_sets_any_method_setting_and_overrides_reach_it():
    cfg = load_config(None, ["eval.merges=[iso_cts]", "eval.merge_settings.iso_cts.common_share=0.5"])
    assert cfg.eval.merge_settings == {"iso_cts": {"common_share": 0.5}}
    assert "merge_density" not in cfg.eval.model_dump()


def test_an_old_config_reads_its_settings_at_their_new_place():
    old = {"eval": {"merges": ["ties"], "merge_density": 0.3, "merge_data": {"off_diagonal": 0.5, "steps": 7},
                    "merge_settings": {"ties": {"density": 0.6}}}}
    cfg = validate(old)
    assert cfg.eval.merge_settings == {"ties": {"density": 0.6}, "dare": {"density": 0.3},
                                       "dare_ties": {"density": 0.3}, "regmean": {"off_diagonal": 0.5}}
    assert cfg.eval.merge_data.steps == 7 and "off_diagonal" not in cfg.eval.merge_data.model_dump()
    assert old["eval"]["merge_density"] == 0.3  # the tree read from the file is left as it was
    # at their old defaults the old keys asked for nothing: such a config reads as one that sets nothing
    at_defaults = validate({"eval": {"merge_density": 0.2, "merge_data": {"off_diagonal": 0.9}}})
    assert at_defaults == validate({})


def test_moved_leaves_what_is_no_mapping_to_validation():
    moves = {("a", "b"): (0, [("c", "d")])}
    assert moved({"a": 3}, moves) == {"a": 3} and moved([1], moves) == [1]
    assert moved({"a": {"b": 1}, "c": 5}, moves) == {"a": {}, "c": 5}
    assert moved({"a": {"b": 1}}, moves) == {"a": {}, "c": {"d": 1}}
