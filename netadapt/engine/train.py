"""Detector training: iterations, schedule, logs, checkpoints, resume, DDP, final evaluation.

The run directory holds ``last.pth`` (the training state, written atomically every
``checkpoint_every`` iterations and at the end), ``model.pth`` (the trained detector),
``log.jsonl`` (one JSON object per logged iteration and per evaluation), TensorBoard event files
under ``tensorboard/`` when the ``tensorboard`` package is installed, and the evaluation outputs
(``metrics.json``, ``detections.json``). Resuming restores the model, optimiser, schedule and
data position; with the per-sample seeding of :mod:`netadapt.engine.sampling`, a resumed run on
CPU ends with the same weights as an uninterrupted one, bit for bit.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from netadapt import plugins
from netadapt.config import TrainConfig
from netadapt.contracts import optional
from netadapt.data.coco import CocoDetection, collate_detection
from netadapt.detectors.model import DETECTOR_VERSION, DetectorSpec, build_detector, save_detector, unwrap
from netadapt.engine import distributed
from netadapt.engine.batchnorm import STALE_WINDOW_SHARE, reestimate_batchnorm, stale_batchnorm
from netadapt.engine.evaluate import check_evaluable, evaluate_detector
from netadapt.engine.loop import Position, make_optimizer, make_schedule, wrap_ddp
from netadapt.engine.precision import Precision
from netadapt.engine.resume import check_finite_loss, check_same_classes, check_same_config
from netadapt.engine.run import Run
from netadapt.engine.rundir import run_directory
from netadapt.engine.sampling import ResumableBatchSampler, SeededSamples
from netadapt.engine.signals import after_last_iteration
from netadapt.engine.throughput import loader_options, prepare_device, to_memory_format
from netadapt.errors import ConfigError

TRAIN_FORMAT = "netadapt-train"


@dataclass
class TrainResult:
    out_dir: Path
    iterations: int
    final_loss: float
    seconds: float
    metrics: dict[str, float] | None


def train_detector(
    spec: DetectorSpec,
    config: TrainConfig,
    *,
    train_set: CocoDetection,
    val_set: CocoDetection | None,
    out_dir: str | Path,
    init: Callable[[nn.Module], None] | None = None,
    resume: bool = False,
    context: distributed.Context | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    force: bool = False,
    force_option: str | None = "--force",
) -> TrainResult:
    """Train ``spec``'s detector on ``train_set``; evaluate on ``val_set`` at the end.

    ``init(model)`` initialises a fresh model (e.g. remaps base weights into its backbone); it is
    not called when resuming from ``out_dir/last.pth``. ``stop_after`` ends the run after that
    many iterations in total, as an interruption would (tests, budgets).

    The run holds ``out_dir`` (:func:`~netadapt.engine.rundir.run_directory`): a resumable run there
    is continued only with ``resume`` (``force`` starts over). A resumed run must have the config,
    detector and classes it started with (:mod:`netadapt.engine.resume`). SIGINT/SIGTERM stop it at
    the end of an iteration with a checkpoint (:mod:`netadapt.engine.signals`); a loss that is not
    finite stops it with a :class:`~netadapt.errors.RunError`.
    """
    context = context or distributed.Context()
    out_dir = Path(out_dir)
    if val_set is not None:  # an empty or box-less val split is refused before training, not reported as mAP 0 or -100
        check_evaluable(val_set.coco, str(val_set.annotation_file))
    with run_directory(out_dir, resume=resume, force=force, enabled=context.is_main, force_option=force_option):
        return _train(
            spec, config, train_set=train_set, val_set=val_set, out_dir=out_dir, init=init, resume=resume,
            context=context, progress=progress, stop_after=stop_after,
        )


def _train(spec: DetectorSpec, config: TrainConfig, *, train_set, val_set, out_dir: Path, init, resume: bool, context, progress: bool, stop_after) -> TrainResult:
    run = Run(out_dir, format=TRAIN_FORMAT, config=config, section="train", resume=resume, context=context)
    checkpoint_path, state = run.path, run.state
    torch.manual_seed(config.seed)
    model = build_detector(spec)
    if state is not None:
        _check_same_run(state, spec, config, checkpoint_path, train_set)
    elif init is not None:
        init(model)
    model.to(context.device)
    precision = Precision(config.amp, context.device)
    precision.prepare(to_memory_format(model, channels_last=config.channels_last))
    prepare_device(context.device)

    sampler = ResumableBatchSampler(
        len(train_set), batch_size=config.batch_size, seed=config.seed, rank=context.rank, world_size=context.world_size
    )
    iterations_per_epoch = sampler.batches_per_epoch
    total_iterations = config.epochs * iterations_per_epoch
    step = DetectorTrainStep(
        wrap_ddp(model, context), config, total=total_iterations, iterations_per_epoch=iterations_per_epoch, device=context.device, precision=precision,
    )
    run.restore(step)
    model = step.model
    loader = DataLoader(
        SeededSamples(train_set, seed=config.seed),
        batch_sampler=sampler,
        collate_fn=collate_detection,
        **loader_options(config, context.device),
    )

    def batches(epoch: int, first: int) -> DataLoader:
        sampler.set_position(epoch, first)
        return loader

    log = run.log()
    loop = run.loop(
        step, log=log, log_every=config.log_every, checkpoint_every=config.checkpoint_every,
        extra=lambda: {"version": DETECTOR_VERSION, "spec": spec.to_dict()},
        total=total_iterations, iterations_per_epoch=iterations_per_epoch, batches=batches, progress=progress,
    )
    started = time.perf_counter()
    ended = loop.run(step, start=run.start, stop_after=stop_after)
    iteration, loss_value = ended.iteration, ended.loss
    if math.isnan(loss_value) and state is not None:  # resumed after its last iteration: the loss it ended with, not NaN
        loss_value = float(log.last("loss") or math.nan)
    seconds = time.perf_counter() - started
    metrics = None
    if iteration == total_iterations:
        with after_last_iteration(checkpoint_path, doing="the final BatchNorm re-estimation and evaluation"):
            reestimated = _reestimate_batchnorm(unwrap(model), spec, config, train_set, total_iterations, context.device)
            if reestimated:
                log.write({"iteration": iteration, "bn_reestimated": reestimated})
            if context.is_main:
                save_detector(out_dir / "model.pth", spec, model)
            if val_set is not None:
                evaluation = Precision(config.eval_amp or config.amp, context.device)  # as trained, unless train.eval_amp says otherwise
                with evaluation.autocast():
                    metrics = evaluate_detector(
                        evaluation.prepare(unwrap(model)), val_set, out_dir=out_dir, batch_size=config.eval_batch_size,
                        workers=loader_options(config, context.device)["num_workers"], context=context,
                    )
                log.write({"iteration": iteration, "eval": metrics})
    log.close()
    return TrainResult(out_dir, iteration, loss_value, seconds, metrics)


class DetectorOnBatch(nn.Module):
    """A detector run on one ``(images, targets)`` batch in train mode (its losses, discarded): BatchNorm
    re-estimation through the whole detector — backbone, extras, head — whatever the detector plugin."""

    def __init__(self, detector: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.detector, self.device = detector, device

    def forward(self, batch) -> dict[str, torch.Tensor]:
        return self.detector(*batch_to_device(*batch, self.device))


def batch_to_device(images, targets, device: torch.device) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Plain tensors on ``device``: what torchvision's detection models take in training."""
    images = [image.as_subclass(torch.Tensor).to(device) for image in images]
    targets = [{"boxes": t["boxes"].as_subclass(torch.Tensor).to(device), "labels": t["labels"].to(device)} for t in targets]
    return images, targets


