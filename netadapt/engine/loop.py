"""The one training loop: detector training, the search and the demo base's pretraining all run in it.

A run is ``total`` iterations, in epochs of ``iterations_per_epoch``. The caller brings a *step*, an
object that takes one iteration's optimiser step(s) on a batch and returns what it measured (a
record: ``loss`` and whatever else it logs), and ``batches(epoch, first)``, the batches of an epoch
from its ``first`` one (the caller's resumable sampler set to that position). The loop does the
rest, the same way for every caller:

- counting iterations and epochs, from ``start`` (a resumed run) to ``total`` or ``stop_after``;
- the loss averaged over DDP ranks (``torchrun``), the progress bar (bar, count, ETA and loss first);
- ``log.jsonl`` every ``log_every`` iterations and at the end (``{"iteration", "epoch"} | record``);
- the checkpoint every ``checkpoint_every`` iterations, at the end and when SIGINT/SIGTERM arrive
  (:mod:`netadapt.engine.signals`), written by rank 0 while the other ranks wait;
- ``end_of_epoch(epoch)`` after the last iteration of each epoch (1-based), whose returned fields stay
  on the bar (a held-out accuracy, say);
- running out of memory as one line (:class:`~netadapt.errors.OutOfMemory`) naming the iteration and the last
  checkpoint to resume from: CUDA's ``torch.OutOfMemoryError``, CPU's allocator failing, and a data loader
  worker killed by a signal (on Linux, the kernel's out-of-memory killer picks the largest process of the run's
  group; the loader reports its worker's death, the main process lives to say it).

What differs between callers lives in their step: the detector's step (:class:`~netadapt.engine.train.DetectorTrainStep`),
the search's weight and α steps (:class:`~netadapt.search.step.SearchStep`), the classifier's step
(:mod:`netadapt.jobs.pretrain`). A resumable run's life around the loop (``last.pth`` loaded and checked, the step's
``state_dict()`` saved and restored, the log) is :class:`~netadapt.engine.run.Run`'s. Seeding, the model, its DDP wrapper, the optimisers and their
schedule are built by the caller (:func:`make_optimizer`, :func:`make_schedule`, :func:`wrap_ddp`), so
that the loop never draws a random number: a resumed run on CPU ends bit for bit where an
uninterrupted one does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from netadapt.engine import distributed
from netadapt.engine.progress import TrainingProgress
from netadapt.engine.runlog import RunLog
from netadapt.engine.signals import interruptible
from netadapt.errors import OutOfMemory, describe, loader_worker_died


@dataclass(frozen=True)
class Position:
    """Where an iteration is, all 0-based: in the run, its epoch, and its batch in the epoch."""

    iteration: int
    epoch: int
    batch: int


class Step(Protocol):
    """One iteration's optimiser step(s) on ``batch``; returns the record to log (with ``loss``)."""

    def __call__(self, batch: Any, at: Position) -> dict[str, Any]: ...


@dataclass
class LoopEnd:
    iteration: int  # iterations done in all (``total`` when the run is finished)
    record: dict[str, Any]  # the last iteration's record (empty when none ran)

    @property
    def loss(self) -> float:
        return float(self.record.get("loss", math.nan))


def _default_shown(record: dict[str, Any], at: Position) -> dict[str, Any]:
    return {"loss": record["loss"], "epoch": at.epoch + 1}


