"""A function's keyword-only parameters, read from its module's source without importing the module: the
registry learns each merge rule's settings, their kinds and defaults, while torch (which every rule module
imports) stays unloaded, so listing the methods and checking a config are quick."""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

from . import kinds

NO_DEFAULT = object()  # a keyword the caller must always give


@dataclass(frozen=True)
class Keyword:
    name: str
    annotation: str  # as written in the source ("" where there is none)
    default: object  # the literal default, NO_DEFAULT where there is none

    def kind(self) -> object:
        """The kind the annotation names, one of kinds.NAMED."""
        if self.annotation not in kinds.NAMED:
            raise ValueError(f"{self.name}: {self.annotation or 'no annotation'} names no kind of setting")
        return kinds.NAMED[self.annotation]


@functools.cache
def keywords(function: str) -> dict[str, Keyword]:
    """The keyword-only parameters of `function`, named MODULE.NAME within this package (rules.ties)."""
    module, _, name = function.partition(".")
    tree = ast.parse(Path(__file__).with_name(f"{module}.py").read_text(encoding="utf-8"))
    constants = _constants(tree)
    found = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name]
    if not found:
        raise ValueError(f"{module}.py defines no function {name}")
    args = found[0].args
    return {arg.arg: Keyword(arg.arg, ast.unparse(arg.annotation) if arg.annotation else "",
                             NO_DEFAULT if default is None else _literal(default, constants))
            for arg, default in zip(args.kwonlyargs, args.kw_defaults)}


def _constants(tree: ast.Module) -> dict[str, ast.expr]:
    """The module's top-level NAME = value assignments, so a default may name one (COMMON_SHARE)."""
    return {node.targets[0].id: node.value for node in tree.body
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)}


def _literal(node: ast.expr, constants: dict[str, ast.expr]) -> object:
    if isinstance(node, ast.Name) and node.id in constants:
        node = constants[node.id]
    return ast.literal_eval(node)
