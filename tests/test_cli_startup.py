"""Only the commands that compute pay for torch: every `--help`, `taskarith tasks` and a config that fails its
checks run without importing torch or transformers (each takes seconds to import). Asserted on imports, in a
fresh interpreter, never on time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

HEAVY = ("torch", "transformers")

# runs each command line through main() in one fresh process, in turn, and records after each which heavy
# module is loaded by then: the first line that shows one is the command that imported it
PROBE = """
import json, sys
import typer
from taskarith.cli.app import app, main

def paths(command, path=()):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from paths(sub, (*path, name))

lines = [[*p, "--help"] for p in paths(typer.main.get_command(app))] + json.loads(sys.argv[1])
seen = [{"line": None, "code": 0, "heavy": [m for m in HEAVY if m in sys.modules]}]  # the import itself
for line in lines:
    sys.argv = ["taskarith", *line]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    seen.append({"line": line, "code": code, "heavy": [m for m in HEAVY if m in sys.modules]})
print(json.dumps(seen))
"""


def _probe(lines: list[list[str]], tmp_path) -> tuple[list[dict], str]:
    env = {**os.environ, "TASKARITH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n" + PROBE, json.dumps(lines)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1]), out.stderr


def test_help_listings_and_config_errors_import_no_torch(tmp_path):
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text(yaml.safe_dump({"train": {"steps": -1}}))
    good.write_text(yaml.safe_dump({"train": {"steps": 3}}))
    seen, stderr = _probe([["tasks"], ["run", str(bad)], ["run", str(good), "--set", "train.stepz=3"]], tmp_path)
    loaded = [s for s in seen if s["heavy"]]
    if loaded:
        line = loaded[0]["line"]
        culprit = " ".join(["taskarith", *line]) if line else "importing taskarith.cli.app"
        raise AssertionError(f"{culprit} loaded {', '.join(loaded[0]['heavy'])}")
    helps = {tuple(s["line"][:-1]): s["code"] for s in seen[1:] if s["line"][-1] == "--help"}
    assert {(), ("run",), ("export",), ("vector", "merge"), ("analyze", "kernel"), ("results", "pool")} <= set(helps)
    assert set(helps.values()) == {0}
    assert [s["code"] for s in seen[-3:]] == [0, 2, 2]  # tasks lists; each bad config: one line, exit code 2
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith(f"error: {bad}: train.steps") and "train.stepz: unknown key" in errors[1]
