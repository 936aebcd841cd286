"""`--executor ray` against a cluster that is not there or cannot grant what the config asks: one line naming
the address or key, within a deadline, with no Ray output on the terminal and nothing left in the run folder."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid

import pytest
import yaml
from typer.testing import CliRunner

from taskarith.cli.app import app
from taskarith.config import ResourcesConfig
from taskarith.groundwork.errors import TaskarithError, quote
from taskarith.groundwork.resources import check_grantable
from taskarith.run import ray_cluster, ray_executor

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.timeout(120)  # a hang is the failure these tests look for


@pytest.fixture
def config(tmp_path, tiny_model_dir, csv_tasks):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny", "model": {"name": str(tiny_model_dir), "max_length": 16}, "data": {"tasks": csv_tasks},
        "train": {"steps": 2, "batch_size": 8, "lr": 1e-3, "warmup_steps": 1, "checkpoint_every": 1},
        "eval": {"batch_size": 16, "alphas": [0.0, 1.0]}, "paradigms": ["nonlinear"]}))
    return path


def _one_line_error(stderr: str) -> str:
    lines = [line for line in re.split(r"[\r\n]", stderr) if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "\x1b" not in stderr
    return lines[0]


def _taskarith(*args: str, join_seconds: float | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """The CLI in a process of its own, whose real stderr is what a terminal would show (Ray's C++ core writes
    to file descriptor 2 itself), with the deadline to join a cluster set to `join_seconds`."""
    code = "import sys, taskarith.cli.app as cli, taskarith.run.ray_cluster as r\n" \
           "if sys.argv[1] != 'default': r.JOIN_SECONDS = float(sys.argv[1])\n" \
           "sys.argv = ['taskarith', *sys.argv[2:]]\ncli.main()"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code, str(join_seconds or "default"), *args], env=env,
                          capture_output=True, text=True, timeout=90)
    return done, time.monotonic() - started


def test_an_address_where_nothing_listens_fails_at_once_and_leaves_the_run_folder_as_it_was(config, tmp_path):
    with socket.socket() as probe:  # a port just freed: nothing listens there
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "notes.txt").write_text("kept")
    done, _ = _taskarith("run", str(config), "--executor", "ray", "--address", f"127.0.0.1:{port}",
                         "--out", str(folder))
    assert done.returncode == 2, done.stderr
    line = _one_line_error(done.stderr)
    assert f"--address '127.0.0.1:{port}'" in line and "refused" in line
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]  # no .lock, nothing half-written


def test_an_address_that_never_answers_as_a_cluster_meets_the_deadline_without_ray_noise(config, tmp_path):
    """A port that takes connections and says nothing: Ray's client would retry for many minutes, printing a
    C++ warning every 5 s, the first of which falls inside this deadline."""
    with socket.create_server(("", 0)) as silent:  # connections wait in the backlog, never answered
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        done, seconds = _taskarith("run", str(config), "--executor", "ray", "--address", address,
                                   "--out", str(tmp_path / "run"), join_seconds=6)
    assert done.returncode == 2, done.stderr
    line = _one_line_error(done.stderr)
    assert f"--address {address!r}" in line and "no answer within 6 s" in line
    assert seconds < 6 + 30  # the deadline, and the start of a Python process that imports torch and Ray
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("address", ["host", "host:0", "host:65536", "host:port", "a b:6379", "http://head:6379",
                                     "ray://", "", "head:6379\x1b[2J", "user@head:6379"])
def test_an_address_that_is_no_address_is_refused_before_ray_sees_it(config, tmp_path, address):
    result = CliRunner().invoke(app, ["run", str(config), "--executor", "ray", "--address", address,
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, (result.output, result.exception)
    line = _one_line_error(result.stderr)
    assert f"--address {quote(address)}: expected auto, HOST:PORT or ray://HOST:PORT" in line
    assert not (tmp_path / "run").exists()


def test_a_bad_ray_address_in_the_environment_is_named(config, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "head:99999")
    result = CliRunner().invoke(app, ["run", str(config), "--executor", "ray", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, (result.output, result.exception)
    assert "RAY_ADDRESS 'head:99999': expected auto" in _one_line_error(result.stderr)


@pytest.fixture(scope="module")
def cluster():
    """One local node of 2 CPUs and no GPU, whose workers' output is forwarded to this process."""
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, logging_level="error", log_to_driver=True,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}})
    yield
    ray_cluster.show_ray_output(ray, False)
    ray.shutdown()


