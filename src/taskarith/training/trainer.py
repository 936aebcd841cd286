"""Fine-tuning under the three paradigms, with the head frozen, checkpoints and exact resume.

non-linear: train the selected parameters of f in place. attention: non-linear with the `attention`
preset. linear: train τ in f(x; θ0) + J f(x; θ0)·τ, with θ0 held once by the module itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..version import __version__
from ..config import TrainConfig
from ..errors import TaskarithError
from ..models.base import Model
from ..paradigms import Paradigm
from ..resources import peak_memory
from ..vectors import TaskVector
from .batches import batch_indices
from .checkpoint import load_checkpoint, save_checkpoint
from .linearize import base_params, linearized_represent
from .selection import Selection, select


@dataclass(frozen=True)
class TrainingJob:
    """One task's fine-tune: how (paradigm, train) and where (out_dir gets the checkpoint, then the vector)."""

    paradigm: Paradigm
    train: TrainConfig
    out_dir: Path
    task: str  # names the task in messages and in the vector's metadata
    progress: bool = True

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / "checkpoint.safetensors"


def _run_fingerprint(job: TrainingJob, base_hash: str, n: int) -> str:
    paradigm = job.paradigm
    trained = {"name": paradigm.name, "linear": paradigm.linear, "preset": paradigm.preset}
    record = {"train": job.train.model_dump(), "paradigm": trained, "task": job.task, "base": base_hash, "n": n}
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

    def __init__(self, model: Model, paradigm: Paradigm, decay_toward: str = "zero"):
        self.model, self.paradigm = model, paradigm
        # AdamW decays what it trains (θ, or τ when linear) toward zero; the other target is decayed by hand:
        # +1 pulls θ toward θ0 (non-linear, base), −1 pulls θ0 + τ toward zero (linear, zero)
        self.decay_sign = {(False, "base"): 1.0, (True, "zero"): -1.0}.get((paradigm.linear, decay_toward), 0.0)
        self.selection: Selection = select(model.net, paradigm.preset)
        self.params = dict(model.net.named_parameters())
        self._requires = {n: p.requires_grad for n, p in self.params.items()}
        # autograd then never computes gradients of frozen parameters
        for p in self.params.values():
            p.requires_grad_(False)
        names = self.selection.names
        if paradigm.linear:
            self.theta0 = base_params(model, names)
            self.tensors = {n: torch.zeros_like(self.theta0[n], requires_grad=True) for n in names}
        else:
            self.theta0 = {n: self.params[n].detach().clone() for n in names}
            self.tensors = {n: self.params[n] for n in names}
            for t in self.tensors.values():
                t.requires_grad_(True)

    def forward(self, batch) -> torch.Tensor:
        if self.paradigm.linear:
            return linearized_represent(self.model, batch, self.theta0, self.tensors)
        return self.model.represent(batch)

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

    def close(self) -> None:
        if not self.paradigm.linear:
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
    logits = trainable.model.logits(trainable.forward(batch), head)
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


@dataclass(frozen=True)
class _Examples:
    """The training split as the loop reads it; `lengths` (of texts only) let batches bucket by length."""

    inputs: Sequence
    labels: torch.Tensor
    head: torch.Tensor
    lengths: list[int] | None


@dataclass
class _Session:
    """One call's training state: what is trained, by what optimizer, and the next step to take."""

    job: TrainingJob
    trainable: Trainable
    optimizer: torch.optim.Optimizer
    scheduler: Any
    run_id: str  # the checkpoint's fingerprint: a checkpoint of another configuration is refused
    step: int = 0


def finetune(model: Model, inputs: Sequence, labels: Sequence[int], head: torch.Tensor,
             job: TrainingJob) -> TaskVector:
    """Train one task vector into `job.out_dir/vector.safetensors`, resuming from the checkpoint there.

    An interruption (any exception, Ctrl-C included) leaves the last checkpoint for the next call and θ0
    in the module."""
    if len(inputs) == 0:
        raise TaskarithError(f"task {job.task!r}: the training split is empty")
    selection = select(model.net, job.paradigm.preset)
    base_hash = model.fingerprint(selection.names)
    examples = _examples(model, inputs, labels, head)
    # measured from before the trainable copies and optimizer exist: all of the fine-tune's own memory
    with peak_memory(model.device) as memory:
        trainable = Trainable(model, job.paradigm, job.train.decay_toward)
        try:
            session = _start(trainable, job, _run_fingerprint(job, base_hash, len(inputs)))
            timing = _train_loop(session, examples, memory)
            tensors = trainable.delta()
            _check_finite(tensors, job, session.step - 1)
        finally:
            trainable.close()
    timing.update(peak_memory_bytes=memory.peak, memory_increase_bytes=memory.increase, memory_kind=memory.kind)
    vector = TaskVector(tensors, _vector_meta(model, job, base_hash, selection, timing))
    vector.save(job.out_dir / "vector.safetensors")
    job.checkpoint.unlink(missing_ok=True)
    return vector


