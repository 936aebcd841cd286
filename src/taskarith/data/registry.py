"""The built-in text-classification tasks and the split protocol shared by all tasks.

Protocol: test is the shipped test part where a corpus has one, else a stratified `test_fraction` of the
corpus; validation is a stratified `val_fraction` of the rest (at most `val_cap`). Both use SPLIT_SEED, so
they are the same for every training seed. Caps then shrink each split, stratified; only the train cap
depends on the training seed. Validation is only for choosing the scaling coefficient."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..groundwork import fetch
from ..groundwork.errors import TaskarithError, unknown
from ..groundwork.safety import check_name
from . import corpora
from .split_spec import SPLITS, SplitSpec
from .splits import held_count, stratified_cap, stratified_sample, stratified_split

SPLIT_SEED = 1234  # fixed: test and validation never depend on the training seed


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    archive: str  # key in fetch.ARCHIVES
    source: str  # "archive:member", for humans
    class_names: tuple[str, ...]  # natural-language names, as they appear in prompts
    templates: tuple[str, ...]  # prompt templates, each with one "{}" for the class name


@dataclass
class Split:
    inputs: list  # texts, or images for an image task
    labels: list[int]

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.labels):
            raise TaskarithError(f"split has {len(self.inputs)} inputs but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass
class TaskData:
    name: str
    class_names: tuple[str, ...]
    templates: tuple[str, ...]
    train: Split
    val: Split
    test: Split
    available: dict[str, int] | None = None  # split sizes before caps; None means no caps were applied
    caps: dict[str, int | None] | None = None

    def __post_init__(self) -> None:
        for part in SPLITS:
            bad = [lab for lab in getattr(self, part).labels if not 0 <= lab < len(self.class_names)]
            if bad:
                raise TaskarithError(
                    f"task {self.name}: {part} label {bad[0]!r} is outside the class list "
                    f"(expected 0..{len(self.class_names) - 1})"
                )

    def sizes(self) -> dict:
        now = {part: len(getattr(self, part)) for part in SPLITS}
        return {**now, "available": dict(self.available or now),
                "caps": dict(self.caps or dict.fromkeys(SPLITS))}


def _spec(name: str, description: str, class_names: Sequence[str], templates: Sequence[str]) -> TaskSpec:
    archive, member = corpora.SOURCES[name]
    return TaskSpec(name, description, archive, f"{archive}:{member}", tuple(class_names), tuple(templates))


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _spec("bbc", "BBC news articles by topic",
              ("business", "entertainment", "politics", "sport", "technology"),
              ("A news article about {}.", "This BBC story is about {}.")),
        _spec("tweets", "sentiment of tweets (airlines, driverless cars, news topics)",
              ("negative", "neutral", "positive"),
              ("A tweet with {} sentiment.", "The sentiment of this tweet is {}.")),
        _spec("mr", "Rotten Tomatoes review snippets: fresh (positive) vs rotten (negative)",
              ("negative", "positive"),
              ("A {} movie review.", "The critic's opinion of this film is {}.")),
        _spec("subj", "subjective review snippets vs objective plot-synopsis sentences",
              ("objective", "subjective"),
              ("This sentence is {}.", "The writing here is {}.")),
        _spec("trec", "TREC question type by expected answer",
              ("abbreviation", "description", "entity", "person", "location", "number"),
              ("The answer to this question is a kind of {}.", "Question type: {}.")),
        _spec("sms", "SMS messages: spam vs legitimate",
              ("not spam", "spam"),
              ("This text message is {}.", "An SMS that is {}.")),
        _spec("20ng", "20 Newsgroups posts by newsgroup (lowercased, shipped train/test)",
              ("atheism", "computer graphics", "microsoft windows", "pc hardware", "mac hardware",
               "the x window system", "things for sale", "cars", "motorcycles", "baseball", "hockey",
               "cryptography", "electronics", "medicine", "space", "christianity", "guns",
               "middle east politics", "politics", "religion"),
              ("A newsgroup post about {}.", "A discussion about {}.")),
        _spec("hedge", "CoNLL-2010 sentences: certain vs hedged (uncertain) statements",
              ("certain", "uncertain"),
              ("This statement is {}.", "The writer is {} about this claim.")),
    )
}


def _check_name(name: str) -> TaskSpec:
    if name not in TASKS:
        raise unknown("task", name, TASKS)
    return TASKS[name]


def _take(inputs: Sequence[str], labels: Sequence[int], idx: np.ndarray) -> Split:
    return Split([inputs[i] for i in idx], [int(labels[i]) for i in idx])


def split_off_test(labels: Sequence[int], test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(pool_idx, test_idx) for a corpus without a shipped test part: fixed by SPLIT_SEED."""
    return stratified_split(labels, test_fraction, SPLIT_SEED)