class DetectorTrainStep:
    """One detector training iteration, run by the one loop (as the body of torchvision's ``references/detection``
    ``train_one_epoch``): the sum of the detector's losses in the configured precision, a loss that is not finite
    refused, backward, gradients clipped at ``train.grad_clip``, the optimiser's step and the per-iteration schedule.

    It owns what an iteration changes and a checkpoint holds: the detector's weights, the optimiser, the schedule
    and the precision's loss scale (``model`` may be wrapped in DDP; its weights are saved unwrapped)."""

    def __init__(
        self, model: nn.Module, config: TrainConfig, *, total: int, iterations_per_epoch: int, device: torch.device, precision: Precision,
    ) -> None:
        self.model, self.config, self.device, self.precision = model, config, device, precision
        self.optimizer = make_optimizer(model.parameters(), config)
        self.schedule = make_schedule(self.optimizer, config, total=total, iterations_per_epoch=iterations_per_epoch)

    def __call__(self, batch, at: Position) -> dict[str, float]:
        images, targets = batch
        self.model.train()
        with self.precision.autocast():
            loss_dict = self.model(*batch_to_device(images, targets, self.device))
        loss = sum(loss_dict.values())
        check_finite_loss(float(loss.detach()), iteration=at.iteration + 1)
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.backward(loss)
        self.precision.step(self.optimizer, clip_parameters=self.model.parameters(), clip=self.config.grad_clip)
        self.schedule.step()
        losses = {name: float(value.detach()) for name, value in loss_dict.items()}
        return {"lr": self.schedule.get_last_lr()[0], "loss": sum(losses.values())} | losses

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": {key: value.detach().cpu() for key, value in unwrap(self.model).state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(), "precision": self.precision.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.precision.load_state_dict(state.get("precision", {}))


