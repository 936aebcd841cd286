"""Text-classification tasks: the built-in registry, user tasks from files, and the split protocol."""

from .files import load_file_task
from .registry import TASKS, Split, TaskData, TaskSpec, describe_tasks, fetch_tasks, load_task

__all__ = ["TASKS", "TaskSpec", "TaskData", "Split", "load_task", "load_file_task", "describe_tasks", "fetch_tasks"]


def resolve_task(task: str, *, seed: int = 0, **split_args) -> TaskData:
    """An embedded task by name, or a labelled .csv/.jsonl/.json file by path."""
    from pathlib import Path

    from ..errors import TaskarithError

    if task in TASKS:
        return load_task(task, seed=seed, **split_args)
    if Path(task).suffix.lower() in (".csv", ".jsonl", ".ndjson", ".json"):
        return load_file_task(Path(task), seed=seed, **split_args)
    raise TaskarithError(f"unknown task {task!r}; known: {', '.join(TASKS)}, or a path to a .csv/.jsonl file")