def make_task(name: str, class_names: Sequence[str], templates: Sequence[str],
              inputs: Sequence[str], labels: Sequence[int],
              test: tuple[Sequence[str], Sequence[int]] | None = None, split: SplitSpec = SplitSpec()) -> TaskData:
    """Split a labelled corpus by the protocol in this module's docstring; `test` is a shipped test part."""
    check_name(name, "task name")  # it names the task's folders in a run
    if test is None:
        pool_idx, test_idx = split_off_test(labels, split.test_fraction)
        pool = _take(inputs, labels, pool_idx)
        test_split = _take(inputs, labels, test_idx)
    else:
        pool = Split(list(inputs), [int(lab) for lab in labels])
        test_split = Split(list(test[0]), [int(lab) for lab in test[1]])
    n_val = held_count(len(pool), split.val_fraction)
    if split.val_cap is not None:
        n_val = min(n_val, split.val_cap)
    val_idx = stratified_sample(pool.labels, n_val, SPLIT_SEED, leave_one=True)
    train_idx = np.setdiff1d(np.arange(len(pool)), val_idx, assume_unique=True)
    parts = {"train": _take(pool.inputs, pool.labels, train_idx),
             "val": _take(pool.inputs, pool.labels, val_idx),
             "test": test_split}
    available = {part: len(taken) for part, taken in parts.items()}
    caps = split.caps or {}  # a mapping once SplitSpec is made; its field's type is what the constructor takes
    for part, cap in caps.items():
        if cap is not None:
            # Only the training subset varies with the seed; val and test stay fixed across seeds.
            keep = stratified_cap(parts[part].labels, cap, split.seed if part == "train" else SPLIT_SEED)
            parts[part] = _take(parts[part].inputs, parts[part].labels, keep)
    for part, taken in parts.items():
        if len(taken) == 0:
            raise TaskarithError(
                f"task {name}: the {part} split is empty ({len(inputs)} examples in all); "
                f"expected more examples or larger fractions/caps"
            )
    return TaskData(name, tuple(class_names), tuple(templates), parts["train"], parts["val"], parts["test"],
                    available, dict(caps))


def load_task(name: str, split: SplitSpec = SplitSpec()) -> TaskData:
    """A built-in task, split by the protocol; the corpus is fetched and parsed on first use."""
    spec = _check_name(name)
    corpus = corpora.load_corpus(name)
    texts, labels = corpus.test_texts, corpus.test_labels
    test = None if texts is None or labels is None else (texts, labels)
    return make_task(name, spec.class_names, spec.templates, corpus.texts, corpus.labels, test, split)


def _archive_present(key: str) -> bool:
    return (fetch.cache_dir() / "archives" / fetch.ARCHIVES[key].filename).exists()


def _available_sizes(name: str, test_fraction: float = 0.2) -> tuple[int | None, int | None]:
    """(examples after clean-up, default test size) from the parsed cache's shape or an already fetched
    archive; (None, None) rather than a download."""
    shape = corpora.read_shape(name)
    if shape is None:  # none yet (parsing writes it), or a cache written before shapes were: kept from now on
        corpus = corpora.read_cache(name)
        if corpus is None and not _archive_present(TASKS[name].archive):
            return None, None
        if corpus is None:
            corpus = corpora.parse_and_cache(name)
        else:
            corpora.write_shape(name, corpus)
        shape = corpora.shape_of(corpus)
    if shape.test_count is not None:
        return len(shape.labels) + shape.test_count, shape.test_count
    return len(shape.labels), len(split_off_test(shape.labels, test_fraction)[1])


def describe_tasks() -> list[dict]:
    """One row per built-in task for `taskarith tasks`: name, description, classes, available (examples
    after clean-up), test (default test size), source. Sizes are None until the task's archive is fetched."""
    rows = []
    for spec in TASKS.values():
        available, test = _available_sizes(spec.name)
        rows.append({"name": spec.name, "description": spec.description, "classes": list(spec.class_names),
                     "available": available, "test": test, "source": spec.source})
    return rows


def fetch_tasks(names: list[str] | None = None) -> list[Path]:
    """Fetch and verify the archives behind these tasks (all when None); one path per distinct archive."""
    specs = [_check_name(n) for n in (list(TASKS) if names is None else names)]
    archives = list(dict.fromkeys(spec.archive for spec in specs))
    return [fetch.fetch(key) for key in archives]
