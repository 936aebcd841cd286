"""Flan-T5-style text to text on GLUE: tiny random T5s built from configs and small GLUE-format folders."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from taskarith.config import load_config
from taskarith.groundwork.errors import TaskarithError

CONFIGS = Path(__file__).parent.parent / "configs"
GOOD, BAD = "good great fun lovely".split(), "bad awful boring dull".split()
WORDS = ("sst2 rte cola stsb mnli sentence sentence1 sentence2 hypothesis premise : . movie plot the a it was is "
         "cat dog sat ran negative positive entailment not_entailment neutral contradiction acceptable "
         "unacceptable 0 1 2 3 4 5").split() + GOOD + BAD
D_MODEL, ENC_LAYERS, DEC_LAYERS = 16, 2, 1


def tiny_t5_tokenizer():
    """A word-level tokenizer laid out like T5's: pad 0, end of sequence 1 appended to every text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_t5(seed: int = 0, dtype=torch.float32):
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=len(WORDS) + 3, d_model=D_MODEL, d_kv=4, d_ff=32, num_layers=ENC_LAYERS,
                      num_decoder_layers=DEC_LAYERS, num_heads=4, feed_forward_proj="gated-gelu",
                      decoder_start_token_id=0, dropout_rate=0.0, relative_attention_num_buckets=8)
    torch.manual_seed(seed)
    return T5ForConditionalGeneration._from_config(config, attn_implementation="eager").to(dtype).eval()


def t5_family(seed: int = 0, dtype=torch.float32):
    from taskarith.models import T5TextToText

    return T5TextToText.from_modules(tiny_t5(seed, dtype), tiny_t5_tokenizer(), model_id=f"tiny-t5-{seed}")


def sst2_prompts():
    from taskarith.data.glue import GLUE, prompt_class

    make = prompt_class("sst2", GLUE["sst2"].class_names)
    return [make("sst2 sentence: the movie was good"), make("sst2 sentence: it is a dull boring plot")]


