"""The CLIP model family: tiny CLIPs vs HF's CLIPModel, linearization, cached heads, open_clip, loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from taskarith.config import validate
from taskarith.groundwork.errors import TaskarithError

from clip_builders import WORDS, clip_family, digit_images, tiny_clip, tiny_clip_tokenizer, tiny_processor, write_image

PIL = pytest.importorskip("PIL.Image")


# --- the family --------------------------------------------------------------------------------
def test_loaded_folder_matches_the_clip_model(clip_dir):
    from taskarith.models import ClipVision

    family = ClipVision(str(clip_dir))
    clip, processor = tiny_clip(), tiny_processor()
    images = digit_images()
    rgb = [np.repeat(x[..., None], 3, -1) for x in images]
    with torch.no_grad():
        want = clip.get_image_features(pixel_values=processor(images=rgb, return_tensors="pt")["pixel_values"])
        got = family.represent(family.collate(images))
    want = getattr(want, "pooler_output", want)
    assert torch.allclose(got, want, atol=1e-5)
    assert family.collate(images)["pixels"].dtype == torch.uint8
    names = [str(d) for d in range(10)]
    head = family.zero_shot_head(names, ['a photo of the number: "{}".'])
    assert head.shape == (10, 24) and torch.allclose(head.norm(dim=-1), torch.ones(10))
    assert torch.allclose(head, clip_family().zero_shot_head(names, ['a photo of the number: "{}".']), atol=1e-6)


def test_inputs_paths_pil_and_arrays_agree(tmp_path):
    family = clip_family()
    gray = digit_images(1)[0]
    write_image(tmp_path / "x.png", gray)
    batches = [family.collate([x]) for x in (str(tmp_path / "x.png"), PIL.fromarray(gray), gray, gray[..., None],
                                             np.repeat(gray[..., None], 3, -1))]
    assert all(torch.equal(b["pixels"], batches[0]["pixels"]) for b in batches)
    assert batches[0]["pixels"].shape == (1, 3, 32, 32)
    many = digit_images(40)  # large enough to be shared among threads; order must survive
    assert torch.equal(family.collate(many)["pixels"], torch.cat([family.collate([x])["pixels"] for x in many]))
    with pytest.raises(TaskarithError, match="expected uint8"):
        family.collate([gray.astype(np.float32)])
    with pytest.raises(TaskarithError, match="not a readable image"):
        family.collate([str(tmp_path / "missing.png")])


def test_linearization_through_the_vision_tower_matches_a_finite_difference():
    from taskarith.training.linearize import linearized_represent
    from taskarith.training.selection import select

    family = clip_family()
    family.net.double()
    batch = family.collate(digit_images(3))
    params = dict(family.net.named_parameters())
    names = select(family.net, "attention").names
    assert len(names) == 8  # q, k, v, out of two layers
    theta0 = {n: params[n].detach() for n in names}
    tau = {n: 0.1 * torch.randn_like(t) for n, t in theta0.items()}
    with torch.no_grad():
        f0 = family.represent(batch)
        tangent = linearized_represent(family, batch, theta0, tau) - f0
        # HF attention takes its softmax in float32: its rounding over eps, not eps², bounds the difference
        eps = 1e-3
        plus = family.represent(batch, {n: theta0[n] + eps * tau[n] for n in names})
        minus = family.represent(batch, {n: theta0[n] - eps * tau[n] for n in names})
    error = ((plus - minus) / (2 * eps) - tangent).abs().max()
    assert error < 3e-4 * tangent.abs().max()


def test_head_cache_key_follows_the_model(tmp_path):
    from taskarith.models.heads import _memory, zero_shot_head

    names, templates = ["0", "1"], ['a photo of the number: "{}".']
    a, b = clip_family(0), clip_family(1)
    head_a = zero_shot_head(a, names, templates, folder=tmp_path)
    head_b = zero_shot_head(b, names, templates, folder=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    assert not torch.allclose(head_a, head_b)
    _memory.clear()
    again = zero_shot_head(clip_family(0), names, templates, folder=tmp_path)
    assert torch.equal(again, head_a) and len(list(tmp_path.glob("*.safetensors"))) == 2


# --- open_clip ----------------------------------------------------------------------------------
def openclip_image_features(oc: dict, pixels: torch.Tensor, heads: int) -> torch.Tensor:
    """open_clip's VisionTransformer forward written out over its own state dict (QuickGELU, as OpenAI's)."""
    conv = oc["visual.conv1.weight"]
    width = conv.shape[0]
    x = F.conv2d(pixels, conv, stride=conv.shape[-1]).flatten(2).transpose(1, 2)
    x = torch.cat([oc["visual.class_embedding"].expand(len(x), 1, width), x], 1) + oc["visual.positional_embedding"]
    x = F.layer_norm(x, (width,), oc["visual.ln_pre.weight"], oc["visual.ln_pre.bias"])
    layers = len({k.split(".")[3] for k in oc if k.startswith("visual.transformer.resblocks.")})
    for i in range(layers):
        p = f"visual.transformer.resblocks.{i}."
        h = F.layer_norm(x, (width,), oc[p + "ln_1.weight"], oc[p + "ln_1.bias"]).transpose(0, 1)
        h, _ = F.multi_head_attention_forward(h, h, h, width, heads, oc[p + "attn.in_proj_weight"],
                                              oc[p + "attn.in_proj_bias"], None, None, False, 0.0,
                                              oc[p + "attn.out_proj.weight"], oc[p + "attn.out_proj.bias"],
                                              training=False, need_weights=False)
        x = x + h.transpose(0, 1)
        h = F.linear(F.layer_norm(x, (width,), oc[p + "ln_2.weight"], oc[p + "ln_2.bias"]),
                     oc[p + "mlp.c_fc.weight"], oc[p + "mlp.c_fc.bias"])
        x = x + F.linear(h * torch.sigmoid(1.702 * h), oc[p + "mlp.c_proj.weight"], oc[p + "mlp.c_proj.bias"])
    return F.layer_norm(x[:, 0], (width,), oc["visual.ln_post.weight"], oc["visual.ln_post.bias"]) @ oc["visual.proj"]


def as_openclip(clip) -> dict:
    from conftest import hf_to_openclip

    return hf_to_openclip(clip.state_dict())


def write_openclip(folder: Path, name: str, clip, save) -> Path:
    """An HF CLIP as an open_clip checkpoint, with open_clip's side config and a tokenizer beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    save(as_openclip(clip), folder / name)
    side = {"model_cfg": {"quick_gelu": True, "vision_cfg": {"head_width": 8}, "text_cfg": {"heads": 4}}}
    (folder / "open_clip_config.json").write_text(json.dumps(side))
    tiny_clip_tokenizer().save_pretrained(folder)
    return folder / name