@dataclass
class Loop:
    total: int
    iterations_per_epoch: int
    batches: Callable[[int, int], Iterable[Any]]
    description: str = "train"
    progress: bool = True
    context: distributed.Context = field(default_factory=distributed.Context)
    log: RunLog | None = None
    log_every: int = 0  # 0: never (the last iteration is logged whenever there is a log)
    save: Callable[[int], None] | None = None  # writes the checkpoint at an iteration (called on rank 0)
    checkpoint_every: int = 0
    checkpoint_path: Path | None = None  # named in the line an interruption prints
    resume_with: str = "--resume"  # how that line says to continue (a command's option; a library call's argument)
    shown: Callable[[dict[str, Any], Position], dict[str, Any]] = _default_shown  # a record's fields on the bar
    end_of_epoch: Callable[[int], dict[str, Any] | None] | None = None
    saved_at: int | None = field(default=None, init=False)  # the iteration of the last checkpoint (None: none yet)
    done: int = field(default=0, init=False)  # iterations done (while it runs)

    def run(self, step: Step, *, start: int = 0, stop_after: int | None = None) -> LoopEnd:
        """Iterations ``start`` … ``min(total, stop_after)``; the last one is checkpointed and logged."""
        end = self.total if stop_after is None else min(self.total, stop_after)
        self.saved_at = start if start and self.checkpoint_path is not None and self.checkpoint_path.is_file() else None
        try:
            return self._run(step, start=start, end=end)
        except (torch.OutOfMemoryError, MemoryError) as error:
            raise OutOfMemory(self._out_of_memory_line(_first_line(error))) from error
        except ConnectionResetError as error:  # a batch's tensors were being passed from a process that died meanwhile
            error.__traceback__ = None
            raise OutOfMemory(self._out_of_memory_line(
                "a connection to another process was reset (a data loader worker or a rank killed, most often by the kernel's "
                "out-of-memory killer)"
            )) from error
        except RuntimeError as error:
            if loader_worker_died(error):
                # Its traceback holds the loader's iterator, whose going away shuts the other workers down and stops
                # the SIGCHLD handler from raising this again in a process that goes on (a Python user's).
                error.__traceback__ = None
                raise OutOfMemory(
                    f"{self.description}: a data loader worker died at iteration {self.done + 1} of {self.total} ({describe(error)}; "
                    f"the kernel's out-of-memory killer sends SIGKILL): {self._resume_clause()}; fewer loader workers "
                    f"({self.description}.workers) or a smaller batch need less memory"
                ) from error
            if "can't allocate memory" in str(error):
                raise OutOfMemory(self._out_of_memory_line(_first_line(error))) from error
            raise

    def _run(self, step: Step, *, start: int, end: int) -> LoopEnd:
        iteration, record, kept = start, {}, {}
        self.done = start
        enabled = self.progress and self.context.is_main
        with TrainingProgress(total=self.total, completed=iteration, enabled=enabled, description=self.description) as bar, \
                interruptible() as interruption:
            while iteration < end:
                epoch, first = divmod(iteration, self.iterations_per_epoch)
                for batch_in_epoch, batch in enumerate(self.batches(epoch, first), start=first):
                    at = Position(iteration, epoch, batch_in_epoch)
                    record = {"iteration": iteration + 1, "epoch": epoch + 1} | step(batch, at)
                    record["loss"] = distributed.mean_across_ranks(record["loss"], self.context)
                    iteration += 1
                    self.done = iteration
                    bar.update(iteration, **(self.shown(record, at) | kept))
                    if self.log is not None and ((self.log_every and iteration % self.log_every == 0) or iteration == end):
                        self.log.write(record)
                    if iteration % self.iterations_per_epoch == 0 and self.end_of_epoch is not None:
                        kept |= self.end_of_epoch(epoch + 1) or {}
                        bar.update(iteration, **(self.shown(record, at) | kept))
                    if self.save is not None and (
                        (self.checkpoint_every and iteration % self.checkpoint_every == 0) or iteration == end or interruption.requested
                    ):
                        if self.context.is_main:
                            self.save(iteration)
                        self.saved_at = iteration
                        distributed.barrier(self.context)
                    interruption.stop(
                        iteration=iteration, checkpoint=self.checkpoint_path if self.save is not None else None, resume_with=self.resume_with,
                    )
                    if iteration >= end:
                        break
        return LoopEnd(iteration, record)

    def _out_of_memory_line(self, cause: str) -> str:
        """One line (module docstring): the iteration that ran out of memory, its cause, the checkpoint to resume from."""
        return f"{self.description}: out of memory at iteration {self.done + 1} of {self.total}: {cause}; {self._resume_clause()} once memory is free"

    def _resume_clause(self) -> str:
        if self.saved_at is not None and self.checkpoint_path is not None:
            return f"the last checkpoint, {self.checkpoint_path} at iteration {self.saved_at}: continue from it with {self.resume_with}"
        return "no checkpoint written yet: start again"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:240] if lines else type(error).__name__


def make_optimizer(parameters, config) -> torch.optim.Optimizer:
    """The optimiser a ``train:`` or ``search:`` section names (``optimizer``, ``lr``, ...)."""
    if config.optimizer == "rmsprop":  # FNA's retraining recipe (DESIGN §1.5)
        return torch.optim.RMSprop(
            parameters, lr=config.lr, alpha=0.9, eps=config.rmsprop_eps, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def lr_factor(iteration: int, *, config, total_iterations: int, iterations_per_epoch: int) -> float:
    """Linear warm-up from ``warmup_factor``, times a cosine or step decay (per iteration)."""
    factor = 1.0
    if iteration < config.warmup_iterations:
        factor = config.warmup_factor + (1 - config.warmup_factor) * iteration / config.warmup_iterations
    if config.lr_schedule == "cosine":
        return factor * 0.5 * (1 + math.cos(math.pi * min(iteration, total_iterations) / total_iterations))
    # Milestones are 1-based epochs, like alpha_start_epoch: "÷10 at epoch 22" acts from epoch 22's first iteration.
    passed = sum(iteration >= (milestone - 1) * iterations_per_epoch for milestone in config.lr_milestones)
    return factor * config.lr_gamma**passed


def make_schedule(optimizer: torch.optim.Optimizer, config, *, total: int, iterations_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-iteration learning-rate schedule of :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(it, config=config, total_iterations=total, iterations_per_epoch=iterations_per_epoch)
    )


def wrap_ddp(model: nn.Module, context: distributed.Context, *, find_unused_parameters: bool = False) -> nn.Module:
    """``model`` in DistributedDataParallel under ``torchrun``, else itself."""
    if not context.distributed:
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[context.device.index] if context.device.type == "cuda" else None, find_unused_parameters=find_unused_parameters,
    )
