"""Fuzzing the readers of user files: whatever comes in, the result is a value or a TaskarithError, nothing else."""

from __future__ import annotations

import json
import struct

import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from taskarith.config import ExperimentConfig, load_config
from taskarith.data import SplitSpec
from taskarith.data.files import load_file_task
from taskarith.groundwork.errors import TaskarithError
from taskarith.report import load_results
from taskarith.vectors import TaskVector

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# real key paths, so that many trees get past the unknown-key check and reach the value checks
KEYS = ["name", "model", "family", "max_length", "data", "tasks", "caps", "train", "val", "test", "test_fraction",
        "val_fraction", "val_cap", "steps", "batch_size", "lr", "weight_decay", "warmup_steps", "grad_clip",
        "checkpoint_every", "seed", "paradigms", "seeds", "eval", "alphas", "negation", "negation_control",
        "negation_keep", "analysis", "kernel", "disentangle_pairs", "ablation", "extra"]
SCALARS = (st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(["nonlinear", "linear", "attention", "trec", "full"]))
TREES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6) | st.integers(0, 3), inner,
                                       max_size=5), max_leaves=25)
PATHS = st.lists(st.sampled_from(KEYS) | st.text(max_size=4), min_size=1, max_size=4).map(".".join)
OVERRIDES = st.lists(st.builds(lambda k, v: f"{k}={v}", PATHS, st.text(max_size=12)) | st.text(max_size=16),
                     max_size=3)


def _config_or_error(path, overrides) -> None:
    try:
        assert isinstance(load_config(path, overrides), ExperimentConfig)
    except TaskarithError as e:
        assert "\n" not in str(e)


@FUZZ
@given(tree=TREES, overrides=OVERRIDES)
@example(tree={"\n": None}, overrides=[])  # a key that would break the message into two lines
def test_config_trees_give_a_config_or_an_error(tree, overrides, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tree, allow_unicode=True))
    _config_or_error(path, overrides)


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200))
@example(text="[" * 5000 + "]" * 5000)  # deeper than the parser's recursion
@example(text="a: &x [*x]")  # a self-referencing alias
@example(text=b"\xff\xfe\x00")
def test_config_text_gives_a_config_or_an_error(text, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    _config_or_error(path, [])
    _config_or_error(None, [f"train.steps={text}"] if isinstance(text, str) else [])


# --- task vectors -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vector_bytes(tmp_path_factory) -> bytes:
    tensors = {"encoder.q.weight": torch.randn(4, 4), "encoder.q.bias": torch.randn(4)}
    meta = {"base_model": "m", "base_hash": "0" * 64, "paradigm": "nonlinear", "preset": "full", "task": "t"}
    path = tmp_path_factory.mktemp("vector") / "v.safetensors"
    TaskVector(tensors, meta).save(path)
    return path.read_bytes()


def _vector_or_error(tmp_path, data: bytes) -> None:
    path = tmp_path / "v.safetensors"
    path.write_bytes(data)
    try:
        tv = TaskVector.load(path)
    except TaskarithError as e:
        assert "\n" not in str(e)
        return
    assert all(torch.isfinite(t).all() for t in tv.tensors.values())


def _header_only(header: dict) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw


@FUZZ
@given(data=st.binary(max_size=400))
@example(data=struct.pack("<Q", 2**63) + b"{}")  # a header longer than the file
@example(data=struct.pack("<Q", 2) + b"{}")  # an empty but valid file
@example(data=_header_only({"__metadata__": {"taskarith": "[" * 100_000}}))  # deeper than the JSON parser's recursion
def test_random_bytes_are_refused(data, tmp_path):
    _vector_or_error(tmp_path, data)


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated_vectors_are_refused(cut, vector_bytes, tmp_path):
    _vector_or_error(tmp_path, vector_bytes[: int(cut * len(vector_bytes))])


@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_header_bytes(edits, vector_bytes, tmp_path):
    n = struct.unpack("<Q", vector_bytes[:8])[0] + 8
    data = bytearray(vector_bytes)
    for where, value in edits:
        data[int(where * n)] = value
    _vector_or_error(tmp_path, bytes(data))


HEADER_VALUES = (st.sampled_from(["F32", "F16", "BF16", "F64", "I64", "U8", "BOOL", "F8_E4M3", "F8_E5M2", "C64",
                                  "x"])
                 | st.lists(st.integers(-2, 70), max_size=3) | st.integers(-5, 10**6) | st.none() | st.text(max_size=5))


@FUZZ
@given(data=st.data())
def test_mutated_header_fields(data, vector_bytes, tmp_path):
    """Rewrite fields of a valid JSON header (dtypes, shapes, offsets, metadata) and keep the length right."""
    n = struct.unpack("<Q", vector_bytes[:8])[0]
    header = json.loads(vector_bytes[8:8 + n])
    meta = json.loads(header["__metadata__"]["taskarith"])
    for _ in range(data.draw(st.integers(1, 4))):
        name = data.draw(st.sampled_from(sorted(header)))
        if name == "__metadata__":
            meta[data.draw(st.sampled_from(["schema", "paradigm", "task", "base_hash"]))] = data.draw(HEADER_VALUES)
        else:
            header[name][data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))] = data.draw(HEADER_VALUES)
    text = json.dumps(meta)
    header["__metadata__"]["taskarith"] = text[:-1] if data.draw(st.booleans()) else text  # or cut short
    raw = json.dumps(header).encode()
    _vector_or_error(tmp_path, struct.pack("<Q", len(raw)) + raw + vector_bytes[8 + n:])


