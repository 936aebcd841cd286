"""Fine-tuning under the three paradigms, with the head frozen, checkpoints and exact resume, on one process
or on the ranks torchrun starts (DistributedDataParallel; rank 0 alone writes the checkpoint and the vector).
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from ..version import __version__
from ..config import TrainConfig
from ..groundwork.errors import TaskarithError
from ..models.base import Model
from ..paradigms import Paradigm
from ..groundwork.resources import peak_memory
from ..vectors import TaskVector
from .batches import batch_indices
from .checkpoint import load_checkpoint, save_checkpoint
from .distributed import Ranks, barrier, current_ranks, loss_scale, micro_batches, share
from .selection import Selection, select
from .trainable import Piece, Trainable, make_optimizer, replicate, training_step


@dataclass(frozen=True)
class TrainingJob:
    """One task's fine-tune: how (paradigm, train) and where (out_dir gets the checkpoint, then the vector)."""

    paradigm: Paradigm
    train: TrainConfig
    out_dir: Path
    task: str  # names the task in messages and in the vector's metadata
    progress: bool = True
    device_batch_size: int | None = None  # the most examples per forward; a larger share accumulates

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / "checkpoint.safetensors"


def _run_fingerprint(job: TrainingJob, base_hash: str, n: int) -> str:
    paradigm = job.paradigm
    trained = {"name": paradigm.name, "linear": paradigm.linear, "preset": paradigm.preset}
    record = {"train": job.train.model_dump(), "paradigm": trained, "task": job.task, "base": base_hash, "n": n}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled, leave=False,
                dynamic_ncols=True)


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
    ranks: Ranks
    replica: Any  # the DDP replica under torchrun, else None
    step: int = 0


def finetune(model: Model, inputs: Sequence, labels: Sequence[int], head: torch.Tensor,
             job: TrainingJob) -> TaskVector:
    """Train one task vector into `job.out_dir/vector.safetensors`, resuming from the checkpoint there.

    An interruption (any exception, Ctrl-C included) leaves the last checkpoint for the next call and θ0
    in the module. Under torchrun every rank calls this and returns the same vector; rank 0 writes it."""
    ranks = current_ranks()
    if len(inputs) == 0:
        raise TaskarithError(f"task {job.task!r}: the training split is empty")
    if min(job.train.batch_size, len(inputs)) < ranks.world:
        raise TaskarithError(f"task {job.task!r}: a batch of {min(job.train.batch_size, len(inputs))} examples "
                             f"cannot be shared by {ranks.world} ranks; use fewer ranks")
    selection = select(model.net, job.paradigm.preset)
    base_hash = model.fingerprint(selection.names)
    examples = _examples(model, inputs, labels, head)
    # measured from before the trainable copies and optimizer exist: all of the fine-tune's own memory
    with peak_memory(model.device) as memory:
        trainable = Trainable(model, job.paradigm, job.train.decay_toward)
        try:
            session = _start(trainable, job, _run_fingerprint(job, base_hash, len(inputs)), ranks)
            timing = _train_loop(session, examples, memory)
            tensors = trainable.delta()
            _check_finite(tensors, job, session.step - 1)
        finally:
            trainable.close()
    timing.update(peak_memory_bytes=memory.peak, memory_increase_bytes=memory.increase, memory_kind=memory.kind)
    vector = TaskVector(tensors, _vector_meta(model, job, base_hash, selection, timing))
    if ranks.writes:
        vector.save(job.out_dir / "vector.safetensors")
        job.checkpoint.unlink(missing_ok=True)
    barrier(ranks)  # no rank looks for the vector before it is written
    return vector


def _examples(model: Model, inputs: Sequence, labels: Sequence[int], head: torch.Tensor) -> _Examples:
    lengths = [len(t) for t in inputs] if all(isinstance(t, str) for t in inputs) else None
    return _Examples(inputs, torch.as_tensor(list(labels), dtype=torch.long), head.to(model.device), lengths)


def _start(trainable: Trainable, job: TrainingJob, run_id: str, ranks: Ranks) -> _Session:
    """A fresh optimizer and schedule under the job's seed, or the checkpoint's state and step where one exists
    (every rank reads the same one); then the replica, whose construction waits for every rank."""
    optimizer, scheduler = make_optimizer(trainable, job.train)
    torch.manual_seed(job.train.seed)
    step = 0
    if job.checkpoint.exists():
        step = load_checkpoint(job.checkpoint, trainable=trainable.tensors, optimizer=optimizer,
                               scheduler=scheduler, fingerprint=run_id)
    return _Session(job, trainable, optimizer, scheduler, run_id, ranks, replicate(trainable, ranks), step)


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
    start, started, first_step_end, durations = session.step, time.perf_counter(), None, []
    # the bar closes on errors too, or a later bar in this process is drawn below a dead one
    shown = job.progress and session.ranks.writes
    with _progress(cfg.steps, start, f"{job.task}/{job.paradigm.name}", shown) as bar:
        while session.step < cfg.steps:
            step_started = time.perf_counter()
            loss, size = _step(session, examples)
            durations.append(time.perf_counter() - step_started)
            first_step_end = first_step_end or time.perf_counter()
            bar.update(1)
            rate = (session.step - start) * size / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{loss.item():.4f}", ex_per_s=f"{rate:.1f}")
            memory.sample()
            if session.step % cfg.checkpoint_every == 0 and session.step < cfg.steps:
                _check_finite(session.trainable.tensors, job, session.step - 1)
                if session.ranks.writes:
                    save_checkpoint(job.checkpoint, step=session.step, trainable=session.trainable.tensors,
                                    optimizer=session.optimizer, scheduler=session.scheduler,
                                    fingerprint=session.run_id)
    return _timing(session.step - start, started, first_step_end, durations)


def _step(session: _Session, examples: _Examples) -> tuple[torch.Tensor, int]:
    """The optimizer step of `session.step`, which it advances; the loss and the global batch size.

    Every rank draws the same global batch and forwards its share, in micro-batches of at most
    job.device_batch_size examples."""
    job, cfg, model = session.job, session.job.train, session.trainable.model
    idx = batch_indices(len(examples.inputs), cfg.batch_size, cfg.seed, session.step, examples.lengths)
    pieces = [Piece(model.to_device(model.collate([examples.inputs[i] for i in part])),
                    examples.labels[part].to(model.device), loss_scale(len(part), session.ranks, len(idx)))
              for part in micro_batches(share(idx, session.ranks), job.device_batch_size)]
    loss = training_step(session.trainable, examples.head, pieces, session.optimizer, session.scheduler,
                         cfg.grad_clip, cfg.weight_decay, replica=session.replica, ranks=session.ranks)
    if not torch.isfinite(loss):
        raise TaskarithError(f"task {job.task!r}, {job.paradigm.name}: loss became {loss.item()} at step "
                             f"{session.step}; {_kept(job.checkpoint)}; lower train.lr")
    session.step += 1
    return loss, len(idx)


def _timing(done: int, started: float, first_step_end: float | None, durations: list[float]) -> dict:
    """Seconds of this call; per step, the steady rate after the first step (which also allocates), and the
    median step after the first, which a burst of contention from another process moves far less."""
    total = time.perf_counter() - started
    if first_step_end is not None and done > 1:
        steady = (time.perf_counter() - first_step_end) / (done - 1)
    else:
        steady = total / done if done else math.nan
    steady_steps = durations[1:] or durations
    median = float(statistics.median(steady_steps)) if steady_steps else math.nan
    return {"steps_this_session": done, "seconds": total, "seconds_per_step": steady, "median_seconds_per_step": median}