def write_tsv(path: Path, header: list[str] | None, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([header] if header else []) + rows
    path.write_text("".join("\t".join(r) + "\n" for r in lines), encoding="utf-8")


@pytest.fixture(scope="module")
def glue_root(tmp_path_factory):
    """SST-2 and RTE in the GLUE TSV layout, separable by their words."""
    root = tmp_path_factory.mktemp("data")
    rng = random.Random(0)

    def sentence(words):
        return " ".join(rng.choice(words) for _ in range(4))

    for name, n in (("train.tsv", 60), ("dev.tsv", 20)):
        write_tsv(root / "glue" / "SST-2" / name, ["sentence", "label"],
                  [[f"the movie was {sentence(GOOD if i % 2 else BAD)}", str(i % 2)] for i in range(n)])
        write_tsv(root / "glue" / "RTE" / name, ["index", "sentence1", "sentence2", "label"],
                  [[str(i), f"the cat sat {sentence(GOOD)}", f"the dog ran {sentence(BAD if i % 2 else GOOD)}",
                    "not_entailment" if i % 2 else "entailment"] for i in range(n)])
    return root


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-t5")
    tiny_t5().save_pretrained(folder)
    tiny_t5_tokenizer().save_pretrained(folder)
    return folder


# --- the family --------------------------------------------------------------------------------
def test_scores_are_teacher_forced_log_likelihoods():
    family = t5_family()
    prompts = sst2_prompts()
    batch = family.collate(prompts)
    with torch.no_grad():
        scores = family.represent(batch)
        assert scores.shape == (2, 2)
        for i, prompt in enumerate(prompts):
            enc = family.tokenizer([str(prompt)], return_tensors="pt")
            for j, word in enumerate(prompt.choices):
                target = family.tokenizer([word], return_tensors="pt")["input_ids"]
                loss = family.net(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=target).loss
                assert scores[i, j].item() == pytest.approx(-loss.item() * target.shape[1], abs=1e-4)
    head = family.zero_shot_head(["negative", "positive"], ["{}"])
    assert torch.equal(head, batch["choice_ids"]) and torch.equal(family.logits(scores, head), scores)
    with pytest.raises(TaskarithError, match="3 classes"):
        family.logits(scores, torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TaskarithError, match="same candidate targets"):
        family.collate(["plain text without label words"])


def test_bf16_precision_reaches_the_scorer():
    family = t5_family()
    batch = family.collate(sst2_prompts())
    with torch.no_grad():
        full = family.represent(batch)
        family.precision = "bf16"
        half = family.represent(batch)
    assert half.dtype == torch.float32 and not torch.equal(half, full)
    assert torch.allclose(half, full, atol=0.5)


def test_attention_preset_covers_self_and_cross_attention():
    from taskarith.training.selection import select

    sel = select(tiny_t5(), "attention")
    assert sel.count == 4 * D_MODEL ** 2 * (ENC_LAYERS + 2 * DEC_LAYERS)
    assert any("EncDecAttention" in n for n in sel.names) and any(n.startswith("decoder.") and "SelfAttention" in n
                                                                    for n in sel.names)


@pytest.mark.parametrize("preset", ["attention", "full"])
def test_jvp_through_encoder_decoder_matches_a_finite_difference(preset):
    from taskarith.training.linearize import linearized_represent
    from taskarith.training.selection import select

    family = t5_family(dtype=torch.float64)
    batch = family.collate(sst2_prompts())
    params = dict(family.net.named_parameters())
    names = select(family.net, preset).names
    theta0 = {n: params[n].detach() for n in names}
    torch.manual_seed(1)
    tau = {n: 0.1 * torch.randn_like(t) for n, t in theta0.items()}
    with torch.no_grad():
        tangent = linearized_represent(family, batch, theta0, tau) - family.represent(batch)
        # T5's layer norm takes its variance in float32: its rounding over eps, not eps², bounds the difference
        eps = 1e-3
        plus = family.represent(batch, {n: theta0[n] + eps * tau[n] for n in names})
        minus = family.represent(batch, {n: theta0[n] - eps * tau[n] for n in names})
    error = ((plus - minus) / (2 * eps) - tangent).abs().max()
    assert tangent.abs().max() > 0.01 and error < 1e-3 * tangent.abs().max()


def test_loads_a_saved_folder(t5_dir, tmp_path):
    from taskarith.models import load_family

    family = load_family("t5", str(t5_dir), device="cpu", max_length=32)
    batch = family.collate(sst2_prompts())
    with torch.no_grad():
        assert torch.allclose(family.represent(batch), t5_family().represent(batch), atol=1e-5)
    with pytest.raises(TaskarithError, match="missing: no such model folder"):
        load_family("t5", str(t5_dir / "missing"))
    with pytest.raises(TaskarithError, match="cannot load the tokenizer from this folder"):
        load_family("t5", str(tmp_path))


# --- GLUE data ----------------------------------------------------------------------------------
def test_glue_formats_prompts_and_labels(tmp_path):
    from taskarith.data import resolve_task

    write_tsv(tmp_path / "glue" / "CoLA" / "train.tsv", None,
              [["gj04", str(i % 2), "" if i % 2 else "*", f"the cat sat {i}"] for i in range(20)])
    write_tsv(tmp_path / "glue" / "CoLA" / "dev.tsv", None, [["gj04", "1", "", "the dog ran"], ["gj04", "0", "*", "x"]])
    cola = resolve_task("glue:cola", root=str(tmp_path))
    assert cola.class_names == ("unacceptable", "acceptable") and cola.test.inputs[0] == "cola sentence: the dog ran"
    assert cola.test.labels == [1, 0] and cola.test.inputs[0].choices == ("unacceptable", "acceptable")
    header = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]
    rows = [[str(i), "g", "f", "y", "o", "s", "s", f"a {i}", f"b {i}", f"{i / 4:.3f}"] for i in range(21)]
    for name in ("train.tsv", "dev.tsv"):
        write_tsv(tmp_path / "glue" / "STS-B" / name, header, rows)
    stsb = resolve_task("glue:stsb", root=str(tmp_path))
    assert stsb.class_names == ("0", "1", "2", "3", "4", "5")
    assert stsb.test.labels[:7] == [0, 0, 1, 1, 1, 1, 2]  # 0, .25, .5, .75, 1, 1.25, 1.5 rounded half up
    assert stsb.test.inputs[1] == "stsb sentence1: a 1 sentence2: b 1"
    mnli = ["index", "promptID", "pairID", "genre", "sentence1", "sentence2", "gold_label"]
    labels = ("entailment", "neutral", "contradiction")
    write_tsv(tmp_path / "glue" / "MNLI" / "train.tsv", mnli,
              [[str(i), "", "", "", f"p {i}", f"h {i}", labels[i % 3]] for i in range(30)] + [["short", "row"]])
    write_tsv(tmp_path / "glue" / "MNLI" / "dev_matched.tsv", mnli, [["0", "", "", "", "p", "h", "neutral"]])
    task = resolve_task("glue:mnli", root=str(tmp_path))
    assert task.test.inputs == ["mnli hypothesis: h premise: p"] and task.test.labels == [1]
    assert len(task.train) + len(task.val) == 30  # the short row is skipped


