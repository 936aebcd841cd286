"""How a file the user writes (a run config, a merge recipe) is validated: strictly, and with keys that have
moved read at their new place, so that files written before the move (results.json embeds its config) still
load."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

KeyPath = tuple[str, ...]  # the keys from the top of a tree down to one value


class Strict(BaseModel):
    # inf and nan pass bounds such as gt=0 and would only fail deep inside training. Strict types: without them
    # `lr: true` trains at 1.0 and `steps: 2.7` at 2; an integer still passes for a float
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


def moved(tree: Any, moves: Mapping[KeyPath, tuple[object, Sequence[KeyPath]]]) -> Any:
    """`tree` (as read from a file) with each moved key's value at its new places: {old path: (the old key's
    default, new paths)}. A value at that default asked for nothing, so it sets nothing; a value given at a new
    place wins. Where a section on the way is no mapping, it is left for validation to refuse."""
    if not isinstance(tree, dict) or not any(old[-1] in (_section(tree, old[:-1]) or {}) for old in moves):
        return tree
    tree = copy.deepcopy(tree)  # the caller's tree stays as it was read
    for old, (default, new) in moves.items():
        holder = _section(tree, old[:-1])
        if holder is None or old[-1] not in holder:
            continue
        value = holder.pop(old[-1])
        for path in new if value != default else ():
            target = _section(tree, path[:-1], create=True)
            if target is not None:
                target.setdefault(path[-1], value)
    return tree


def _section(tree: dict, path: KeyPath, create: bool = False) -> dict | None:
    """The mapping at `path` (made where `create` and absent), or None where something else stands there."""
    node: Any = tree
    for key in path:
        node = node.setdefault(key, {}) if create else node.get(key)
        if not isinstance(node, dict):
            return None
    return node
