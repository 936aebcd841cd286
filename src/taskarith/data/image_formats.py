"""Readers of the on-disk layouts of image datasets: class-per-folder trees, `<folder>/<class>/*.png|jpg`, and
the common torchvision formats where they are simple (MNIST IDX files, SVHN .mat with scipy, GTSRB, DTD and
SUN397 archives as extracted). Each reader returns the class keys, the training images and the shipped test
split (None where there is none); image files are paths opened lazily by the model's collate, and array
formats keep one uint8 array and hand out views."""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from ..groundwork.errors import TaskarithError, quote
from ..groundwork.safety import read_regular, read_text

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DIGITS = tuple(str(d) for d in range(10))

Inputs = tuple[list, list[int]]  # (images: paths or uint8 arrays, class indices)
Found = tuple[list[str], Inputs, Inputs | None]  # (class keys, train, shipped test or None)


def images_in(folder: Path) -> list[str]:
    return sorted(str(f) for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())


def _class_tree(folder: Path) -> dict[str, list[str]]:
    """Class folder name -> its image files; every class folder must hold at least one image."""
    tree = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = images_in(d)
        if not files:
            raise TaskarithError(f"{d}: no images ({', '.join(IMAGE_SUFFIXES[:3])}, ...) in this class folder")
        tree[d.name] = files
    if len(tree) < 2:
        raise TaskarithError(f"{folder}: expected one folder of images per class, found {len(tree)} class folder(s)")
    return tree


def _flatten(tree: dict[str, list[str]], keys: list[str]) -> Inputs:
    index = {k: i for i, k in enumerate(keys)}
    paths, labels = [], []
    for key, files in tree.items():
        paths += files
        labels += [index[key]] * len(files)
    return paths, labels


def split_tree(task_dir: Path) -> Found:
    if not (task_dir / "test").is_dir():  # train/ alone: the test split is carved from it
        return unsplit_tree(task_dir / "train")
    train, test = _class_tree(task_dir / "train"), _class_tree(task_dir / "test")
    unknown = sorted(set(test) - set(train))
    if unknown:
        raise TaskarithError(f"{task_dir / 'test' / unknown[0]}: a test class with no training folder")
    keys = list(train)
    return keys, _flatten(train, keys), _flatten(test, keys)


def unsplit_tree(folder: Path) -> Found:
    tree = _class_tree(folder)
    keys = list(tree)
    return keys, _flatten(tree, keys), None


def _read_bytes(path: Path) -> bytes:
    data = read_regular(path)
    if path.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError with no strerror to show
        raise TaskarithError(f"{path}: not a readable gzip file ({e})") from None


def read_idx(path: Path) -> np.ndarray:
    """A uint8 IDX array (the MNIST file format)."""
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise TaskarithError(f"{path}: not an IDX file of unsigned bytes")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
    offset = 4 + 4 * len(dims)
    if len(data) - offset != int(np.prod(dims)):
        raise TaskarithError(f"{path}: holds {len(data) - offset} bytes of data for shape {tuple(dims)}")
    return np.frombuffer(data, np.uint8, offset=offset).reshape(dims)


def _idx_file(folder: Path, stem: str) -> Path | None:
    return next((folder / f"{stem}{ext}" for ext in ("", ".gz") if (folder / f"{stem}{ext}").is_file()), None)


def _mnist_idx(task_dir: Path) -> Found | None:
    for folder in (task_dir / "raw", task_dir / "MNIST" / "raw", task_dir):
        found = [_idx_file(folder, f"{part}-{kind}-ubyte") for part in ("train", "t10k")
                 for kind in ("images-idx3", "labels-idx1")]
        files = [path for path in found if path is not None]
        if len(files) == len(found):
            splits = []
            for images, labels in (files[:2], files[2:]):
                x, y = read_idx(images), read_idx(labels)
                if len(x) != len(y) or x.ndim != 3:
                    raise TaskarithError(f"{images}: {len(x)} images of shape {x.shape[1:]} for {len(y)} labels")
                splits.append((list(x), y.astype(int).tolist()))
            return list(DIGITS), splits[0], splits[1]
    return None


