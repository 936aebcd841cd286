"""Which of the package's modules a stage runs, and a digest of their source: a stage's result is reused only
while the code that computes it is unchanged, and code it never imports cannot make it compute again.

The closure follows every taskarith import, at any depth of a file (imports inside functions count), read
from the source, not from a running process. A package's `__init__` counts where it is imported by name
(`from ..merging import MERGE_METHODS`), not as the parent of a module imported: the package's `__init__`
files only gather names, and its registries are filled in the modules that define them.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path
from typing import Iterable

PACKAGE = Path(__file__).resolve().parent.parent


def module_name(path: Path) -> str:
    """`taskarith.merging.rules` for PACKAGE/merging/rules.py; a package's `__init__` is the package."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _source(path: Path) -> bytes:
    return path.read_bytes()


@functools.cache
def imports_of(path: Path) -> frozenset[str]:
    """Every taskarith name `path` imports, at any depth of the file: modules, and for `from M import a` both
    M and M.a (a may be a submodule or a name defined in M)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(_source(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("taskarith")}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if not target.startswith("taskarith"):
                continue
            # `from . import fetch`: the names are the modules imported, the package is the importer's own
            found |= {f"{target}.{a.name}" for a in node.names} | ({target} if node.module else set())
    return frozenset(found - {name})


@functools.lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    """Every module of the package by name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def closure(roots: Iterable[str]) -> set[str]:
    """The roots and every module they import, directly or through one another. A root that is no module of
    the package is a bug in the caller's list: KeyError."""
    known = modules()
    todo = list(roots)
    unknown = [r for r in todo if r not in known]
    if unknown:
        raise KeyError(f"not modules of the package: {', '.join(unknown)}")
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [i for i in imports_of(known[name]) if i in known]
    return seen


@functools.lru_cache(maxsize=None)
def code_digest(roots: tuple[str, ...]) -> str:
    """sha256 over the source of the roots' closure, each file under its path in the package."""
    h = hashlib.sha256()
    for name in sorted(closure(roots)):
        path = modules()[name]
        h.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + _source(path) + b"\0")
    return h.hexdigest()
