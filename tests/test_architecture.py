"""The layout holds: imports flow one way through the layers, without cycles, and files and functions stay
small enough to read."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from taskarith.run.code_closure import PACKAGE, imports_of, module_name

# config → data and models → fine-tune → vectors → merge and evaluate → the run's stages → results.json
# → report. A module may import from its own layer's package or from lower layers; report and run share a layer and
# never import each other (the report is drawn from results.json alone).
LAYERS = [
    {"version"},
    {"groundwork"},  # errors, safe reads, locks, atomic writes, pinned fetches: themselves one way, no cycle
    {"results_record"},  # the shape of results.json, types only: the run writes it, the rest read it
    {"paradigms"},
    {"config"},
    {"data", "models"},
    {"vectors"},  # the task-vector type that fine-tuning produces and everything after it reads
    {"training"},
    {"merging", "evaluate", "extraction"},
    {"analysis", "recipes"},
    {"run", "report"},
    {"cli"},  # one module per command group
    {"api"},  # the notebook surface over every layer
    {"__main__", "__init__"},  # the package's public names, each loaded on first use
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {i if i in modules else i.rpartition(".")[0] for i in imports_of(p)} & set(modules)
            for m, p in modules.items()}


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_has_a_layer():
    assert {top(m) for m in graph()} <= set(LAYER)


def test_imports_flow_one_way():
    wrong = [(m, i) for m, imports in graph().items() for i in imports
             if top(i) != top(m) and (LAYER[top(i)] > LAYER[top(m)]
                                      or (LAYER[top(i)] == LAYER[top(m)] and top(i) != "__init__"))]
    assert not wrong, wrong


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for i in sorted(edges[m]):
            if state.get(i) == 1:
                pytest.fail("import cycle: " + " → ".join(path[path.index(i):] + [m, i]))
            if i not in state:
                visit(i, path + [m])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])


def test_report_and_analysis_import_no_run_stage():
    code = ("import sys, taskarith.report, taskarith.analysis.disentangle, taskarith.analysis.kernel, "
            "taskarith.analysis.similarity, taskarith.analysis.efficiency, taskarith.analysis.advantage\n"
            "print(sorted(m for m in sys.modules if m.startswith('taskarith.run')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_files_and_functions_stay_small():
    """No source file over 300 lines; no function over 40 lines unless a comment right above it says why."""
    long_files, long_functions = [], []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().splitlines()
        if len(lines) > 300:
            long_files.append(f"{path.name}: {len(lines)}")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - node.lineno + 1 > 40 and not lines[start - 2].strip().startswith("#"):
                    long_functions.append(f"{path.name}:{node.name}")
    assert not long_files and not long_functions, (long_files, long_functions)
