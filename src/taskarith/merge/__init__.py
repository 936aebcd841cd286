"""Merge rules that task arithmetic is compared against, as small pure functions over task vectors."""

from .rules import MERGE_RULES, dare, magnitude_prune, merge_vectors, random_prune, sign_elect, task_arithmetic, ties

__all__ = ["MERGE_RULES", "merge_vectors", "task_arithmetic", "ties", "dare", "magnitude_prune", "random_prune",
           "sign_elect"]