def _svhn_mat(task_dir: Path) -> Found | None:
    files = [task_dir / f"{part}_32x32.mat" for part in ("train", "test")]
    if not all(f.is_file() for f in files):
        return None
    try:
        from scipy.io import loadmat
    except ImportError as e:
        raise TaskarithError(f"{files[0]}: reading SVHN .mat files needs scipy (pip install scipy), or use "
                             f"{task_dir}/{{train,test}}/<digit>/*.png") from e
    splits = []
    for path in files:
        mat = loadmat(path)
        if "X" not in mat or "y" not in mat:
            raise TaskarithError(f"{path}: expected variables X and y (the SVHN cropped-digits format)")
        images = np.ascontiguousarray(np.moveaxis(mat["X"], -1, 0), dtype=np.uint8)  # N×32×32×3
        labels = (mat["y"].reshape(-1).astype(int) % 10).tolist()  # SVHN writes the digit 0 as 10
        splits.append((list(images), labels))
    return list(DIGITS), splits[0], splits[1]


def _gtsrb(task_dir: Path) -> Found | None:
    train_dir, test_dir = task_dir / "GTSRB" / "Training", task_dir / "GTSRB" / "Final_Test" / "Images"
    labels_csv = task_dir / "GT-final_test.csv"
    if not (train_dir.is_dir() and test_dir.is_dir() and labels_csv.is_file()):
        return None
    tree = _class_tree(train_dir)
    keys = list(tree)
    index = {int(k): i for i, k in enumerate(keys) if k.isdigit()}
    rows = list(csv.DictReader(io.StringIO(read_text(labels_csv)), delimiter=";"))
    if not rows or not {"Filename", "ClassId"} <= set(rows[0]):
        raise TaskarithError(f"{labels_csv}: expected columns Filename and ClassId (separated by ';')")
    bad = next((r["ClassId"] for r in rows if int(r["ClassId"]) not in index), None)
    if bad is not None:
        raise TaskarithError(f"{labels_csv}: class {bad} has no training folder in {train_dir}")
    test = ([str(test_dir / r["Filename"]) for r in rows], [index[int(r["ClassId"])] for r in rows])
    return keys, _flatten(tree, keys), test


def _dtd(task_dir: Path) -> Found | None:
    base = task_dir / "dtd"
    images, labels = base / "images", base / "labels"
    parts = {p: labels / f"{p}1.txt" for p in ("train", "val", "test")}
    if not images.is_dir() or not all(f.is_file() for f in parts.values()):
        return None
    keys = list(_class_tree(images))
    index = {k: i for i, k in enumerate(keys)}

    def read(names: tuple[str, ...]) -> Inputs:
        paths, ys = [], []
        for name in names:
            for line in read_text(parts[name]).split():
                key = line.split("/")[0]
                if key not in index:
                    raise TaskarithError(f"{parts[name]}: {quote(line)} names no class folder in {images}")
                paths.append(str(images / line))
                ys.append(index[key])
        return paths, ys

    # the first of DTD's ten official splits; its validation part joins the training pool
    return keys, read(("train", "val")), read(("test",))


def _sun397(task_dir: Path) -> Found | None:
    base = next((b for b in (task_dir, task_dir / "SUN397") if (b / "ClassName.txt").is_file()), None)
    if base is None:
        return None
    tree = {}
    for line in read_text(base / "ClassName.txt").split():
        folder = base / line.strip("/")
        if not folder.is_dir():
            raise TaskarithError(f"{base / 'ClassName.txt'}: class {quote(line)} has no folder {folder}")
        tree[line.strip("/").split("/", 1)[-1]] = images_in(folder)  # "/b/bakery/shop" -> "bakery/shop"
    keys = list(tree)
    return keys, _flatten(tree, keys), None


FORMATS: dict[str, Callable[[Path], Found | None]] = {
    "mnist": _mnist_idx, "svhn": _svhn_mat, "gtsrb": _gtsrb, "dtd": _dtd, "sun397": _sun397,
}
