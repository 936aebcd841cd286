"""Merge rules that task arithmetic is compared against: pure functions over task vectors, and their registry."""

from .methods import MERGE_METHODS, MergeMethod, merge_method, merge_vectors
from .rules import dare, dare_ties, magnitude_prune, random_prune, sign_elect, task_arithmetic, ties

__all__ = ["MERGE_METHODS", "MergeMethod", "merge_method", "merge_vectors", "task_arithmetic", "ties", "dare",
           "dare_ties", "magnitude_prune", "random_prune", "sign_elect"]
