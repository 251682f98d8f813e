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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from netadapt import plugins
from netadapt.config import TrainConfig
from netadapt.contracts import optional
from netadapt.data.coco import CocoDetection, collate_detection
from netadapt.detectors.model import DetectorSpec, build_detector, detector_checkpoint, save_detector, unwrap
from netadapt.engine import distributed
from netadapt.engine.batchnorm import STALE_WINDOW_SHARE, reestimate_batchnorm, stale_batchnorm
from netadapt.engine.evaluate import check_evaluable, evaluate_detector
from netadapt.engine.loop import Loop, Position, make_optimizer, make_schedule, wrap_ddp
from netadapt.engine.precision import Precision
from netadapt.engine.resume import check_finite_loss, check_same_classes, check_same_config
from netadapt.engine.rundir import run_directory
from netadapt.engine.runlog import RunLog
from netadapt.engine.sampling import ResumableBatchSampler, SeededSamples
from netadapt.engine.signals import after_last_iteration
from netadapt.engine.throughput import loader_options, prepare_device, to_memory_format
from netadapt.errors import ConfigError
from netadapt.files import load_resume_state, save_torch_atomic

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
    checkpoint_path = out_dir / "last.pth"
    torch.manual_seed(config.seed)
    model = build_detector(spec)
    state = load_resume_state(checkpoint_path, format=TRAIN_FORMAT) if resume else None
    if state is not None:
        _check_same_run(state, spec, config, checkpoint_path, train_set)
        model.load_state_dict(state["model"])
    elif init is not None:
        init(model)
    model.to(context.device)
    precision = Precision(config.amp, context.device)
    precision.prepare(to_memory_format(model, channels_last=config.channels_last))
    prepare_device(context.device)
    model = wrap_ddp(model, context)

    sampler = ResumableBatchSampler(
        len(train_set), batch_size=config.batch_size, seed=config.seed, rank=context.rank, world_size=context.world_size
    )
    iterations_per_epoch = sampler.batches_per_epoch
    total_iterations = config.epochs * iterations_per_epoch
    optimizer = make_optimizer(model.parameters(), config)
    schedule = make_schedule(optimizer, config, total=total_iterations, iterations_per_epoch=iterations_per_epoch)
    iteration = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        precision.load_state_dict(state.get("precision", {}))
        iteration = state["iteration"]
    loader = DataLoader(
        SeededSamples(train_set, seed=config.seed),
        batch_sampler=sampler,
        collate_fn=collate_detection,
        **loader_options(config, context.device),
    )

    def batches(epoch: int, first: int) -> DataLoader:
        sampler.set_position(epoch, first)
        return loader

    def step(batch, at: Position) -> dict[str, float]:
        model.train()
        losses = _train_step(model, optimizer, *batch, config=config, device=context.device, iteration=at.iteration + 1, precision=precision)
        schedule.step()
        return {"lr": schedule.get_last_lr()[0], "loss": sum(losses.values())} | losses

    log = RunLog(out_dir, keep_until=iteration, enabled=context.is_main)
    loop = Loop(
        total=total_iterations, iterations_per_epoch=iterations_per_epoch, batches=batches, progress=progress, context=context,
        log=log, log_every=config.log_every, checkpoint_every=config.checkpoint_every, checkpoint_path=checkpoint_path,
        save=lambda done: _save_training_state(checkpoint_path, spec, config, model, optimizer, schedule, done, precision),
    )
    started = time.perf_counter()
    ended = loop.run(step, start=iteration, stop_after=stop_after)
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


def _train_step(
    model, optimizer, images, targets, *, config: TrainConfig, device: torch.device, iteration: int, precision: Precision
) -> dict[str, float]:
    with precision.autocast():
        loss_dict = model(*batch_to_device(images, targets, device))
    loss = sum(loss_dict.values())
    check_finite_loss(float(loss.detach()), iteration=iteration)
    optimizer.zero_grad(set_to_none=True)
    precision.backward(loss)
    precision.step(optimizer, clip_parameters=model.parameters(), clip=config.grad_clip)
    return {name: float(value.detach()) for name, value in loss_dict.items()}


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


def _save_training_state(path: Path, spec, config, model, optimizer, schedule, iteration: int, precision: Precision) -> None:
    state = detector_checkpoint(spec, model)
    state |= {
        "format": TRAIN_FORMAT,
        "config": asdict(config),
        "model": state.pop("state_dict"),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "precision": precision.state_dict(),
        "iteration": iteration,
    }
    save_torch_atomic(state, path)
