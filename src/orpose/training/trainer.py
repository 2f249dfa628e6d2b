"""The distillation training loop: SGD or AdamW with warm-up and step or cosine decay,
accumulation, checkpoints; one loop for every student family, whose registry entry names the
strategy (:mod:`orpose.training.strategy`) that builds its model, batches and losses.

Checkpoints (``last.pt``) are written atomically every ``checkpoint_every`` iterations with the
model, optimizer, scheduler, iteration and torch RNG state; ``--resume`` continues from there and,
on a CPU, reproduces the uninterrupted run bit for bit (the data order is a pure function of the
iteration, see :mod:`orpose.training.sampler`). Logs: ``metrics.csv`` (and TensorBoard events when
the ``tensorboard`` package is installed) plus ``loss_curves.png``.

Multi-GPU / multi-node: launch with ``torchrun`` (WORLD_SIZE > 1 turns on DistributedDataParallel;
each rank takes its share of every batch; rank 0 writes the files).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import functools
import logging
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from orpose.atomic import write_atomic
from orpose.checkpoints import read_checkpoint, save_student, student_state, write_checkpoint
from orpose.student.registry import settle_weights, settles_from_start, unmixed_prefixes
from orpose.training.config import SolverConfig, TrainConfig
from orpose.training.strategy import TrainingStrategy, strategy_class, unwrap
from orpose.viz.charts import plot_loss_curves

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "last.pt"
TRAINED_NAME = "trained.pt"  # the raw training state when last.pt holds mixed weights
# marks a last.pt whose end-of-training parts are set (settle_weights): a finished run resumed
# with nothing left to train leaves it as it is
SETTLED_KEY = "settled_weights"


def lr_factor(iteration: int, solver: SolverConfig) -> float:
    """Linear warm-up from ``warmup_factor``, then x ``gamma`` at each step (detectron2's rule),
    or a cosine decay to 0 at the last iteration (``schedule: cosine``)."""
    if solver.schedule == "cosine":
        factor = 0.5 * (1 + math.cos(math.pi * min(iteration, solver.iterations) /
                                     max(solver.iterations, 1)))  # fmt: skip
    else:
        factor = solver.gamma ** sum(1 for s in solver.steps if iteration >= s)
    if iteration < solver.warmup_iterations:
        alpha = iteration / solver.warmup_iterations
        factor *= solver.warmup_factor * (1 - alpha) + alpha
    return factor


def build_optimizer(model: torch.nn.Module, solver: SolverConfig):
    """The optimizer ``solver.optimizer`` names (SGD with momentum, or AdamW) over the trainable
    parameters, and its warm-up / decay schedule (:func:`lr_factor`). Parameters of the backbone's
    body (``backbone.body.*``) learn at ``lr x backbone_lr_factor``, in a group of their own."""
    s = solver
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if name.startswith("backbone.body.") else rest).append(p)
    groups = [{"params": rest}]
    if backbone:
        groups.append({"params": backbone, "lr": s.lr * s.backbone_lr_factor})
    if s.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=s.lr, weight_decay=s.weight_decay)
    elif s.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            groups, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay
        )
    else:  # the config's choices are checked when it is read
        raise ValueError(f"solver.optimizer: unknown optimizer {s.optimizer!r}")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, s))
    return optimizer, scheduler


__all__ = ["Trainer", "TrainingStrategy", "build_optimizer", "lr_factor", "unwrap"]


class Trainer:
    """Runs (or resumes) one training job into ``out_dir``: the loop, with the strategy of the
    config's student family (``self.strategy``) for what differs between families."""

    def __init__(self, config: TrainConfig, out_dir: Path | str, device: str | None = None):
        self.config = config
        self.out_dir = Path(out_dir)
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device is None:
            device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.is_main = self.rank == 0
        self.strategy: TrainingStrategy = strategy_class(config)(self)
        self.start_state: dict[str, torch.Tensor] = {}

    # -- building (the family's strategy) -------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        return self.strategy.build_model()

    def make_loader(self, start: int) -> torch.utils.data.DataLoader:
        return self.strategy.make_loader(start)

    def distributed_module(self, model: torch.nn.Module) -> torch.nn.Module:
        return self.strategy.distributed_module(model)

    def build_optimizer(self, model: torch.nn.Module):
        return build_optimizer(model, self.config.solver)

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def keeps_start_state(self) -> bool:
        """Whether the starting weights are needed after training starts (the final mix, the
        family's losses, or its end-of-training step)."""
        return (
            self.config.solver.final_weight_mix < 1
            or self.strategy.keeps_start_state()
            or settles_from_start(self.config.student)
        )

    def sync_buffers(self, model) -> None:
        """Make every rank's buffers equal: running statistics averaged, counters from rank 0.

        DistributedDataParallel averages gradients, so parameters agree, but batch norm's
        running statistics are updated from each rank's own images (SyncBatchNorm, used on
        GPUs, needs CUDA; gloo on CPUs has none): without this, ranks would end different.
        """
        if self.world_size <= 1 or not dist.is_initialized():
            return
        for buffer in model.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer.data, op=dist.ReduceOp.SUM)
                buffer.data /= self.world_size
            else:
                dist.broadcast(buffer.data, src=0)

    def save(self, model, optimizer, scheduler, iteration: int, path: Path | None = None,
             extra: dict | None = None) -> None:  # fmt: skip
        self.sync_buffers(model)  # every rank takes part, before rank 0 writes
        if not self.is_main:
            return
        core = unwrap(model)
        write_checkpoint(
            {
                **student_state(core),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "iteration": iteration,
                "torch_rng": torch.get_rng_state(),
                "config": self.config.to_dict(),
                **(extra or {}),
            },
            path or self.checkpoint_path(),
        )

    def mix_final_weights(self, model) -> None:
        """Weight-space ensemble of the trained and the starting network (WiSE-FT): every
        floating-point entry of the state becomes ``mix * trained + (1 - mix) * start``.

        Why: fine-tuning on the teacher's pseudo labels buys low-resolution accuracy at some
        cost at 1x; the mix keeps most of the gain and most of the starting 1x accuracy
        (measured in docs/student.md), for no training time. The parts its family's registry
        entry names (``unmixed_prefixes``) stay as trained (the CPU student's native head on
        crops smaller than its pretrained input, whose start has no accuracy there to keep)."""
        mix = self.config.solver.final_weight_mix
        core = unwrap(model)
        state = core.state_dict()
        unmixed = unmixed_prefixes(core, self.config.student)
        with torch.no_grad():
            for key, value in state.items():
                if value.is_floating_point() and not key.startswith(unmixed):
                    value.copy_(mix * value + (1 - mix) * self.start_state[key].to(value))

    def snapshot(self, model, iteration: int) -> Path:
        """The model at this iteration, kept (``snapshots/iter_N.pt``) for curves on held-out
        data; a student checkpoint without the optimizer state. Its raw trained weights (no
        final mix), with the parts the family sets at the end of training set from them (the
        CPU student's full-resolution detector), so that it scores at 1x as it would end."""
        core = unwrap(model)
        if settles_from_start(self.config.student):
            core = copy.deepcopy(core)
            settle_weights(core, self.start_state, self.config.student)
        return save_student(core, self.out_dir / "snapshots" / f"iter_{iteration:06d}.pt")

    def keep_resumed_architecture(self, state: dict) -> None:
        """A run resumed from a checkpoint (its content ``state``) written before a config field
        existed continues with the architecture it was started with (the field's legacy value,
        see :data:`orpose.checkpoints.student.LEGACY_DEFAULTS`), not the field's new default."""
        from orpose.checkpoints.student import legacy_fields

        saved = state.get("student_config")
        changes = legacy_fields(saved) if isinstance(saved, dict) else {}
        if changes:
            log.info("resuming a run started before %s existed: keeping %s", list(changes),
                     changes)  # fmt: skip
            self.config.student = dataclasses.replace(self.config.student, **changes)

    def restore(self, model, optimizer, scheduler, state: dict) -> int:
        """Load the training state from last.pt's content ``state``; ``self.resumed_mixed``: it
        ended a run whose last.pt holds mixed weights (the state training reached is then
        ``trained.pt``)."""
        self.resumed_mixed = "final_weight_mix" in state
        self.resumed_settled = SETTLED_KEY in state
        if self.resumed_mixed:
            state = read_checkpoint(self.out_dir / TRAINED_NAME, self.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        return int(state["iteration"])

    # -- logging --------------------------------------------------------------------------
    def _open_log(self, start: int):
        path = self.out_dir / "metrics.csv"
        rows = []
        if start > 0 and path.exists():  # drop rows logged after the checkpoint we resume from
            with open(path) as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= start]
        return path, rows

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.out_dir / "tensorboard"))

    # -- the loop -------------------------------------------------------------------------
    def run(self, resume: bool = False) -> Path:
        """Train to ``solver.iterations``; returns the final checkpoint's path."""
        s = self.config.solver
        self.out_dir.mkdir(parents=True, exist_ok=True)
        resumed = None  # last.pt's content, read once for the architecture and the state
        if resume and self.checkpoint_path().exists():
            resumed = read_checkpoint(self.checkpoint_path(), self.device)
            self.keep_resumed_architecture(resumed)
        model = self.build_model()
        mixing = s.final_weight_mix < 1
        # one copy of the starting weights, for whatever needs them later (the final mix here,
        # the CPU student's pull towards the start)
        self.start_state = {}
        if self.keeps_start_state():
            self.start_state = {k: v.detach().clone() for k, v in model.state_dict().items()
                                if v.is_floating_point()}  # fmt: skip
        optimizer, scheduler = self.build_optimizer(model)
        start, self.resumed_mixed, self.resumed_settled = 0, False, False
        if resumed is not None:
            start = self.restore(model, optimizer, scheduler, resumed)
            del resumed  # a second copy of the weights and optimizer state, not needed now
            log.info("resumed from %s at iteration %d", self.checkpoint_path(), start)
        elif resume:
            log.info("no checkpoint in %s: starting from scratch", self.out_dir)
        if self.world_size > 1:
            if self.device.type == "cuda":  # batch statistics over all ranks' images
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = torch.nn.parallel.DistributedDataParallel(
                self.distributed_module(model),
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        loader = self.make_loader(start)
        log_path, rows = self._open_log(start)
        tb = self._tensorboard() if self.is_main else None
        amp = s.amp and self.device.type == "cuda"
        model.train()
        bar = tqdm(
            total=s.iterations,
            initial=start,
            unit="it",
            disable=not self.is_main,
            dynamic_ncols=True,
        )
        t_last, images_seen = time.perf_counter(), 0
        for iteration, batch in enumerate(loader, start=start):
            losses = self.train_step(model, optimizer, batch, amp)
            scheduler.step()
            images_seen += self.strategy.batch_count(batch)
            done = iteration + 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses['total']:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2g}")
            if self.is_main and (done % s.log_every == 0 or done == s.iterations):
                now = time.perf_counter()
                row = {
                    "iteration": done,
                    "lr": scheduler.get_last_lr()[0],
                    "images_per_s": images_seen * self.world_size / (now - t_last),
                    **losses,
                }
                t_last, images_seen = now, 0
                rows.append(row)
                self._write_rows(log_path, rows)
                if tb is not None:
                    for key, value in row.items():
                        if key != "iteration":
                            tb.add_scalar(key, float(value), done)
            if done % s.checkpoint_every == 0 or done == s.iterations:
                final = mixing and done == s.iterations
                self.save(model, optimizer, scheduler, done,
                          self.out_dir / TRAINED_NAME if final else None)  # fmt: skip
            if s.snapshot_every and done % s.snapshot_every == 0 and self.is_main:
                self.snapshot(model, done)
        bar.close()
        if s.iterations == 0 and self.is_main:
            # no training asked: the starting weights (init_weights, init_lifter) become the
            # checkpoint, e.g. the paper's "default student" evaluated before training
            self.save(model, optimizer, scheduler, 0)
        settling = settles_from_start(self.config.student)
        # a finished run resumed with nothing left to train has its last.pt already: rewriting
        # it would change its file stamp, which eval and predict journals check
        finished = self.resumed_mixed if mixing else self.resumed_settled
        if (mixing or settling) and (start < s.iterations or not finished):
            extra: dict = {}
            if mixing:
                self.mix_final_weights(model)
                extra["final_weight_mix"] = s.final_weight_mix
                log.info("last.pt: %.2f x trained + %.2f x starting weights (raw: %s)",
                         s.final_weight_mix, 1 - s.final_weight_mix, TRAINED_NAME)  # fmt: skip
            if settling:  # parts made from the final and the starting weights, after the mix
                settle_weights(unwrap(model), self.start_state, self.config.student)
                extra[SETTLED_KEY] = True
            self.save(model, optimizer, scheduler, s.iterations, extra=extra)
        if tb is not None:
            tb.close()
        if self.is_main:
            self._finish(log_path)
        self.model = unwrap(model)  # as trained, per rank
        return self.checkpoint_path()

    def train_step(self, model, optimizer, batch, amp: bool) -> dict[str, float]:
        """One optimizer step over the strategy's micro-batches (``solver.accumulate`` for
        Keypoint R-CNN); returns the mean of each loss term and of their sum, ``total``."""
        s = self.config.solver
        optimizer.zero_grad(set_to_none=True)
        chunks = self.strategy.micro_batches(batch)
        totals: dict[str, float] = {}
        distributed = isinstance(model, torch.nn.parallel.DistributedDataParallel)
        autocast = nullcontext  # bfloat16 where the config and the family ask for it
        if amp and self.strategy.autocast:
            autocast = functools.partial(torch.autocast, "cuda", dtype=torch.bfloat16)
        for c, chunk in enumerate(chunks):
            last = c == len(chunks) - 1
            sync = model.no_sync() if distributed and not last else nullcontext()
            with sync:
                with autocast():
                    losses = self.strategy.losses(model, chunk)
                    loss = sum(losses.values())
                if not torch.isfinite(loss):
                    values = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
                    raise FloatingPointError(f"non-finite loss at this step ({values})")
                (loss / len(chunks)).backward()
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v.item() / len(chunks)
            totals["total"] = totals.get("total", 0.0) + loss.item() / len(chunks)
        if s.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip_grad_norm)
        optimizer.step()
        return totals

    @staticmethod
    def _write_rows(path: Path, rows: list[dict]) -> None:
        keys = list(dict.fromkeys(k for r in rows for k in r))

        def write(f) -> None:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)

        write_atomic(path, write, newline="")

    def _finish(self, log_path: Path) -> None:
        if log_path.exists():
            plot_loss_curves(log_path, self.out_dir / "loss_curves.png")
