"""Loading a named model: user paths expanded, and a loader's failure turned into one line naming the source."""

from __future__ import annotations

import os
from typing import Any

from ..errors import TaskarithError


def expand_name(name: str) -> str:
    """A model name with ~ and $VARS expanded when that names something on disk; hub ids pass unchanged."""
    expanded = os.path.expandvars(os.path.expanduser(name))
    return expanded if os.path.exists(expanded) else name


def load_pretrained(loader: Any, path: str, what: str, **kwargs: Any) -> Any:
    """`loader.from_pretrained(path, **kwargs)`; a missing or unreadable `what` is a TaskarithError."""
    try:
        return loader.from_pretrained(path, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = "folder" if os.path.isdir(path) else "model id (not in the local cache?)"
        raise TaskarithError(f"{path}: cannot load the {what} from this {where}: {first}") from e
