"""Merge rules that task arithmetic is compared against: pure functions over task vectors, and their registry."""

from .data import MergeData
from .methods import (BASELINE, MERGE_METHODS, NEEDS, MergeMethod, check_merge, data_free, merge_method,
                      merge_vectors, tensors_sha256)
from .rules import (SIGN_METHODS, dare, dare_ties, magnitude_prune, random_prune, sign_elect, task_arithmetic, ties,
                    weight_averaging)
from .spectral import iso_c, iso_cts, tsv_m

__all__ = ["MergeData", "BASELINE", "MERGE_METHODS", "NEEDS", "MergeMethod", "check_merge", "data_free", "merge_method",
           "merge_vectors", "tensors_sha256", "SIGN_METHODS", "weight_averaging", "task_arithmetic", "ties", "dare",
           "dare_ties", "magnitude_prune", "random_prune", "sign_elect", "tsv_m", "iso_c", "iso_cts"]
