"""The split protocol: stratified splits and caps, and how tasks are carved into train, val and test."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskarith.data import Split, SplitSpec, TaskData, corpora, load_task, registry
from taskarith.data.splits import allocate, stratified_cap, stratified_sample, stratified_split
from taskarith.groundwork.errors import TaskarithError

from data_fakes import imbalanced_labels, offline_cache, synthetic_corpus


@pytest.fixture(autouse=True)
def cache(request, tmp_path, monkeypatch):
    """Every unit test gets an empty cache, and nothing may download."""
    return offline_cache(request, tmp_path, monkeypatch)


@pytest.fixture
def fake_corpus(monkeypatch):
    """Make load_task("bbc") serve a synthetic corpus; call with the corpus to serve."""
    def install(corpus):
        monkeypatch.setattr(registry.corpora, "load_corpus", lambda name: corpus)
    install(synthetic_corpus((40, 40, 40, 40, 40)))
    return install


# ---- splits ------------------------------------------------------------------------------------

def test_allocate_is_proportional_and_sums_to_n():
    take = allocate([50, 30, 15, 5], 20)
    assert take.sum() == 20
    assert list(take) == [10, 6, 3, 1]


def test_allocate_gives_every_class_one_when_room():
    take = allocate([1000, 1000, 2], 10)
    assert take.sum() == 10 and take.min() >= 1


def test_allocate_respects_upper_bounds():
    take = allocate([5, 5], 9, upper=[4, 4])
    assert list(take) == [4, 4]


def test_stratified_split_is_deterministic_disjoint_and_covering():
    labels = imbalanced_labels()
    keep, held = stratified_split(labels, 0.2, seed=7)
    keep2, held2 = stratified_split(labels, 0.2, seed=7)
    assert np.array_equal(keep, keep2) and np.array_equal(held, held2)
    assert not set(keep) & set(held)
    assert sorted(set(keep) | set(held)) == list(range(len(labels)))
    assert len(held) == 20
    assert collections.Counter(labels[held]) == {0: 10, 1: 6, 2: 3, 3: 1}


def test_stratified_split_depends_on_seed():
    labels = imbalanced_labels()
    assert not np.array_equal(stratified_split(labels, 0.2, 0)[1], stratified_split(labels, 0.2, 1)[1])


def test_stratified_split_keeps_a_singleton_class_on_the_kept_side():
    labels = np.array([0] * 10 + [1])
    keep, held = stratified_split(labels, 0.5, 0)
    assert 10 in keep


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=2, max_size=80), st.floats(0.05, 0.95), st.integers(0, 2**31))
def test_stratified_split_properties(labels, fraction, seed):
    labels = np.array(labels)
    keep, held = stratified_split(labels, fraction, seed)
    assert not set(keep) & set(held)
    assert len(keep) + len(held) == len(labels)
    counts = collections.Counter(labels.tolist())
    kept = collections.Counter(labels[keep].tolist())
    assert all(kept[c] >= 1 for c in counts)  # no class is held out entirely


def test_stratified_split_rejects_bad_fraction():
    with pytest.raises(ValueError):
        stratified_split([0, 1], 1.0, 0)


def test_stratified_cap_keeps_proportions_and_is_deterministic():
    labels = imbalanced_labels((500, 300, 150, 50))
    idx = stratified_cap(labels, 100, seed=3)
    assert np.array_equal(idx, stratified_cap(labels, 100, seed=3))
    assert len(idx) == 100 and len(set(idx)) == 100
    assert collections.Counter(labels[idx]) == {0: 50, 1: 30, 2: 15, 3: 5}


def test_stratified_cap_keeps_one_per_class_when_possible():
    labels = imbalanced_labels((1000, 1000, 1000, 3))
    idx = stratified_cap(labels, 8, seed=0)
    assert len(idx) == 8 and set(labels[idx]) == {0, 1, 2, 3}


def test_stratified_cap_at_or_above_size_keeps_everything():
    labels = imbalanced_labels()
    assert np.array_equal(stratified_cap(labels, len(labels), 0), np.arange(len(labels)))
    assert np.array_equal(stratified_cap(labels, 10**6, 0), np.arange(len(labels)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=100), st.integers(0, 120), st.integers(0, 2**31))
def test_stratified_sample_properties(labels, n, seed):
    labels = np.array(labels)
    idx = stratified_sample(labels, n, seed)
    assert len(idx) == min(n, len(labels)) and len(set(idx)) == len(idx)
    if n >= len(set(labels.tolist())):
        assert set(labels[idx].tolist()) == set(labels.tolist())


# ---- the split protocol -------------------------------------------------------------------------

def test_splits_do_not_depend_on_training_seed_without_caps(fake_corpus):
    a, b = load_task("bbc", SplitSpec(seed=0)), load_task("bbc", SplitSpec(seed=5))
    assert a.test == b.test and a.val == b.val and a.train == b.train


def test_splits_are_disjoint_and_cover_the_corpus(fake_corpus):
    task = load_task("bbc")
    texts = task.train.inputs + task.val.inputs + task.test.inputs
    assert len(texts) == len(set(texts)) == 200
    assert len(task.test) == 40 and len(task.val) == 16


def test_val_cap_limits_validation(fake_corpus):
    task = load_task("bbc", SplitSpec(val_fraction=0.5, val_cap=10))
    assert len(task.val) == 10 and len(task.train) == 150


def test_train_cap_varies_with_seed_but_test_does_not(fake_corpus):
    caps = {"train": 20, "test": 10}
    a, b = load_task("bbc", SplitSpec(seed=0, caps=caps)), load_task("bbc", SplitSpec(seed=1, caps=caps))
    assert len(a.train) == 20 and collections.Counter(a.train.labels) == {c: 4 for c in range(5)}
    assert a.train != b.train
    assert a.test == b.test and len(a.test) == 10
    assert a.sizes() == {"train": 20, "val": 16, "test": 10,
                         "available": {"train": 144, "val": 16, "test": 40},
                         "caps": {"train": 20, "val": None, "test": 10}}


def test_shipped_test_is_used_as_is(fake_corpus):
    fake_corpus(synthetic_corpus((30, 30), shipped_test=12))
    task = load_task("bbc", SplitSpec(test_fraction=0.5))
    assert task.test.inputs == [f"shipped {i}" for i in range(12)]
    assert len(task.train) + len(task.val) == 60


@pytest.mark.parametrize("kwargs, fragment", [
    ({"test_fraction": 0.0}, "test_fraction"),
    ({"test_fraction": 1.0}, "test_fraction"),
    ({"val_fraction": -0.1}, "val_fraction"),
    ({"val_fraction": "0.1"}, "val_fraction"),
    ({"val_cap": 0}, "val_cap"),
    ({"caps": {"train": 0}}, "caps['train']"),
    ({"caps": {"dev": 5}}, "'dev'"),
    ({"seed": -1}, "seed"),
])
def test_bad_split_settings_are_refused_where_they_are_made(kwargs, fragment):
    with pytest.raises(TaskarithError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        SplitSpec(**kwargs)


def test_a_split_spec_is_frozen_and_names_every_split():
    import dataclasses

    spec = SplitSpec(seed=3, caps={"train": 20})
    assert dict(spec.caps) == {"train": 20, "val": None, "test": None}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 4
    with pytest.raises(TypeError):
        spec.caps["val"] = 5


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(TaskarithError, match="unknown task 'imdb'; known: bbc, tweets"):
        load_task("imdb")


def test_empty_split_is_an_error(fake_corpus):
    fake_corpus(corpora.Corpus(["a", "b", "c", "d"], [0, 0, 1, 1]))
    with pytest.raises(TaskarithError, match="the val split is empty"):
        load_task("bbc", SplitSpec(val_fraction=0.1))


def test_label_outside_class_list_is_an_error():
    with pytest.raises(TaskarithError, match="label 3 is outside the class list"):
        TaskData("t", ("a", "b"), ("{}.",), Split(["x"], [3]), Split(["y"], [0]), Split(["z"], [1]))


def test_split_needs_one_label_per_text():
    with pytest.raises(TaskarithError):
        Split(["a", "b"], [0])