def _reestimate_batchnorm(
    model: nn.Module, spec: DetectorSpec, config: TrainConfig, train_set: CocoDetection, iterations: int, device: torch.device
) -> dict | None:
    """``train.bn_reestimate``: re-estimate every BatchNorm's statistics of the trained detector on
    ``bn_reestimate_images`` training images (their training transforms, a fixed draw: every rank and a resumed run
    get the same statistics) — with ``auto`` when the base plugin asks for it (``reestimate_batchnorm``) or a
    BatchNorm's momentum is too small for the run (:func:`~netadapt.engine.batchnorm.stale_batchnorm`).
    What was done and why (for the log), or None."""
    if config.bn_reestimate == "off":
        return None
    stale = stale_batchnorm(model, iterations=iterations)
    asked = bool(optional(plugins.bases().get(spec.base), "reestimate_batchnorm", False))
    if config.bn_reestimate == "auto" and not (asked or stale):
        return None
    sampler = ResumableBatchSampler(len(train_set), batch_size=config.batch_size, seed=config.seed + 2)  # one draw, whatever the rank
    count = min(config.bn_reestimate_images, len(train_set))
    batches = itertools.islice(
        DataLoader(SeededSamples(train_set, seed=config.seed + 2), batch_sampler=sampler, collate_fn=collate_detection),
        -(-count // config.batch_size),
    )
    reestimate_batchnorm(DetectorOnBatch(model, device), batches)
    why = "train.bn_reestimate=on" if config.bn_reestimate == "on" else (
        f"base {spec.base!r} asks for it" if asked else f"{len(stale)} BatchNorm layers average over more than "
        f"{STALE_WINDOW_SHARE:.0%} of the run's {iterations} iterations (e.g. {stale[0]})")
    return {"images": count, "why": why}


def _check_same_run(state: dict, spec: DetectorSpec, config: TrainConfig, path: Path, train_set: CocoDetection) -> None:
    """A resumed run trains what it started: the same config (but workers and logging), detector and classes."""
    check_same_config(state, config, path, section="train")
    started = state["spec"]
    check_same_classes(started.get("class_names", []), spec.class_names, path=path, annotations=getattr(train_set, "annotation_file", "the dataset"))
    now = spec.to_dict()
    for name in ("detector", "base", "genotype", "input_size", "options"):
        if name in started and name in now and started[name] != now[name]:
            raise ConfigError(f"{path}: the run started with another {name} ({started[name]!r}, now {now[name]!r}); start a new run to change it")