def test_glue_errors_name_the_file_and_value(tmp_path, monkeypatch):
    from taskarith.data import resolve_task

    with pytest.raises(TaskarithError, match=r"glue:rte: no data under .*expected .*glue/RTE/train.tsv"):
        resolve_task("glue:rte", root=str(tmp_path))
    write_tsv(tmp_path / "glue" / "RTE" / "train.tsv", ["index", "sentence1", "sentence2", "label"],
              [["0", "a", "b", "entailment"], ["1", "a", "b", "maybe"]])
    write_tsv(tmp_path / "glue" / "RTE" / "dev.tsv", ["index", "sentence1", "label"], [["0", "a", "entailment"]])
    with pytest.raises(TaskarithError, match=r"train.tsv: example 2 has label 'maybe'"):
        resolve_task("glue:rte", root=str(tmp_path))
    write_tsv(tmp_path / "glue" / "RTE" / "train.tsv", ["index", "sentence1", "sentence2", "label"],
              [["0", "a", "b", "entailment"]])
    with pytest.raises(TaskarithError, match=r"dev.tsv: no column 'sentence2'"):
        resolve_task("glue:rte", root=str(tmp_path))
    with pytest.raises(TaskarithError, match="unknown GLUE task 'wnli'"):
        resolve_task("glue:wnli", root=str(tmp_path))
    monkeypatch.delenv("TASKARITH_DATA", raising=False)
    with pytest.raises(TaskarithError, match="needs a data root"):
        resolve_task("glue:rte")


def test_glue_parquet_export(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from taskarith.data import resolve_task

    folder = tmp_path / "glue" / "rte"
    folder.mkdir(parents=True)
    for split, n in (("train", 12), ("validation", 4)):
        table = pa.table({"sentence1": [f"a {i}" for i in range(n)], "sentence2": [f"b {i}" for i in range(n)],
                          "label": [i % 2 for i in range(n)], "idx": list(range(n))})
        pq.write_table(table, folder / f"{split}-00000-of-00001.parquet")
    task = resolve_task("glue:rte", root=str(tmp_path))
    assert task.test.inputs[1] == "rte sentence1: a 1 sentence2: b 1" and task.test.labels == [0, 1, 0, 1]


# --- the whole pipeline -------------------------------------------------------------------------
def test_run_experiment_on_glue(t5_dir, glue_root, tmp_path):
    from conftest import run_pipeline

    results = run_pipeline(tmp_path, family="t5", model_dir=t5_dir, tasks=["glue:sst2", "glue:rte"], root=glue_root,
                           max_length=24)
    attention = results["paradigms"]["attention"]["selection"]["count"]
    assert attention == 4 * D_MODEL ** 2 * (ENC_LAYERS + 2 * DEC_LAYERS)
    assert results["tasks"]["rte"]["classes"] == ["entailment", "not_entailment"]


def test_paper_t5_config_loads():
    cfg = load_config(CONFIGS / "paper-flan-t5-glue.yaml", ["data.root=$HOME/glue-data"])
    assert cfg.model.family == "t5" and cfg.data.root == "$HOME/glue-data"
    assert [t.split(":")[0] for t in cfg.data.tasks] == ["glue"] * 7
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.lr, cfg.train.warmup_steps, cfg.train.weight_decay) == (
        2000, 128, 1e-5, 200, 0.1)
    assert cfg.eval.alphas == [round(0.05 * i, 2) for i in range(21)]
