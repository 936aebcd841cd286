"""open_clip ViT checkpoints in the HF CLIP layout: reading them safely, the key mapping, the config.

open_clip keeps q, k and v in one `in_proj` tensor and applies projections as `x @ proj`; HF CLIP keeps
three Linear layers and `Linear(proj.T)`. Nothing else differs for the ViT towers of OpenAI-style models.
Pickled checkpoints can run code when loaded, so they are read only when the user says so, and then with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import torch

from ..groundwork.errors import TaskarithError, first_line
from ..groundwork.input_files import note_input
from ..groundwork.safety import parse_json, read_text
from ..groundwork.tensor_files import read_safetensors

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
CHECKPOINT_SUFFIXES = (".safetensors",) + PICKLE_SUFFIXES
SIDE_CONFIG = "open_clip_config.json"  # what open_clip writes beside its hub checkpoints

# one-to-one renames outside the residual blocks
_PLAIN = {
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
}
# applied as x @ proj in open_clip, as Linear (weight = proj.T) in HF
_TRANSPOSED = {"visual.proj": "visual_projection.weight", "text_projection": "text_projection.weight"}
_BLOCKS = (("visual.transformer.resblocks.", "vision_model.encoder.layers."),
           ("transformer.resblocks.", "text_model.encoder.layers."))
_IN_BLOCK = {
    "ln_1.weight": "layer_norm1.weight", "ln_1.bias": "layer_norm1.bias",
    "ln_2.weight": "layer_norm2.weight", "ln_2.bias": "layer_norm2.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight", "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight", "mlp.c_proj.bias": "mlp.fc2.bias",
    "attn.out_proj.weight": "self_attn.out_proj.weight", "attn.out_proj.bias": "self_attn.out_proj.bias",
}
_IN_PROJ = {"attn.in_proj_weight": "weight", "attn.in_proj_bias": "bias"}
_QKV = ("q", "k", "v")
# buffers some exports carry; the HF model rebuilds them
_IGNORED = ("attn_mask", "input_resolution", "context_length", "vocab_size")


def _block_key(key: str) -> tuple[str, str] | None:
    """(HF block prefix with its index, in-block suffix) for a residual-block key, else None."""
    for oc, hf in _BLOCKS:
        if key.startswith(oc):
            index, _, suffix = key[len(oc):].partition(".")
            if index.isdigit():
                return f"{hf}{index}.", suffix
    return None


def openclip_to_hf(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An open_clip ViT CLIP state dict in HF CLIPModel names and shapes."""
    out: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        if key in _PLAIN:
            out[_PLAIN[key]] = t
        elif key in _TRANSPOSED:
            out[_TRANSPOSED[key]] = t.T.contiguous()
        elif key in _IGNORED:
            continue
        elif (block := _block_key(key)) and block[1] in _IN_BLOCK:
            out[block[0] + _IN_BLOCK[block[1]]] = t
        elif block and block[1] in _IN_PROJ:
            for name, part in zip(_QKV, t.chunk(3, dim=0)):
                out[f"{block[0]}self_attn.{name}_proj.{_IN_PROJ[block[1]]}"] = part.contiguous()
        else:
            raise TaskarithError(f"open_clip key {key!r}: not a weight of a ViT CLIP this converter knows")
    return out


def _layers(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    found = {int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)}
    return max(found) + 1 if found else 0


def _need(state: Mapping[str, torch.Tensor], key: str, where: str) -> torch.Tensor:
    if key not in state:
        raise TaskarithError(f"{where}: no {key!r}; expected an open_clip ViT CLIP state dict with both towers")
    return state[key]


