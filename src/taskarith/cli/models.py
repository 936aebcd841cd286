"""`taskarith models`: the embedded models with their sizes, sources, licenses and archives."""

from __future__ import annotations

from .terminal import echo
from ..groundwork.archives import ARCHIVES


def _archive_lines(key: str) -> list[str]:
    archive = ARCHIVES[key]
    if not archive.parts:
        return [f"  archive: {archive.requirement}"]
    return [f"  archive: {archive.filename}, assembled from {len(archive.parts)} parts:",
            *(f"    {ARCHIVES[part].requirement}" for part, _ in archive.parts)]


def models() -> None:
    """List the embedded models (usable as model.name or --model) with their sizes and sources."""
    from ..groundwork import fetch
    from ..models.embedded import EMBEDDED_MODELS
    from ..models.text_encoder import EMBEDDED_MODEL

    for model in EMBEDDED_MODELS.values():
        default = " (the default)" if model.name == EMBEDDED_MODEL else ""
        extracted = fetch.cache_dir() / "extracted" / ARCHIVES[model.archive].filename / model.folder.strip("/")
        fetched = "fetched" if (extracted / ".complete").exists() else "fetched on first use"
        echo(f"{model.name}: {model.size}{default}")
        echo(f"  source: {model.source}, {model.license}; {fetched}")
        for line in _archive_lines(model.archive):
            echo(line)