def _examples(model: Model, inputs: Sequence, labels: Sequence[int], head: torch.Tensor) -> _Examples:
    lengths = [len(t) for t in inputs] if all(isinstance(t, str) for t in inputs) else None
    return _Examples(inputs, torch.as_tensor(list(labels), dtype=torch.long), head.to(model.device), lengths)


def _start(trainable: Trainable, job: TrainingJob, run_id: str) -> _Session:
    """A fresh optimizer and schedule under the job's seed, or the checkpoint's state and step where one exists."""
    optimizer, scheduler = make_optimizer(trainable, job.train)
    torch.manual_seed(job.train.seed)
    session = _Session(job, trainable, optimizer, scheduler, run_id)
    if job.checkpoint.exists():
        session.step = load_checkpoint(job.checkpoint, trainable=trainable.tensors, optimizer=optimizer,
                                       scheduler=scheduler, fingerprint=run_id)
    return session


def _vector_meta(model: Model, job: TrainingJob, base_hash: str, selection: Selection, timing: dict) -> dict:
    return {
        "base_model": model.model_id,
        "base_hash": base_hash,
        "paradigm": job.paradigm.name,
        "preset": job.paradigm.preset,
        "task": job.task,
        "selection": {k: v for k, v in selection.record().items() if k != "names"},
        "train_config": job.train.model_dump(),
        "training": timing,
        "taskarith_version": __version__,
    }


def _kept(ckpt: Path) -> str:
    return f"the last good checkpoint is kept at {ckpt}" if ckpt.exists() else "no checkpoint was kept"


def _check_finite(tensors: dict[str, torch.Tensor], job: TrainingJob, step: int) -> None:
    """An overflow in the update (easy in float16) leaves the loss finite until the next step; checked
    before saving, so a checkpoint or vector never holds NaN or Inf."""
    bad = next((n for n, t in tensors.items() if not torch.isfinite(t).all()), None)
    if bad is not None:
        raise TaskarithError(f"task {job.task!r}, {job.paradigm.name}: parameter {bad!r} became NaN or Inf at "
                             f"step {step}; {_kept(job.checkpoint)}; lower train.lr")


def _train_loop(session: _Session, examples: _Examples, memory) -> dict:
    """Steps from `session.step` to train.steps, a checkpoint every train.checkpoint_every; this call's timing."""
    job, cfg = session.job, session.job.train
    start, started, first_step_end = session.step, time.perf_counter(), None
    # the bar closes on errors too, or a later bar in this process is drawn below a dead one
    with _progress(cfg.steps, start, f"{job.task}/{job.paradigm.name}", job.progress) as bar:
        while session.step < cfg.steps:
            loss, size = _step(session, examples)
            first_step_end = first_step_end or time.perf_counter()
            bar.update(1)
            rate = (session.step - start) * size / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{loss.item():.4f}", ex_per_s=f"{rate:.1f}")
            memory.sample()
            if session.step % cfg.checkpoint_every == 0 and session.step < cfg.steps:
                _check_finite(session.trainable.tensors, job, session.step - 1)
                save_checkpoint(job.checkpoint, step=session.step, trainable=session.trainable.tensors,
                                optimizer=session.optimizer, scheduler=session.scheduler, fingerprint=session.run_id)
    return _timing(session.step - start, started, first_step_end)


def _step(session: _Session, examples: _Examples) -> tuple[torch.Tensor, int]:
    """The optimizer step of `session.step`, which it advances; the loss and the batch size."""
    job, cfg, model = session.job, session.job.train, session.trainable.model
    idx = batch_indices(len(examples.inputs), cfg.batch_size, cfg.seed, session.step, examples.lengths)
    batch = model.to_device(model.collate([examples.inputs[i] for i in idx]))
    loss = training_step(session.trainable, examples.head, batch, examples.labels[idx].to(model.device),
                         session.optimizer, session.scheduler, cfg.grad_clip, cfg.weight_decay)
    if not torch.isfinite(loss):
        raise TaskarithError(f"task {job.task!r}, {job.paradigm.name}: loss became {loss.item()} at step "
                             f"{session.step}; {_kept(job.checkpoint)}; lower train.lr")
    session.step += 1
    return loss, len(idx)


def _timing(done: int, started: float, first_step_end: float | None) -> dict:
    """Seconds of this call; per step, the steady rate after the first step (which also allocates)."""
    total = time.perf_counter() - started
    if first_step_end is not None and done > 1:
        steady = (time.perf_counter() - first_step_end) / (done - 1)
    else:
        steady = total / done if done else math.nan
    return {"steps_this_session": done, "seconds": total, "seconds_per_step": steady}
