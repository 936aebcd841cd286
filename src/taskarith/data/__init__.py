"""Text-classification tasks: the built-in registry, user tasks from files, and the split protocol."""

from .files import load_file_task
from .registry import TASKS, Split, TaskData, TaskSpec, describe_tasks, fetch_tasks, load_task

__all__ = ["TASKS", "TaskSpec", "TaskData", "Split", "load_task", "load_file_task", "describe_tasks", "fetch_tasks"]
