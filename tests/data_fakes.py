"""Synthetic corpora and the empty, download-free cache the data tests run in."""

from __future__ import annotations

import numpy as np

from taskarith.groundwork import fetch
from taskarith.data import corpora


def offline_cache(request, tmp_path, monkeypatch):
    """An empty cache for every unit test, where nothing may download; integration tests keep the real one."""
    if request.node.get_closest_marker("integration"):
        return None
    monkeypatch.setenv("TASKARITH_CACHE", str(tmp_path / "cache"))

    def no_fetch(name):
        raise AssertionError(f"test tried to fetch {name}")

    monkeypatch.setattr(fetch, "fetch", no_fetch)
    return tmp_path / "cache"


def imbalanced_labels(sizes=(50, 30, 15, 5)):
    return np.repeat(np.arange(len(sizes)), sizes)


def synthetic_corpus(sizes=(60, 30, 10), shipped_test=None):
    labels = [int(c) for c in imbalanced_labels(sizes)]
    texts = [f"text {i} of class {c}" for i, c in enumerate(labels)]
    if shipped_test is None:
        return corpora.Corpus(texts, labels)
    test_labels = [i % len(sizes) for i in range(shipped_test)]
    return corpora.Corpus(texts, labels, [f"shipped {i}" for i in range(shipped_test)], test_labels)
