"""taskarith: task arithmetic with non-linear, NTK-linearized and attention-only task vectors.

The public surface, loaded on first use so that `import taskarith` stays cheap:

    import taskarith as ta
    tau = ta.extract("base-folder", "finetuned-folder", preset="attention")
    merged = ta.merge(["a.safetensors", "b.safetensors"], "ties")
    ta.export("base-folder", ["a.safetensors", "b.safetensors"], "merged-model", method="ties", alpha=1.0)
    ta.score(ta.load_model("base-folder"), "sms", [merged], [[0.5], [1.0]])
"""

from .version import __version__


def __getattr__(name: str):
    if name in ("TaskVector",):
        from .vectors import TaskVector
        return TaskVector
    if name in _CHECKED:  # the wrappers that check their arguments on entry
        from . import api
        return getattr(api, name)
    if name in _REGISTRIES:
        return _registry(name)
    raise AttributeError(f"module 'taskarith' has no attribute {name!r}")


_CHECKED = ("load_model", "extract", "merge", "export", "finetune", "score", "applied", "run_experiment",
            "load_config")
_REGISTRIES = ("PARADIGMS", "MERGE_METHODS", "FAMILIES", "PRESETS", "TASKS")


def _registry(name: str):
    """The registries: paradigms, merge methods, model families, parameter presets, embedded tasks."""
    from .data.registry import TASKS
    from .training.selection import PRESETS
    from .merging import MERGE_METHODS
    from .models import FAMILIES
    from .paradigms import PARADIGMS

    return {"PARADIGMS": PARADIGMS, "MERGE_METHODS": MERGE_METHODS, "FAMILIES": FAMILIES, "PRESETS": PRESETS,
            "TASKS": TASKS}[name]


__all__ = ["__version__", "TaskVector", *_CHECKED, *_REGISTRIES]
