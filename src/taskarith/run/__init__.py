"""A run: the shared Experiment, its stages (fine-tune, evaluate, negate, analyses), and results.json.

Each name loads its module on first use, so that a command checking its arguments (`--seeds`, a run folder)
does not pay for torch before it fails."""

from typing import Any

_HOMES = {"Experiment": "experiment", "run_experiment": "pipeline", "Unit": "finetunes",
          "trained_vector": "finetunes", "vector_path": "finetunes"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'taskarith.run' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_HOMES[name]}", __name__), name)


__all__ = ["Experiment", "Unit", "run_experiment", "trained_vector", "vector_path"]
