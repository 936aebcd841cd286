"""Classification tasks: the built-in text registry, user tasks from files, image and GLUE tasks from a local
data root, and the split protocol."""

from .files import load_file_task
from .registry import TASKS, Split, TaskData, TaskSpec, describe_tasks, fetch_tasks, load_task
from .split_spec import SplitSpec

__all__ = ["TASKS", "TaskSpec", "TaskData", "Split", "SplitSpec", "load_task", "load_file_task", "describe_tasks",
           "fetch_tasks", "resolve_task", "data_root"]

DATA_ENV = "TASKARITH_DATA"


def data_root(root: str | None = None) -> str | None:
    """The data root: `root` (data.root) if given, else $TASKARITH_DATA; ~ and $VARS expanded."""
    import os

    value = root if root is not None else os.environ.get(DATA_ENV)
    return os.path.expandvars(os.path.expanduser(value)) if value else None


def resolve_task(task: str, *, root: str | None = None, split: SplitSpec = SplitSpec()) -> TaskData:
    """An embedded task by name, `image:NAME` or `glue:NAME` under the data root, or a labelled
    .csv/.jsonl file by path."""
    from pathlib import Path

    from ..groundwork.errors import TaskarithError, unknown

    kind, _, name = task.partition(":")
    if kind == "image" and name:
        from .images import load_image_task

        return load_image_task(name, data_root(root), split)
    if kind == "glue" and name:
        from .glue import load_glue_task

        base = data_root(root)
        if base is None:
            raise TaskarithError(f"{task}: needs a data root; set data.root or ${DATA_ENV}")
        return load_glue_task(name, base, split)
    if task in TASKS:
        return load_task(task, split)
    if Path(task).suffix.lower() in (".csv", ".jsonl", ".ndjson", ".json"):
        return load_file_task(Path(task), split=split)
    raise unknown("task", task, TASKS, also=", image:NAME, glue:NAME, or a path to a .csv/.jsonl file")