def test_openclip_key_mapping_and_shapes():
    from conftest import hf_to_openclip

    from taskarith.models.openclip_convert import config_from_openclip, openclip_to_hf

    clip = tiny_clip()
    hf = clip.state_dict()
    oc = hf_to_openclip(hf)
    layer = "visual.transformer.resblocks.1."
    assert oc[layer + "attn.in_proj_weight"].shape == (96, 32) and oc[layer + "attn.in_proj_bias"].shape == (96,)
    assert torch.equal(oc[layer + "attn.in_proj_weight"][32:64], hf["vision_model.encoder.layers.1.self_attn.k_proj.weight"])
    assert oc["visual.proj"].shape == (32, 24) and torch.equal(oc["visual.proj"].T, hf["visual_projection.weight"])
    assert oc["text_projection"].shape == (32, 24)
    assert oc["visual.conv1.weight"].shape == (32, 3, 8, 8) and oc["visual.positional_embedding"].shape == (17, 32)
    assert oc["transformer.resblocks.0.mlp.c_fc.weight"].shape == (64, 32)
    back = openclip_to_hf(oc)
    assert back.keys() == hf.keys() and all(torch.equal(back[k], hf[k]) for k in hf)
    config = config_from_openclip(oc, {"model_cfg": {"vision_cfg": {"head_width": 8}, "text_cfg": {"heads": 4}}})
    v, t = config.vision_config, config.text_config
    assert (v.hidden_size, v.patch_size, v.image_size, v.num_hidden_layers, v.num_attention_heads,
            v.intermediate_size) == (32, 8, 32, 2, 4, 64)
    assert (t.vocab_size, t.max_position_embeddings, t.num_hidden_layers, config.projection_dim) == (
        len(WORDS) + 4, 24, 2, 24)
    with pytest.raises(TaskarithError, match="visual.attnpool.weight"):
        openclip_to_hf({**oc, "visual.attnpool.weight": torch.zeros(1)})


