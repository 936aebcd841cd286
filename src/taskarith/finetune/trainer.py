"""Fine-tuning under the three paradigms, with the head frozen, checkpoints and exact resume.

non-linear: train the selected parameters of f in place. attention: non-linear with the `attention`
preset. linear: train τ in f(x; θ0) + J f(x; θ0)·τ, with θ0 held once by the module itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .. import __version__
from ..config import TrainConfig
from ..errors import TaskarithError
from ..models.base import Family
from ..resources import peak_memory
from ..vectors import TaskVector
from .checkpoint import load_checkpoint, save_checkpoint
from .linearize import base_params, linearized_represent
from .selection import Selection, select


@dataclass(frozen=True)
class Paradigm:
    name: str  # nonlinear | linear | attention
    linear: bool
    preset: str


def resolve_paradigm(name: str, preset: str | None = None) -> Paradigm:
    defaults = {"nonlinear": "full", "linear": "full", "attention": "attention"}
    if name not in defaults:
        raise TaskarithError(f"unknown paradigm {name!r}; known: {', '.join(defaults)}")
    return Paradigm(name, name == "linear", preset or defaults[name])


def batch_indices(n: int, batch_size: int, seed: int, step: int, lengths: Sequence[int] | None = None,
                  window: int = 8) -> list[int]:
    """The examples of one step; the order depends on (seed, step) only, so a resumed run sees the same data.

    Each epoch is a seeded permutation. With `lengths`, each window of `window` batches is sorted by length
    before it is cut into batches, and the batches are then shuffled: batches of similar lengths pad less."""
    per_epoch = max(1, n // batch_size)
    epoch, pos = divmod(step, per_epoch)
    return _epoch_plan(n, batch_size, seed, epoch, tuple(lengths) if lengths is not None else None, window)[pos]


@functools.lru_cache(maxsize=4)
def _epoch_plan(n: int, batch_size: int, seed: int, epoch: int, lengths: tuple[int, ...] | None,
                window: int) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=gen).tolist()
    per_epoch = max(1, n // batch_size)
    if lengths is None:
        return [perm[i * batch_size:(i + 1) * batch_size] for i in range(per_epoch)]
    used = perm[:per_epoch * batch_size] if n >= batch_size else perm
    span = window * batch_size
    ordered = [i for start in range(0, len(used), span)
               for i in sorted(used[start:start + span], key=lambda i: lengths[i])]
    batches = [ordered[i * batch_size:(i + 1) * batch_size] for i in range(per_epoch)]
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in order]


def _run_fingerprint(cfg: TrainConfig, paradigm: Paradigm, task: str, base_hash: str, n: int) -> str:
    record = {"train": cfg.model_dump(), "paradigm": paradigm.__dict__, "task": task, "base": base_hash, "n": n}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, min(cfg.warmup_steps, cfg.steps), cfg.steps)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled, leave=False,
                dynamic_ncols=True)


class Trainable:
    """What one paradigm trains, set up on the module; `close()` puts θ0 and requires_grad back."""

    def __init__(self, family: Family, paradigm: Paradigm, decay_toward: str = "zero"):
        self.family, self.paradigm = family, paradigm
        # AdamW decays what it trains (θ, or τ when linear) toward zero; the other target is decayed by hand:
        # +1 pulls θ toward θ0 (non-linear, base), −1 pulls θ0 + τ toward zero (linear, zero)
        self.decay_sign = {(False, "base"): 1.0, (True, "zero"): -1.0}.get((paradigm.linear, decay_toward), 0.0)
        self.selection: Selection = select(family.net, paradigm.preset)
        self.params = dict(family.net.named_parameters())
        self._requires = {n: p.requires_grad for n, p in self.params.items()}
        # autograd then never computes gradients of frozen parameters
        for p in self.params.values():
            p.requires_grad_(False)
        names = self.selection.names
        if paradigm.linear:
            self.theta0 = base_params(family, names)
            self.tensors = {n: torch.zeros_like(self.theta0[n], requires_grad=True) for n in names}
        else:
            self.theta0 = {n: self.params[n].detach().clone() for n in names}
            self.tensors = {n: self.params[n] for n in names}
            for t in self.tensors.values():
                t.requires_grad_(True)

    def forward(self, batch) -> torch.Tensor:
        if self.paradigm.linear:
            return linearized_represent(self.family, batch, self.theta0, self.tensors)
        return self.family.represent(batch)

    def decay(self, lr: float, weight_decay: float) -> None:
        """Decoupled weight decay toward the target AdamW cannot express: x ← (1 − lr·wd)·x ± lr·wd·θ0."""
        if not self.decay_sign or not weight_decay:
            return
        with torch.no_grad():
            tensors = list(self.tensors.values())
            torch._foreach_mul_(tensors, 1.0 - lr * weight_decay)
            torch._foreach_add_(tensors, [self.theta0[n] for n in self.tensors], alpha=self.decay_sign * lr * weight_decay)

    def delta(self) -> dict[str, torch.Tensor]:
        """τ: the trained tangent for linear, θ_t − θ0 otherwise."""
        with torch.no_grad():
            if self.paradigm.linear:
                return {n: t.detach().clone() for n, t in self.tensors.items()}
            return {n: self.tensors[n].detach() - self.theta0[n] for n in self.selection.names}

    def close(self, restore: bool = True) -> None:
        if restore and not self.paradigm.linear:
            with torch.no_grad():
                for n in self.selection.names:
                    self.params[n].copy_(self.theta0[n])
        for n, p in self.params.items():
            p.requires_grad_(self._requires[n])


def make_optimizer(trainable: Trainable, cfg: TrainConfig):
    in_optimizer = 0.0 if trainable.decay_sign else cfg.weight_decay
    optimizer = torch.optim.AdamW(list(trainable.tensors.values()), lr=cfg.lr, weight_decay=in_optimizer,
                                  foreach=True)
    return optimizer, _schedule(optimizer, cfg)


def training_step(trainable: Trainable, head: torch.Tensor, batch, labels: torch.Tensor, optimizer, scheduler,
                  grad_clip: float | None, weight_decay: float = 0.0) -> torch.Tensor:
    """One optimizer step; returns the loss (checked for NaN before any update)."""
    logits = trainable.family.logits(trainable.forward(batch), head)
    loss = nn.functional.cross_entropy(logits, labels)
    if not torch.isfinite(loss):
        return loss
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(list(trainable.tensors.values()), grad_clip, foreach=True)
    trainable.decay(optimizer.param_groups[0]["lr"], weight_decay)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def finetune(
    family: Family,
    texts: Sequence,
    labels: Sequence[int],
    head: torch.Tensor,
    paradigm: Paradigm,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    task: str,
    progress: bool = True,
    stop_after: int | None = None,
    restore: bool = True,
) -> TaskVector | None:
    """Train one task vector; resumes from `out_dir/checkpoint.safetensors` when present.

    `stop_after` ends the call after that many steps of this call (an interruption, for tests); then
    nothing is returned and the latest checkpoint holds the state. With `restore=False` a non-linear
    run leaves the fine-tuned weights in the module instead of putting θ0 back.
    """
    out_dir = Path(out_dir)
    if len(texts) == 0:
        raise TaskarithError(f"task {task!r}: the training split is empty")
    selection = select(family.net, paradigm.preset)
    base_hash = family.fingerprint(selection.names)
    run_id = _run_fingerprint(cfg, paradigm, task, base_hash, len(texts))
    device = family.device
    head = head.to(device)
    labels_t = torch.as_tensor(list(labels), dtype=torch.long)
    ckpt = out_dir / "checkpoint.safetensors"

    # measured from before the trainable copies and optimizer exist: all of the fine-tune's own memory
    with peak_memory(device) as memory:
        trainable = Trainable(family, paradigm, cfg.decay_toward)
        try:
            optimizer, scheduler = make_optimizer(trainable, cfg)
            torch.manual_seed(cfg.seed)
            step = 0
            if ckpt.exists():
                step = load_checkpoint(ckpt, trainable=trainable.tensors, optimizer=optimizer,
                                       scheduler=scheduler, fingerprint=run_id)
            step, timing = _train_loop(trainable, texts, labels_t, head, optimizer, scheduler, cfg, ckpt, run_id,
                                       step, task, progress, stop_after, device, memory)
            if step < cfg.steps:
                return None
            tensors = trainable.delta()
            _check_finite(tensors, task, paradigm.name, step - 1, ckpt)
        finally:
            trainable.close(restore)
    timing.update(peak_memory_bytes=memory.peak, memory_increase_bytes=memory.increase, memory_kind=memory.kind)
    meta = {
        "base_model": family.model_id,
        "base_hash": base_hash,
        "paradigm": paradigm.name,
        "preset": paradigm.preset,
        "task": task,
        "selection": {k: v for k, v in selection.record().items() if k != "names"},
        "train_config": cfg.model_dump(),
        "training": timing,
        "taskarith_version": __version__,
    }
    vector = TaskVector(tensors, meta)
    vector.save(out_dir / "vector.safetensors")
    ckpt.unlink(missing_ok=True)
    return vector


def _kept(ckpt: Path) -> str:
    return f"the last good checkpoint is kept at {ckpt}" if ckpt.exists() else "no checkpoint was kept"


def _check_finite(tensors: dict[str, torch.Tensor], task: str, name: str, step: int, ckpt: Path) -> None:
    """An overflow in the update (easy in float16) leaves the loss finite until the next step; checked
    before saving, so a checkpoint or vector never holds NaN or Inf."""
    bad = next((n for n, t in tensors.items() if not torch.isfinite(t).all()), None)
    if bad is not None:
        raise TaskarithError(f"task {task!r}, {name}: parameter {bad!r} became NaN or Inf at step {step}; "
                             f"{_kept(ckpt)}; lower train.lr")


def _train_loop(trainable: Trainable, texts, labels, head, optimizer, scheduler, cfg: TrainConfig, ckpt: Path,
                run_id: str, step: int, task: str, progress: bool, stop_after: int | None,
                device, memory) -> tuple[int, dict]:
    family, name = trainable.family, trainable.paradigm.name
    lengths = [len(t) for t in texts] if all(isinstance(t, str) for t in texts) else None
    start_step, started = step, time.perf_counter()
    first_step_end = None
    # the bar closes on errors too, or a later bar in this process is drawn below a dead one
    with _progress(cfg.steps, step, f"{task}/{name}", progress) as bar:
        while step < cfg.steps and (stop_after is None or step - start_step < stop_after):
            idx = batch_indices(len(texts), cfg.batch_size, cfg.seed, step, lengths)
            batch = family.to_device(family.collate([texts[i] for i in idx]))
            loss = training_step(trainable, head, batch, labels[idx].to(device), optimizer, scheduler,
                                 cfg.grad_clip, cfg.weight_decay)
            if not torch.isfinite(loss):
                raise TaskarithError(f"task {task!r}, {name}: loss became {loss.item()} at step {step}; "
                                     f"{_kept(ckpt)}; lower train.lr")
            step += 1
            if first_step_end is None:
                first_step_end = time.perf_counter()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}",
                            ex_per_s=f"{(step - start_step) * len(idx) / (time.perf_counter() - started):.1f}")
            memory.sample()
            if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                _check_finite(trainable.tensors, task, name, step - 1, ckpt)
                save_checkpoint(ckpt, step=step, trainable=trainable.tensors, optimizer=optimizer,
                                scheduler=scheduler, fingerprint=run_id)
    total = time.perf_counter() - started
    done = step - start_step
    steady = (time.perf_counter() - first_step_end) / (done - 1) if first_step_end and done > 1 else (
        total / done if done else math.nan)
    timing = {
        "steps_this_session": done,
        "seconds": total,
        "seconds_per_step": steady,
    }
    return step, timing
