"""Tiny random CLIPs built from configs, their tokenizer and processor, and small digit images to feed them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

PIL = pytest.importorskip("PIL.Image")

WORDS = ("a photo of the number : \" . centered satellite annual crop land forest texture pattern thing object "
         "traffic sign zoomed in my").split() + [str(d) for d in range(10)]


def tiny_clip_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A <eos>",
                                                       special_tokens=[("<bos>", 1), ("<eos>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>")


def tiny_clip(seed: int = 0, hidden_act: str = "quick_gelu"):
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(vocab_size=len(WORDS) + 4, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=24, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0, hidden_act=hidden_act),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, hidden_act=hidden_act),
        projection_dim=24)
    torch.manual_seed(seed)
    return CLIPModel._from_config(config, attn_implementation="eager").eval()


def tiny_processor():
    from taskarith.models.clip import image_processor_class

    return image_processor_class()(size=32, crop_size=32)


def clip_family(seed: int = 0):
    from taskarith.models import ClipVision

    return ClipVision.from_modules(tiny_clip(seed), tiny_clip_tokenizer(), tiny_processor(), model_id=f"tiny-{seed}")


def digit_images(n: int = 6, size: int = 28) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size), dtype=np.uint8) for _ in range(n)]


def write_image(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.fromarray(array).save(path)