def test_openclip_checkpoint_gives_the_same_outputs(tmp_path):
    from safetensors.torch import save_file

    from taskarith.models import ClipVision

    clip = tiny_clip()
    path = write_openclip(tmp_path / "oc", "model.safetensors", clip, lambda sd, p: save_file(sd, str(p)))
    converted = ClipVision(str(path))
    reference = clip_family()
    batch = reference.collate(digit_images())
    with torch.no_grad():
        want = reference.represent(batch)
        by_hand = openclip_image_features(as_openclip(clip), reference._normalize(batch["pixels"]), heads=4)
        got = converted.represent(batch)
    assert torch.allclose(got, want, atol=1e-5) and torch.allclose(by_hand, want, atol=1e-5)
    templates = ['a photo of the number: "{}".']
    assert torch.allclose(converted.zero_shot_head(["3", "7"], templates), reference.zero_shot_head(["3", "7"], templates),
                          atol=1e-6)


def test_pickles_are_refused_without_the_flag(tmp_path):
    from taskarith.models import ClipVision

    clip = tiny_clip()
    path = write_openclip(tmp_path / "oc", "model.pt", clip, lambda sd, p: torch.save({"state_dict": sd}, p))
    with pytest.raises(TaskarithError, match=r"model\.pt: is a pickle.*--trust-pickle"):
        ClipVision(str(path))
    loaded = ClipVision(str(path), trust_pickle=True)
    batch = loaded.collate(digit_images(2))
    with torch.no_grad():
        assert torch.allclose(loaded.represent(batch), clip_family().represent(batch), atol=1e-5)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "oc" / "module.pt")  # a whole pickled object, not tensors
    with pytest.raises(TaskarithError, match="cannot be read as weights only"):
        ClipVision(str(tmp_path / "oc" / "module.pt"), trust_pickle=True)


def test_hf_folder_with_pickled_weights_needs_the_flag(clip_dir, tmp_path):
    import shutil

    from taskarith.models import ClipVision

    folder = tmp_path / "pickled"
    shutil.copytree(clip_dir, folder)
    (folder / "model.safetensors").unlink()
    torch.save(tiny_clip().state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(TaskarithError, match="cannot load the vision tower"):
        ClipVision(str(folder))
    assert ClipVision(str(folder), trust_pickle=True).net.config.hidden_size == 32


# --- loading ------------------------------------------------------------------------------------
def test_load_model_passes_the_options_its_family_takes(clip_dir):
    from taskarith.models import load_model

    cfg = validate({"model": {"family": "clip", "name": str(clip_dir), "device": "cpu", "trust_pickle": True}})
    family = load_model(cfg.model)
    assert next(family.net.parameters()).device.type == "cpu" and family.max_length == 128
    with pytest.raises(TaskarithError, match="model.device = 'tpu0'"):
        load_model(validate({"model": {"family": "clip", "name": str(clip_dir), "device": "tpu0"}}).model)
