"""Loading a named model: user paths expanded, and a loader's failure turned into one line naming the source."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from ..groundwork.errors import TaskarithError, first_line, one_line
from ..groundwork.input_files import note_input
from ..groundwork.tensor_files import check_safetensors


PATH_STARTS = ("/", "./", "../", "~", "$")  # how a name written as a path begins; a hub id never does


def expand_name(name: str) -> str:
    """A model name with ~ and $VARS expanded when that names something on disk; hub ids pass unchanged."""
    expanded = os.path.expandvars(os.path.expanduser(name))
    return expanded if os.path.exists(expanded) else name


def model_source(name: str) -> str:
    """What every family loads `name` from: the file or folder it names on disk (~ and $VARS expanded), else
    a hub id as given. A name written as a path that names nothing fails here, not as a hub lookup."""
    source = expand_name(name)
    written_as_path = name.startswith(PATH_STARTS) or os.path.expandvars(name) != name
    if written_as_path and not os.path.exists(source):
        raise TaskarithError(f"{name}: no such model folder")
    return source


def load_pretrained(loader: Any, path: str, what: str, **kwargs: Any) -> Any:
    """`loader.from_pretrained(path, **kwargs)`; a missing, unreadable or damaged `what` is a TaskarithError.

    A folder's safetensors headers are checked first, as every safetensors file taskarith reads is: the
    loader would otherwise fail on a lying offset or a name stored twice with an error of its own."""
    from safetensors import SafetensorError

    if os.path.isdir(path):
        note_input(path)
        for weights in sorted(Path(path).glob("*.safetensors")):
            check_safetensors(weights)
    try:
        return loader.from_pretrained(path, **kwargs)
    except (OSError, ValueError, KeyError, SafetensorError, pickle.UnpicklingError, EOFError) as e:
        # UnpicklingError: a pickle that weights-only loading refuses (its payload never runs)
        where = "folder" if os.path.isdir(path) else "model id (not in the local cache?)"
        raise TaskarithError(f"{path}: cannot load the {what} from this {where}: {one_line(first_line(e))}") from e