@pytest.mark.parametrize("setting, expected", [
    ("resources.finetune.num_cpus=1000", "resources.finetune.num_cpus = 1000: no node of the Ray cluster can grant "
                                         "that many CPU(s) to one task (the largest node has 2)"),
    ("resources.evaluate.num_cpus=2.5", "resources.evaluate.num_cpus = 2.5: "),
    ("resources.finetune.num_gpus=1", "resources.finetune.num_gpus = 1: no node of the Ray cluster can grant that "
                                      "many GPU(s) to one task (no node has any GPU)"),
    ("resources.evaluate.memory=1000000000000000000", "resources.evaluate.memory = 1000000000000000000: "),
])
def test_resources_no_node_can_grant_are_refused_before_any_task_is_sent(cluster, config, tmp_path, monkeypatch,
                                                                         setting, expected):
    def submit(*_):
        raise AssertionError("a task was sent")

    monkeypatch.setattr(ray_executor, "_submit", submit)
    result = CliRunner().invoke(app, ["run", str(config), "--executor", "ray", "--set", setting,
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, (result.output, result.exception)
    assert expected in _one_line_error(result.stderr)
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


@pytest.mark.parametrize("finetune, nodes, expected", [
    ({"num_cpus": 2}, [{"CPU": 2.0}], None),
    ({"num_cpus": 0.5, "num_gpus": 1}, [{"CPU": 1.0, "GPU": 1.0}], None),
    ({"num_cpus": 4, "num_gpus": 1}, [{"CPU": 8.0}, {"CPU": 2.0, "GPU": 1.0}],
     "resources.finetune: num_cpus = 4, num_gpus = 1 fit no single node of the Ray cluster (its nodes have "
     "2 CPU, 1 GPU; 8 CPU, 0 GPU)"),
    ({"memory": 2**40}, [{"CPU": 2.0, "memory": 2.0**33}],
     "resources.finetune.memory = 1099511627776: no node of the Ray cluster can grant that many bytes to one task "
     "(the largest node has 8589934592)"),
    ({}, [], "the Ray cluster has no live node"),
])
def test_each_request_must_fit_one_node(finetune, nodes, expected):
    resources = ResourcesConfig(finetune=finetune)
    requests = {"finetune": resources.finetune.model_dump(), "evaluate": resources.evaluate.model_dump()}
    if expected is None:
        check_grantable(requests, nodes)
    else:
        with pytest.raises(TaskarithError, match=re.escape(expected)):
            check_grantable(requests, nodes)


@ray.remote(num_cpus=0)
class _Printer:
    def say(self, text: str) -> None:
        print(text, flush=True)


def _wait_for(capfd, marker: str) -> str:
    """Everything printed until `marker` shows: Ray forwards a worker's lines a moment after they are written,
    in the order that worker wrote them."""
    seen = ""
    deadline = time.monotonic() + 30
    while marker not in seen and time.monotonic() < deadline:
        time.sleep(0.2)
        out, err = capfd.readouterr()
        seen += out + err
    assert marker in seen, seen
    return seen


def test_what_ray_forwards_is_shown_escaped_only_when_asked_for(cluster, capfd, monkeypatch):
    monkeypatch.setenv("RAY_COLOR_PREFIX", "1")  # colours asked for: Ray's escape codes must still not show
    printer, tag = _Printer.remote(), uuid.uuid4().hex
    ray_cluster.show_ray_output(ray, True)
    ray.get(printer.say.remote(f"shown-{tag} \x1b]0;title\x07"))
    seen = _wait_for(capfd, f"shown-{tag}")  # a worker's line, forwarded through the function shown or not
    assert f"shown-{tag} \\x1b]0;title\\x07" in seen and "\x1b" not in seen and "\x07" not in seen
    ray_cluster.show_ray_output(ray, False)
    ray._private.worker.print_worker_logs({"lines": [f"hidden-{tag}"], "pid": "raylet", "is_err": True}, sys.stderr)
    assert f"hidden-{tag}" not in "".join(capfd.readouterr())


def test_ray_core_warnings_on_file_descriptor_2_are_kept_off_the_terminal_unless_asked_for(capfd):
    for show in (False, True):
        with ray_cluster._ray_stderr(show):
            os.write(2, b"[W rpc_client.h:153] Failed to connect \x1b[31m\n")
        assert capfd.readouterr().err == ("[W rpc_client.h:153] Failed to connect \\x1b[31m\n" if show else "")