# --- results.json -----------------------------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)


def _results_or_error(tmp_path, data: bytes) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(data)
    try:
        assert isinstance(load_results(path), dict)
    except TaskarithError as e:
        assert "\n" not in str(e)


@FUZZ
@given(value=JSON, schema=st.sampled_from([None, 0, 1, 2, "1"]))
def test_results_json_gives_a_dict_or_an_error(value, schema, tmp_path):
    if isinstance(value, dict) and schema is not None:
        value["schema"] = schema
    _results_or_error(tmp_path, json.dumps(value).encode())


@FUZZ
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(data=b"[" * 100_000)  # deeper than the JSON parser's recursion
@example(data=b'{"schema": 1, "x": NaN}')
def test_results_bytes_give_a_dict_or_an_error(data, tmp_path):
    _results_or_error(tmp_path, data)


# --- task files ----------------------------------------------------------------------------------------------

def _task_or_error(tmp_path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    try:
        task = load_file_task(path, split=SplitSpec(caps={"train": 50}))
    except TaskarithError as e:
        assert "\n" not in str(e)
        return
    assert len(task.class_names) >= 2 and len(set(task.class_names)) == len(task.class_names)
    for split in (task.train, task.val, task.test):
        assert all(0 <= y < len(task.class_names) for y in split.labels)


CSV_CELLS = st.text(max_size=12) | st.sampled_from(["1", "1.0", "01", "-0", "nan", "a,b", '"q"', "\x00", "\r"])
CSV_ROWS = st.lists(st.lists(CSV_CELLS, min_size=1, max_size=3), max_size=12)


@FUZZ
@given(rows=CSV_ROWS, header=st.sampled_from(["text,label", "label,text", "text", "x,y", ""]))
@example(rows=[["a" * 140_000, "1"], ["b", "2"]], header="text,label")  # a field over the csv module's limit
@example(rows=[["a", "1"], ["b", "1.0"], ["c", "2"]], header="text,label")  # one number spelled two ways
def test_csv_task_files_give_a_task_or_an_error(rows, header, tmp_path):
    body = "\n".join(",".join(r) for r in rows)
    _task_or_error(tmp_path, "task.csv", (header + "\n" + body).encode("utf-8", "surrogatepass"))


JSON_VALUES = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.text(max_size=8)
JSON_RECORDS = st.lists(st.dictionaries(st.sampled_from(["text", "label", "x"]), JSON_VALUES, max_size=3)
                        | JSON_VALUES, max_size=12)


@FUZZ
@given(records=JSON_RECORDS, as_array=st.booleans())
@example(records=[{"text": "a", "label": 1}, {"text": "b", "label": 1.0}, {"text": "c", "label": 2}], as_array=False)
def test_jsonl_task_files_give_a_task_or_an_error(records, as_array, tmp_path):
    text = json.dumps(records) if as_array else "\n".join(json.dumps(r) for r in records)
    _task_or_error(tmp_path, "task.jsonl", text.encode())


@FUZZ
@given(data=st.binary(max_size=300))
@example(data=b"text,label\n\"unterminated,1\n")
@example(data=b"\xef\xbb\xbftext,label\r\na,1\r\nb,2\r\n")
def test_task_file_bytes_give_a_task_or_an_error(data, tmp_path):
    _task_or_error(tmp_path, "task.csv", data)
    _task_or_error(tmp_path, "task.jsonl", data)
