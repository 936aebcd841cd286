"""`taskarith results pool`: one results record from several runs of one config over disjoint seeds.

A seed study can be spread over sessions, machines or clusters (`taskarith run CONFIG --seeds A-B`), each piece
its own run folder; pooling joins their per-seed records. It is a pure function of the records: configs that
differ (beyond the seed count and resources), another base model, other splits or other learning rates are
refused, and a seed met twice is refused. Summaries are recomputed over the pooled seeds; the analyses come
from the run that holds the first seed, where they were computed.
"""

from __future__ import annotations

from typing import Mapping, Sequence, cast

from ..analysis.advantage import nonlinear_advantage
from ..config import validate
from ..groundwork.errors import TaskarithError
from ..results_record import ParadigmEntry
from .seeds import FIRST_SEED
from .summary import summarize

# Keys that may differ between the pieces of one study: how many seeds, and where they ran.
PER_PIECE_CONFIG = ("seeds", "resources")
# Top-level entries that must be equal in every piece: what the seeds were trained and scored on.
SHARED = ("model", "tasks", "pretrained", "lr_search")


def _first_difference(a: object, b: object, where: str) -> str | None:
    """The dotted key at which two JSON values first differ, or None when they are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}.{key}"
            found = _first_difference(a[key], b[key], f"{where}.{key}")
            if found:
                return found
        return None
    return None if a == b else where


def _config(record: Mapping, name: str) -> dict:
    """The piece's config as this version reads it: fields added since it ran take their defaults, which
    is what the piece ran with, so only a real difference of setting refuses the pool."""
    config = validate(record["config"], f"{name}: config").model_dump(mode="json")
    return {k: v for k, v in config.items() if k not in PER_PIECE_CONFIG}


def check_poolable(records: Sequence[Mapping], names: Sequence[str]) -> None:
    """Refuse pieces that are not one study: one line naming the run and the first key that differs."""
    first = records[0]
    for record, name in zip(records[1:], names[1:]):
        for what, a, b in (("config", _config(first, names[0]), _config(record, name)),
                           *((key, first.get(key), record.get(key)) for key in SHARED)):
            found = _first_difference(a, b, what)
            if found:
                raise TaskarithError(f"{name}: {found} differs from {names[0]}; only runs of one config "
                                     f"on the same model, splits and rates can be pooled")
    owner: dict[int, str] = {}
    for record, name in zip(records, names):
        for seed in record["seeds"]:
            if seed in owner:
                raise TaskarithError(f"seed {seed} is in both {owner[seed]} and {name}; pool disjoint seed ranges")
            owner[seed] = name


def _pool_entries(entries: Sequence[Mapping], tasks: list[str]) -> ParadigmEntry:
    """One paradigm's (or ablation preset's) entries over pieces, seeds joined in seed order; the pieces were
    written as ParadigmEntry records and checked alike, so their join is one."""
    seeds = {s: r for entry in entries for s, r in entry["seeds"].items()}
    ordered = {s: seeds[s] for s in sorted(seeds, key=int)}
    fixed = {k: v for k, v in entries[0].items() if k not in ("seeds", "summary")}
    return cast(ParadigmEntry, {**fixed, "seeds": ordered, "summary": summarize(ordered, tasks)})


def _pool_ablation(records: Sequence[Mapping], tasks: list[str]) -> dict:
    pieces = [r["analysis"]["ablation"] for r in records if (r.get("analysis") or {}).get("ablation")]
    presets = list(pieces[0]) if pieces else []
    return {p: _pool_entries([piece[p] for piece in pieces if p in piece], tasks) for p in presets}


def _timings(records: Sequence[Mapping], analysed: Mapping | None) -> dict:
    per_seed = {s: t for r in records for s, t in (r.get("timings") or {}).get("per_seed", {}).items()}
    out = {"finetune_seconds": sum(t["finetune_seconds"] for t in per_seed.values()),
           "evaluate_seconds": sum(t["evaluate_seconds"] for t in per_seed.values()),
           "per_seed": {s: per_seed[s] for s in sorted(per_seed, key=int)},
           "analysis_seconds": (analysed or {}).get("timings", {}).get("analysis_seconds", 0.0),
           "total_seconds": sum((r.get("timings") or {}).get("total_seconds", 0.0) for r in records)}
    # the search that trained the candidates is the one in the run holding seed 0; later pieces re-score them
    searched = [r["timings"]["lr_search_seconds"] for r in [analysed or {}, *records]
                if "lr_search_seconds" in (r.get("timings") or {})]
    if searched:
        out["lr_search_seconds"] = searched[0]
    return out


def pool_results(records: Sequence[Mapping], names: Sequence[str], *, commit: str | None, created: str) -> dict:
    """The pooled results record; `names` name the pieces in errors and in the record's `pooled_from`."""
    if len(records) < 2:
        raise TaskarithError("pooling needs two or more runs")
    check_poolable(records, names)
    tasks = list(records[0]["tasks"])
    analysed = next((r for r in records if FIRST_SEED in r["seeds"]), None)
    paradigms = {p: _pool_entries([r["paradigms"][p] for r in records], tasks) for p in records[0]["paradigms"]}
    analysis = {k: v for k, v in ((analysed or {}).get("analysis") or {}).items() if k not in ("advantage", "ablation")}
    if "nonlinear" in paradigms:
        analysis["advantage"] = nonlinear_advantage(paradigms)
    ablation = _pool_ablation(records, tasks)
    if ablation:
        analysis["ablation"] = ablation
    seeds = sorted(s for r in records for s in r["seeds"])
    pieces = [{"run": name, "seeds": list(r["seeds"]), "git_commit": r.get("git_commit"), "created": r.get("created")}
              for r, name in zip(records, names)]
    first = records[0]
    return {"schema": first["schema"], "taskarith_version": first.get("taskarith_version"), "git_commit": commit,
            "created": created,
            "config": {**validate(first["config"]).model_dump(mode="json"), "seeds": len(seeds)},
            **{k: first[k] for k in SHARED if k in first}, "seeds": seeds,
            "seed_commits": {str(s): r.get("git_commit") for r in records for s in r["seeds"]},
            "pooled_from": pieces, "paradigms": paradigms, "analysis": analysis,
            "timings": _timings(records, analysed)}


def differing_commits(record: Mapping) -> list[str]:
    """The distinct commits behind a pooled record's seeds, where there is more than one."""
    commits = sorted({str(c) for c in record.get("seed_commits", {}).values()})
    return commits if len(commits) > 1 else []
