"""The report's figures, one function each: (part of) the results dict and an output path in, a PNG out.

Nothing is drawn at import time. Each figure is written atomically and closed, so a long report run
neither leaves half-written PNGs nor accumulates open figures.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import matplotlib

matplotlib.use("Agg")  # headless: the report is written on servers without a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402
import numpy as np  # noqa: E402

from ..groundwork.atomic import atomic_path  # noqa: E402
from ..paradigms import PARADIGMS, Paradigm  # noqa: E402
from .analysis_tables import disentangle_paradigms, kernel_model_accuracy  # noqa: E402
from .tables import label, paradigm_names  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

DPI = 150
STYLE: dict[RcKeyType, Any] = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
                               "xtick.labelsize": 10, "ytick.labelsize": 10, "figure.titlesize": 13}
UNKNOWN = Paradigm("", "", linear=False, preset="")  # a paradigm no longer registered: the default style


def _marker(paradigm: str) -> str:
    return PARADIGMS.get(paradigm, UNKNOWN).marker


def _color(paradigm: str) -> str:
    return PARADIGMS.get(paradigm, UNKNOWN).color


@contextlib.contextmanager
def _figure(path: Path, ncols: int = 1, panel: tuple[float, float] = (5.0, 4.5), **kw) -> Iterator:
    """A styled figure with `ncols` panels, saved atomically to `path` on success and always closed."""
    with plt.rc_context(STYLE), warnings.catch_warnings():
        # a name from results.json in a script the font lacks is drawn as boxes; a warning would name each glyph
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        fig, axes = plt.subplots(1, ncols, figsize=(panel[0] * ncols, panel[1]), squeeze=False,
                                 layout="constrained", **kw)
        try:
            yield fig, list(axes[0])
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=DPI)
        finally:
            plt.close(fig)


def _diagonal(ax, values: list[float]) -> None:
    """y = x over the data's range with a small margin, equal aspect so the diagonal reads as 45°."""
    lo, hi = min(values), max(values)
    pad = max(0.02, 0.05 * (hi - lo))  # keeps markers at the edges whole
    lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], color="0.5", linestyle="--", linewidth=1, label="y = x", zorder=1)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)


def _percent_axes(ax) -> None:
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))


def _scatter_vs_reference(ax, series: Mapping[str, Mapping[str, tuple[float, float]]]) -> None:
    """One marker per paradigm, one point per task (x, y), task names next to the points."""
    values = [v for points in series.values() for xy in points.values() for v in xy]
    _diagonal(ax, values)
    names_at: dict[tuple[float, float], list[str]] = {}
    for paradigm, points in series.items():
        xs, ys = zip(*points.values())
        ax.scatter(xs, ys, marker=_marker(paradigm), color=_color(paradigm), s=50, label=label(paradigm),
                   zorder=3, edgecolors="black", linewidths=0.5)
        for task, xy in points.items():
            names_at.setdefault(xy, []).append(task)
    # Accuracies on small test sets often coincide: one label per point, or the names print over each other.
    for xy, names in names_at.items():
        ax.annotate(", ".join(dict.fromkeys(names)), xy, textcoords="offset points", xytext=(5, 4), fontsize=10)
    _percent_axes(ax)
    ax.legend(loc="best")


def individual_vs_nonlinear(paradigms: Mapping, path: Path) -> None:
    """Figure 5 analogue: each paradigm's individual test accuracy against non-linear fine-tuning's."""
    reference = paradigms["nonlinear"]["summary"]["per_task"]
    series = {p: {t: (reference[t]["individual"]["mean"], r["individual"]["mean"])
                  for t, r in paradigms[p]["summary"]["per_task"].items() if t in reference}
              for p in paradigm_names(paradigms) if p != "nonlinear"}
    with _figure(path, panel=(6.0, 5.5)) as (fig, (ax,)):
        _scatter_vs_reference(ax, series)
        ax.set_xlabel("Non-linear fine-tuning: test accuracy")
        ax.set_ylabel("Paradigm: test accuracy")
        ax.set_title("Single-task accuracy vs non-linear fine-tuning")


