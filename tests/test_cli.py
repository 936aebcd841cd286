"""The command line's own text: --set errors that name the argument, the `tasks` listing, and one name per
command."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.data import registry

ENV = {"HF_HUB_OFFLINE": "1"}


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKARITH_CACHE", str(tmp_path / "cache"))


def _error(args: list[str]) -> str:
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"steps": 3}}))
    return path


def test_set_unknown_key_names_the_argument_and_suggests_the_key(config):
    message = _error(["run", str(config), "--set", "train.stepz=5"])
    assert message == "error: --set train.stepz=5: train.stepz: unknown key; did you mean train.steps?"
    assert str(config) not in message


def test_set_unknown_section_suggests_the_whole_key(config):
    message = _error(["run", str(config), "--set", "trian.steps=5"])
    assert message.startswith("error: --set trian.steps=5: trian: unknown key") and "train.steps?" in message


def test_set_bad_value_names_the_argument_that_won(config):
    message = _error(["run", str(config), "--set", "train.steps=4", "--set", "train.steps=-1"])
    assert message.startswith("error: --set train.steps=-1: train.steps: Input should be greater than 0")


def test_yaml_unknown_key_blames_the_file_and_suggests_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"eval": {"merge": ["ties"]}}))
    message = _error(["run", str(path), "--set", "train.steps=2"])
    assert message == f"error: {path}: eval.merge: unknown key; did you mean eval.merges?"


def test_yaml_unknown_key_far_from_any_key_has_no_suggestion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"zzzzzz": 1}))
    assert _error(["run", str(path)]) == f"error: {path}: zzzzzz: unknown key"


def test_tasks_lists_plain_values_that_fit_the_terminal():
    result = CliRunner().invoke(app, ["tasks"], env=ENV)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "bbc: BBC news articles by topic"
    assert "  5 classes: business, entertainment, politics, sport, technology" in lines
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    assert "[" not in result.stdout and "'" not in result.stdout
    # the listing wraps between class names, never inside one
    for name in registry.TASKS["20ng"].class_names:
        assert any(f" {name}," in line or line.endswith(f" {name}") for line in lines), name


def test_tasks_escapes_control_characters(monkeypatch):
    spec = dataclasses.replace(registry.TASKS["bbc"], description="news\x1b[2J\nfake line")
    monkeypatch.setitem(registry.TASKS, "bbc", spec)
    result = CliRunner().invoke(app, ["tasks"], env=ENV)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "bbc: news\\x1b[2J\\nfake line" in result.stdout.splitlines()


def test_group_help_says_what_each_group_does():
    vector = CliRunner().invoke(app, ["vector", "--help"], env=ENV).stdout
    assert "Inspect, merge and extract task vectors." in vector
    info = CliRunner().invoke(app, ["vector", "info", "--help"], env=ENV).stdout
    assert "A task vector file" in info
    data = CliRunner().invoke(app, ["data", "--help"], env=ENV).stdout
    assert "inspect" not in data.lower()


@pytest.mark.parametrize("args, unknown", [
    (["merge", "r.yaml", "--out", "o"], "No such command 'merge'"),  # now `export`
    (["merges"], "No such command 'merges'"),  # now `methods`
    (["vector", "merge", "a.safetensors", "--rule", "ties", "--out", "o"], "No such option: --rule"),  # `--method`
])
def test_each_command_and_option_has_one_name(args, unknown):
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 2 and unknown in " ".join(result.output.split()), result.output