def config_from_openclip(state: Mapping[str, torch.Tensor], side: Mapping | None = None, where: str = "checkpoint",
                         eos_token_id: int | None = None):
    """The HF CLIPConfig of an open_clip state dict. Shapes give every size but the head counts and the
    activation: those come from open_clip's side config when present, else OpenAI's (64-wide heads,
    QuickGELU), which the paper's checkpoints use. The text tower pools at the tokenizer's end token
    (open_clip: the largest id, which is the end token of CLIP's vocabulary)."""
    from transformers import CLIPConfig

    model_cfg = dict((side or {}).get("model_cfg", {}))
    vision_cfg, text_cfg = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
    conv = _need(state, "visual.conv1.weight", where)
    width, patch = conv.shape[0], conv.shape[-1]
    grid = math.isqrt(_need(state, "visual.positional_embedding", where).shape[0] - 1)
    tokens = _need(state, "token_embedding.weight", where)
    text_width = tokens.shape[1]
    embed = _need(state, "visual.proj", where).shape[1]
    act = "quick_gelu" if model_cfg.get("quick_gelu", True) else "gelu"
    vision = {
        "hidden_size": width, "patch_size": patch, "image_size": grid * patch,
        "num_hidden_layers": _layers(state, "visual.transformer.resblocks."),
        "num_attention_heads": width // int(vision_cfg.get("head_width", 64)),
        "intermediate_size": _need(state, "visual.transformer.resblocks.0.mlp.c_fc.weight", where).shape[0],
        "projection_dim": embed, "hidden_act": act,
    }
    text = {
        "vocab_size": tokens.shape[0], "hidden_size": text_width,
        "max_position_embeddings": _need(state, "positional_embedding", where).shape[0],
        "num_hidden_layers": _layers(state, "transformer.resblocks."),
        "num_attention_heads": int(text_cfg.get("heads", text_width // 64)),
        "intermediate_size": _need(state, "transformer.resblocks.0.mlp.c_fc.weight", where).shape[0],
        "projection_dim": embed, "hidden_act": act,
        **({} if eos_token_id is None else {"eos_token_id": eos_token_id}),
    }
    return CLIPConfig(vision_config=vision, text_config=text, projection_dim=embed)


def _state_dict_of(path: Path, obj: object) -> dict[str, torch.Tensor]:
    """The tensors of a loaded pickle: a state dict, or a training checkpoint's `state_dict` entry."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TaskarithError(f"{path}: holds no state dict of tensors (got {type(obj).__name__})")
    # checkpoints saved from DistributedDataParallel prefix every key
    return {k.removeprefix("module."): v for k, v in obj.items()}


def read_state_dict(path: str | Path, *, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors: safetensors always; a pickle only with `trust_pickle`, as weights only."""
    path = Path(path)
    note_input(path)
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise TaskarithError(f"{path}: unsupported checkpoint type {suffix or '(none)'!r}; expected "
                             f"{', '.join(CHECKPOINT_SUFFIXES)}")
    if suffix == ".safetensors":
        return read_safetensors(path)[0]
    if not path.is_file():
        raise TaskarithError(f"{path}: no such file")
    if not trust_pickle:
        raise TaskarithError(f"{path}: is a pickle, which can run code when loaded; --trust-pickle "
                             f"(model.trust_pickle: true) allows it for a file you trust, or convert it to "
                             f".safetensors")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling raises many types; weights_only refuses arbitrary objects
        raise TaskarithError(f"{path}: cannot be read as weights only ({first_line(e)}); save its state_dict() "
                             "instead") from e
    return _state_dict_of(path, obj)


def read_side_config(path: Path) -> dict:
    """open_clip's config beside the checkpoint, or {} when there is none."""
    side = path.parent / SIDE_CONFIG
    if not side.is_file():
        return {}
    data = parse_json(read_text(side), str(side))
    if not isinstance(data, dict):
        raise TaskarithError(f"{side}: expected a JSON object")
    return data


def load_openclip(path: str | Path, *, trust_pickle: bool = False, dtype: torch.dtype = torch.float32,
                  eos_token_id: int | None = None):
    """An open_clip checkpoint file as an HF CLIPModel with eager attention."""
    from transformers import CLIPModel

    path = Path(path)
    state = read_state_dict(path, trust_pickle=trust_pickle)
    config = config_from_openclip(state, read_side_config(path), str(path), eos_token_id)
    config._attn_implementation = "eager"
    model = CLIPModel(config)
    try:
        missing, unexpected = model.load_state_dict(openclip_to_hf(state), strict=False)
    except RuntimeError as e:  # a shape that disagrees with the others
        first = str(e).strip().splitlines()[-1].strip()
        raise TaskarithError(f"{path}: weights of inconsistent shapes ({first})") from e
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise TaskarithError(f"{path}: {'lacks' if missing else 'has an unexpected'} weight {key!r} "
                             f"for the CLIP its shapes describe")
    return model.to(dtype).eval()  # type: ignore[arg-type]  # transformers' wraps() on .to hides the bound self