def accuracy_vs_alpha(paradigms: Mapping, seed: str, path: Path) -> None:
    """Figure 9 analogue: absolute accuracy of the unified model over the α sweep, validation and, where the
    run scored it at every α (`eval.test_curve`), test."""
    curves = [paradigms[p]["seeds"][seed]["addition"]["curve"] for p in paradigm_names(paradigms)]
    splits = [s for s in ("val", "test") if all(f"{s}_abs" in pt for c in curves for pt in c.values())]
    titles = {"val": "Validation", "test": "Test"}
    with _figure(path, ncols=len(splits), sharey=True) as (fig, axes):
        for ax, split in zip(axes, splits):
            title = titles[split]
            for p in paradigm_names(paradigms):
                addition = paradigms[p]["seeds"][seed]["addition"]
                curve = sorted((float(a), point[f"{split}_abs"]) for a, point in addition["curve"].items())
                xs, ys = zip(*curve)
                ax.plot(xs, ys, color=_color(p), marker=_marker(p), markersize=4, label=label(p))
                chosen = addition["curve"][f"{addition['alpha']:g}"][f"{split}_abs"]
                ax.plot([addition["alpha"]], [chosen], "o", color=_color(p), markersize=11,
                        markeredgecolor="black", zorder=4)
            ax.set_xlabel("α (scaling of the summed task vectors)")
            ax.set_title(f"{title} split")
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("Absolute accuracy (mean over tasks)")
        axes[0].plot([], [], "o", color="white", markeredgecolor="black", markersize=11, label="α chosen on val")
        axes[0].legend(loc="best")
        fig.suptitle(f"Task addition: accuracy vs α (seed {seed})")


def similarity_heatmap(entry: Mapping, paradigm: str, path: Path) -> None:
    """Figure 10 analogue: cosine similarity between task vectors, on a fixed [−1, 1] scale so that
    the per-paradigm figures compare."""
    tasks, matrix = entry["tasks"], np.asarray(entry["matrix"], dtype=float)
    side = max(4.5, 0.7 * len(tasks) + 2.5)
    with _figure(path, panel=(side + 1.0, side)) as (fig, (ax,)):
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
        ax.set_yticks(range(len(tasks)), tasks)
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=10,
                    color="white" if abs(v) > 0.6 else "black")
        ax.set_xlabel("Task")
        ax.set_ylabel("Task")
        ax.set_title(f"{label(paradigm)}: cosine similarity of task vectors")
        fig.colorbar(image, ax=ax, label="cosine similarity")


def kernel_scatter(kernel: Mapping, path: Path) -> None:
    """Figure 3 analogue: τ on the post-hoc linearized model vs on the model it was trained on."""
    series = {p: {t: (kernel_model_accuracy(r), r["posthoc_linear"]) for t, r in kernel[p]["per_task"].items()}
              for p in paradigm_names(kernel)}
    with _figure(path, panel=(6.0, 5.5)) as (fig, (ax,)):
        _scatter_vs_reference(ax, series)
        ax.set_xlabel("Fine-tuned model: test accuracy")
        ax.set_ylabel("Post-hoc linearized model: test accuracy")
        ax.set_title("Kernel behaviour test")


def disentangle_heatmaps(pair: Mapping, pair_name: str, measure: str, path: Path) -> None:
    """Figures 6 and 8 analogue: ξ(α1, α2) per paradigm on one shared colour scale, with (0, 0) marked."""
    names = disentangle_paradigms(pair)
    grid = np.asarray(pair["grid"], dtype=float)
    # ξ[i1][i2] is at (grid[i1], grid[i2]); transposed so that α1 runs along x and α2 along y.
    maps = {p: np.asarray(pair[p][measure], dtype=float).T for p in names}
    vmin, vmax = min(m.min() for m in maps.values()), max(m.max() for m in maps.values())
    first, second = pair_name.split("+", 1) if "+" in pair_name else ("task 1", "task 2")
    with _figure(path, ncols=len(names), panel=(4.2, 4.0), sharey=True) as (fig, axes):
        for ax, p in zip(axes, names):
            mesh = ax.pcolormesh(grid, grid, maps[p], shading="nearest", cmap="viridis", vmin=vmin, vmax=vmax)
            ax.plot([0], [0], marker="+", color="white", markersize=14, markeredgewidth=2.5)
            ax.set_aspect("equal")
            ax.set_xlabel(f"α1 ({first})")
            ax.set_title(label(p))
        axes[0].set_ylabel(f"α2 ({second})")
        fig.colorbar(mesh, ax=axes, label=f"ξ ({measure})", shrink=0.9)
        fig.suptitle(f"Weight disentanglement error, {measure}: {pair_name}")
