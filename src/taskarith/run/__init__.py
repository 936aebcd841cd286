"""A run: the shared Experiment, its stages (fine-tune, evaluate, negate, analyses), and results.json."""

from .experiment import Experiment
from .pipeline import run_experiment
from .training import Unit, trained_vector, vector_path

__all__ = ["Experiment", "Unit", "run_experiment", "trained_vector", "vector_path"]
