"""GLUE as text to text, for encoder-decoder models: the T5 input formats and label words.

Read from a local data root: the original TSV distribution (`<root>/glue/<TASK>/{train,dev}.tsv`, as the GLUE
download script writes it) or, when pyarrow is importable, the HF parquet export
(`<root>/glue/<task>/{train,validation}-*.parquet`). The dev set is the test split, as is standard (GLUE's
test labels are hidden); validation is carved from train by the registry's protocol.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..groundwork.errors import TaskarithError, clip, quote, unknown
from ..groundwork.safety import read_text
from .registry import TaskData, make_task
from .split_spec import SplitSpec

TEMPLATES = ("{}",)  # the target text is the label word itself


class Prompt(str):
    """A model input that carries the candidate targets it is scored against (its task's label words)."""

    __slots__ = ()
    choices: tuple[str, ...] = ()


def prompt_class(task: str, choices: tuple[str, ...]) -> type[Prompt]:
    """A Prompt type per task: the choices live on the class, so a million prompts cost no more than strings."""
    return type(f"{task.capitalize()}Prompt", (Prompt,), {"__slots__": (), "choices": choices})


@dataclass(frozen=True)
class GlueSpec:
    name: str  # as in configs: glue:NAME
    folder: str  # the TSV distribution's folder
    prompt: str  # the T5 input format, over the canonical field names
    tsv_fields: dict[str, str]  # canonical field -> TSV column (CoLA has no header: column numbers)
    tsv_label: str
    parquet_fields: dict[str, str]
    class_names: tuple[str, ...]  # label words, in the order of GLUE's integer labels
    dev: str = "dev.tsv"
    parquet_dev: str = "validation"
    header: bool = True
    binned: bool = False  # STS-B: a similarity in [0, 5], rounded to the nearest whole number

    def label(self, raw: str) -> int:
        """The class index of a raw label (an integer, a label word, or an STS-B score)."""
        raw = raw.strip()
        if self.binned:
            score = float(raw)
            if not 0.0 <= score <= 5.0:
                raise ValueError(raw)
            return int(math.floor(score + 0.5))
        if raw in self.class_names:
            return self.class_names.index(raw)
        value = int(raw)
        if not 0 <= value < len(self.class_names):
            raise ValueError(raw)
        return value


_PAIR = {"sentence1": "sentence1", "sentence2": "sentence2"}

GLUE: dict[str, GlueSpec] = {
    spec.name: spec
    for spec in (
        GlueSpec("cola", "CoLA", "cola sentence: {sentence}", {"sentence": "3"}, "1", {"sentence": "sentence"},
                 ("unacceptable", "acceptable"), header=False),
        GlueSpec("sst2", "SST-2", "sst2 sentence: {sentence}", {"sentence": "sentence"}, "label",
                 {"sentence": "sentence"}, ("negative", "positive")),
        GlueSpec("mrpc", "MRPC", "mrpc sentence1: {sentence1} sentence2: {sentence2}",
                 {"sentence1": "#1 String", "sentence2": "#2 String"}, "Quality", _PAIR,
                 ("not_equivalent", "equivalent")),
        GlueSpec("qqp", "QQP", "qqp question1: {question1} question2: {question2}",
                 {"question1": "question1", "question2": "question2"}, "is_duplicate",
                 {"question1": "question1", "question2": "question2"}, ("not_duplicate", "duplicate")),
        GlueSpec("mnli", "MNLI", "mnli hypothesis: {hypothesis} premise: {premise}",
                 {"premise": "sentence1", "hypothesis": "sentence2"}, "gold_label",
                 {"premise": "premise", "hypothesis": "hypothesis"}, ("entailment", "neutral", "contradiction"),
                 dev="dev_matched.tsv", parquet_dev="validation_matched"),
        GlueSpec("rte", "RTE", "rte sentence1: {sentence1} sentence2: {sentence2}", _PAIR, "label", _PAIR,
                 ("entailment", "not_entailment")),
        GlueSpec("stsb", "STS-B", "stsb sentence1: {sentence1} sentence2: {sentence2}", _PAIR, "score", _PAIR,
                 ("0", "1", "2", "3", "4", "5"), binned=True),
    )
}

Rows = tuple[list[dict[str, str]], list[str]]  # (fields per example, raw labels)
Reader = Callable[[Path, GlueSpec], Rows]


def _tsv_rows(path: Path, spec: GlueSpec) -> Rows:
    """Fields and raw labels of one TSV file; GLUE's TSVs are unquoted, and QQP has a few short rows,
    which are skipped as every GLUE reader does."""
    csv.field_size_limit(sys.maxsize)
    text = read_text(path)
    lines = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    if spec.header:
        if not lines:
            raise TaskarithError(f"{path}: empty file; expected a header row")
        header, lines = lines[0], lines[1:]
        index = {name: i for i, name in enumerate(header)}
        for column in [*spec.tsv_fields.values(), spec.tsv_label]:
            if column not in index:
                raise TaskarithError(f"{path}: no column {column!r}; found: {clip(', '.join(map(quote, header)))}")
        columns = {field: index[col] for field, col in spec.tsv_fields.items()}
        label_col = index[spec.tsv_label]
    else:
        columns = {field: int(col) for field, col in spec.tsv_fields.items()}
        label_col = int(spec.tsv_label)
    width = max([*columns.values(), label_col]) + 1
    fields, labels = [], []
    for row in lines:
        if len(row) >= width:
            fields.append({field: row[i] for field, i in columns.items()})
            labels.append(row[label_col])
    return fields, labels


def _parquet_rows(path: Path, spec: GlueSpec) -> Rows:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for damaged files
        raise TaskarithError(f"{path}: not a readable parquet file ({e})") from e
    for column in [*spec.parquet_fields.values(), "label"]:
        if column not in table.column_names:
            raise TaskarithError(f"{path}: no column {column!r}; found: "
                                 f"{clip(', '.join(map(quote, table.column_names)))}")
    data = {name: table.column(name).to_pylist() for name in [*spec.parquet_fields.values(), "label"]}
    fields = [{field: str(data[col][i]) for field, col in spec.parquet_fields.items()} for i in range(table.num_rows)]
    return fields, [str(v) for v in data["label"]]


def _parquet_file(folder: Path, split: str) -> Path | None:
    found = sorted(folder.glob(f"{split}-*.parquet")) + sorted(folder.glob(f"{split}.parquet"))
    return found[0] if found else None


def _sources(root: Path, spec: GlueSpec) -> list[tuple[Path, Reader]]:
    """(train, test) files and their readers: the TSV distribution first, else a parquet export."""
    tsv = root / "glue" / spec.folder
    if (tsv / "train.tsv").is_file():
        return [(tsv / "train.tsv", _tsv_rows), (tsv / spec.dev, _tsv_rows)]
    parquet = root / "glue" / spec.name
    train, dev = _parquet_file(parquet, "train"), _parquet_file(parquet, spec.parquet_dev)
    if train and dev:
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError as e:
            raise TaskarithError(f"{train}: reading parquet needs pyarrow (pip install pyarrow), or use the TSV "
                                 f"distribution at {tsv}/{{train.tsv,{spec.dev}}}") from e
        return [(train, _parquet_rows), (dev, _parquet_rows)]
    raise TaskarithError(f"glue:{spec.name}: no data under {root / 'glue'}; expected {tsv}/train.tsv and "
                         f"{tsv}/{spec.dev} (the GLUE TSVs), or {parquet}/{{train,{spec.parquet_dev}}}-*.parquet")


def _examples(path: Path, rows: Rows, spec: GlueSpec) -> tuple[list[Prompt], list[int]]:
    fields, raw = rows
    if not fields:
        raise TaskarithError(f"{path}: no examples with the columns glue:{spec.name} needs")
    make = prompt_class(spec.name, tuple(TEMPLATES[0].format(c) for c in spec.class_names))
    labels = []
    for n, value in enumerate(raw):
        try:
            labels.append(spec.label(value))
        except ValueError:
            raise TaskarithError(f"{path}: example {n + 1} has label {quote(value)}; expected one of "
                                 f"{', '.join(spec.class_names)}" + (" (a score in [0, 5])" if spec.binned else "")
                                 ) from None
    return [make(spec.prompt.format(**f)) for f in fields], labels


def load_glue_task(name: str, root: str | Path, split: SplitSpec = SplitSpec()) -> TaskData:
    """A GLUE task as text to text, split by the registry's protocol (dev as test)."""
    if name not in GLUE:
        raise unknown("GLUE task", name, GLUE)
    spec = GLUE[name]
    (train_path, read_train), (dev_path, read_dev) = _sources(Path(root), spec)
    train, train_labels = _examples(train_path, read_train(train_path, spec), spec)
    test, test_labels = _examples(dev_path, read_dev(dev_path, spec), spec)
    return make_task(name, spec.class_names, TEMPLATES, train, train_labels, (test, test_labels), split)
