"""Merge rules that task arithmetic is compared against: pure functions over task vectors (rules.py,
spectral.py and the methods that read data), their registry, and `merge_vectors` (merge.py), which runs them.

Only the registry is gathered here: it imports no torch, so listing the methods and checking their settings
stay quick. Import what runs a merge from its module (`from taskarith.merging.merge import merge_vectors`)."""

from .methods import BASELINE, MERGE_METHODS, NEEDS, MergeMethod, check_settings, merge_method

__all__ = ["BASELINE", "MERGE_METHODS", "NEEDS", "MergeMethod", "check_settings", "merge_method"]
