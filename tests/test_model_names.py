"""How a model is named: every family resolves a name through one place, so `~/…` and `$VAR/…` name a folder
for each of them, and a path that names nothing is one line, not a hub lookup."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_encoder

import taskarith as ta
from taskarith.groundwork.errors import TaskarithError
from taskarith.models import FAMILIES, load_family


@pytest.fixture
def home_model(tmp_path, tokenizer, monkeypatch):
    """A tiny random text encoder saved under a fake home at ~/models/tiny; $TINY_MODELS is its parent."""
    folder = tmp_path / "models" / "tiny"
    saved = make_tiny_encoder(tokenizer, seed=5)
    saved.net.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TINY_MODELS", str(tmp_path / "models"))
    return saved


@pytest.mark.parametrize("name", ["~/models/tiny", "$TINY_MODELS/tiny", "${TINY_MODELS}/tiny"])
def test_a_text_encoder_named_from_home_or_a_variable_loads(home_model, name):
    model = ta.load_model(name, max_length=16, device="cpu")
    assert model.model_id == name  # the name as written is what its vectors record
    loaded, saved = model.named_weights(), home_model.named_weights()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[n], saved[n]) for n in saved)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("name", ["~/models/missing", "$TINY_MODELS/missing", "$UNSET_TINY_MODELS/x", "./missing"])
def test_a_path_that_names_nothing_is_one_line_in_every_family(home_model, family, name, monkeypatch):
    monkeypatch.delenv("UNSET_TINY_MODELS", raising=False)
    with pytest.raises(TaskarithError) as caught:
        load_family(family, name, device="cpu")
    assert str(caught.value) == f"{name}: no such model folder"
