"""Pretrain a base network as a classifier on demo object crops (DESIGN §2.4).

The paper adapts an ImageNet-pretrained network to detection. Where no base weights are given
and ImageNet weights cannot be downloaded, the embedded demo stands in for ImageNet: it
pretrains the base network as a classifier on crops of the demo's objects
(:func:`netadapt.data.demo.render_object_crops`, one object per crop, six classes), caches the
weights, and says so on screen. The weights are a plain ``network.state_dict()`` in torchvision's
key format, classifier included (six outputs), so :func:`netadapt.weights.read_weights` reads
them as it reads any torchvision weights file.

- :func:`pretrain_base_classifier` trains and writes the weights to a path.
- :func:`pretrained_demo_base` gives the cached weights, pretraining once if they are missing.

Pretraining runs in the one loop (:class:`~netadapt.engine.run.Run`, :class:`ClassifierStep`): it checkpoints each
epoch and on SIGINT/SIGTERM, and a stopped one continues (the cache's on the next run that needs the demo base).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.transforms import v2

from netadapt import plugins
from netadapt.cache import cache_root
from netadapt.data.demo import DEMO_CLASSES, GENERATOR_VERSION, render_object_crops
from netadapt.engine.batchnorm import reestimate_batchnorm
from netadapt.engine import distributed
from netadapt.engine.loop import Position
from netadapt.engine.run import Run
from netadapt.errors import NetadaptWarning, WeightsError
from netadapt.files import load_torch_file, save_torch_atomic, write_json_atomic

__all__ = [
    "DEFAULT_SETTINGS",
    "RECIPE_VERSION",
    "PretrainResult",
    "PretrainSettings",
    "pretrain_base_classifier",
    "pretrained_demo_base",
]

#: Bump when the recipe (augmentation, optimiser, schedule, defaults) changes: the cache file
#: name carries it, so weights trained by an older recipe are not reused.
#: 2: BatchNorm statistics re-estimated under the final weights (:func:`_reestimate_batchnorm`).
RECIPE_VERSION = 2

#: ``last.pth``'s format while a pretraining runs (:func:`netadapt.files.load_resume_state` refuses another kind).
PRETRAIN_FORMAT = "netadapt-pretrain"

# The input normalisation of netadapt's SSDLite (torchvision's ssdlite: [0, 1] → [-1, 1]), so
# that the pretrained features see detection inputs on the scale they were trained on.
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)

# Wall time of the default pretraining on 2 CPU cores (measured, see PretrainSettings).
DEFAULT_MINUTES = 3

# Batches over which the BN statistics are re-estimated for the held-out accuracy shown after each
# epoch (the final statistics use every training crop, see _reestimate_batchnorm).
DISPLAY_BATCHES = 4


@dataclass(frozen=True)
class PretrainSettings:
    """What a pretraining run does; the defaults are the demo's recipe.

    ``crop_size`` 96: the crops then hold objects 43-77 px across, the middle of the demo
    detection images' range (16-107 px at 320²), and MobileNetV2's stride-32 output is still a
    3×3 map, so the last stage learns spatial features rather than a 1×1 summary; 128 px costs
    twice the time per image, and 96 px already classifies the held-out crops all but perfectly.
    300 crops per class for 8 epochs (1,800 crops, 224 steps of 64) train in about 3 min on 2
    CPU cores and reach 100% held-out accuracy from epoch 4 on; 50 held-out crops per class
    (drawn from another seed) measure it.
    """

    width_mult: float = 1.0
    crop_size: int = 96
    num_per_class: int = 300
    num_val_per_class: int = 50
    epochs: int = 8
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        problems = [
            f"{name}={value!r}"
            for name, value, ok in (
                ("width_mult", self.width_mult, self.width_mult > 0),
                ("crop_size", self.crop_size, self.crop_size >= 32),
                ("num_per_class", self.num_per_class, self.num_per_class >= 1),
                ("num_val_per_class", self.num_val_per_class, self.num_val_per_class >= 1),
                ("epochs", self.epochs, self.epochs >= 1),
                ("batch_size", self.batch_size, self.batch_size >= 2),
                ("lr", self.lr, self.lr > 0),
                ("weight_decay", self.weight_decay, self.weight_decay >= 0),
                ("seed", self.seed, self.seed >= 0),
            )
            if not ok
        ]
        if problems:
            raise ValueError(
                "invalid pretraining settings (need width_mult > 0, crop_size >= 32, counts, epochs >= 1, "
                f"batch_size >= 2, lr > 0, weight_decay >= 0, seed >= 0): {', '.join(problems)}"
            )


DEFAULT_SETTINGS = PretrainSettings()


@dataclass(frozen=True)
class PretrainResult:
    """Where the weights went, how well they classify, and how they were trained.

    ``train_accuracy`` is the running accuracy over the last epoch (augmented crops, BN in train
    mode); ``val_accuracy`` that of the final network (BN in eval mode) on the held-out crops.
    """

    path: Path
    train_accuracy: float
    val_accuracy: float
    seconds: float
    settings: PretrainSettings

    def to_dict(self) -> dict[str, object]:
        return {
            "weights": self.path.name,
            "train_accuracy": self.train_accuracy,
            "val_accuracy": self.val_accuracy,
            "seconds": round(self.seconds, 1),
            "settings": asdict(self.settings),
        }


def pretrain_base_classifier(
    base_name: str = "mobilenetv2",
    *,
    out: str | Path,
    width_mult: float = DEFAULT_SETTINGS.width_mult,
    crop_size: int = DEFAULT_SETTINGS.crop_size,
    num_per_class: int = DEFAULT_SETTINGS.num_per_class,
    num_val_per_class: int = DEFAULT_SETTINGS.num_val_per_class,
    epochs: int = DEFAULT_SETTINGS.epochs,
    batch_size: int = DEFAULT_SETTINGS.batch_size,
    lr: float = DEFAULT_SETTINGS.lr,
    weight_decay: float = DEFAULT_SETTINGS.weight_decay,
    seed: int = DEFAULT_SETTINGS.seed,
    progress: bool = True,
    resume: bool = False,
    resume_with: str = "resume=True",
) -> PretrainResult:
    """Train the base network (its base genotype) to classify demo object crops; save its weights.

    The network is ``plugins.bases().get(base_name)`` built with ``num_classes=len(DEMO_CLASSES)``.
    Training crops come from seed ``2 * seed``, validation crops from ``2 * seed + 1``, so they
    never coincide. The state dict (torchvision's key format, classifier included) is written
    atomically to ``out``. The same settings give identical weights on the same machine and
    thread count; the caller's random state is left as it was. Raises ``ValueError`` for
    invalid settings and :class:`~netadapt.errors.PluginError` for an unknown base.

    The run checkpoints to ``<out without suffix>.run/last.pth`` each epoch and when SIGINT or
    SIGTERM arrive (:class:`~netadapt.errors.Interrupted`); with ``resume`` a pretraining
    continues from that checkpoint (a checkpoint of other settings is refused,
    :class:`~netadapt.errors.ConfigError`) and ends with the same weights an uninterrupted one
    writes; an interruption's line says to continue with ``resume_with``. The folder is removed
    once the weights are written.
    """
    settings = PretrainSettings(
        width_mult=width_mult,
        crop_size=crop_size,
        num_per_class=num_per_class,
        num_val_per_class=num_val_per_class,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
    )
    base = plugins.bases().get(base_name)
    started = time.perf_counter()
    train_images, train_labels = _crops(settings.num_per_class, size=settings.crop_size, seed=2 * settings.seed)
    val_images, val_labels = _crops(settings.num_val_per_class, size=settings.crop_size, seed=2 * settings.seed + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        network = base.build(base.base_genotype(width_mult=settings.width_mult), num_classes=len(DEMO_CLASSES))
        train_accuracy = _train(
            network, train_images, train_labels, val_images, val_labels, settings, run_dir=run_directory(out), resume=resume,
            resume_with=resume_with, progress=progress,
        )
        _reestimate_batchnorm(network, train_images, batch_size=settings.batch_size, seed=settings.seed)
    val_accuracy = _accuracy(network, val_images, val_labels, batch_size=settings.batch_size)
    save_torch_atomic({key: value.detach().cpu() for key, value in network.state_dict().items()}, out, listed=False)
    shutil.rmtree(run_directory(out), ignore_errors=True)
    return PretrainResult(Path(out), train_accuracy, val_accuracy, time.perf_counter() - started, settings)


def run_directory(out: str | Path) -> Path:
    """Where the pretraining that writes ``out`` keeps its checkpoint and log while it runs."""
    return Path(out).with_suffix(".run")


def pretrained_demo_base(
    base_name: str = "mobilenetv2",
    *,
    cache_dir: str | Path | None = None,
    announce: Callable[[str], None] | None = print,
    settings: PretrainSettings = DEFAULT_SETTINGS,
    progress: bool = True,
) -> Path:
    """The cached classifier-pretrained weights of ``base_name``, pretraining once if missing.

    The file is ``<cache root>/pretrained/<base>-demo-crops-v<G>-recipe-v<R>-seed<S>.pth``, where
    G is :data:`netadapt.data.demo.GENERATOR_VERSION`, R is :data:`RECIPE_VERSION` and S the seed;
    settings other than :data:`DEFAULT_SETTINGS` add a hash of themselves to the name, so they
    never stand in for the demo's. The cache root is that of the demo dataset
    (:func:`netadapt.cache.cache_root`). Beside the weights, ``<same name>.json`` records the
    settings and accuracies. ``announce`` (if given) receives one message saying what is
    happening and why: pretraining now, or the cached weights used.
    """
    path = pretrained_demo_path(base_name, cache_dir=cache_dir, settings=settings)
    if _cached(path, base_name, announce):
        return path
    with _only_pretraining(path.parent, announce):  # two commands started together pretrain once, not into each other's checkpoint
        if _cached(path, base_name, announce):  # another process pretrained it while this one waited
            return path
        if announce is not None:
            estimate = f"about {DEFAULT_MINUTES} min, " if settings == DEFAULT_SETTINGS else ""
            announce(
                f"No base weights given: pretraining {base_name} as a classifier on demo object crops "
                f"({estimate}once; cached in {path}). This stands in for ImageNet pre-training, so that "
                "the demo adapts a classification-pretrained network, as the paper does."
            )
        if (run_directory(path) / "last.pth").is_file() and announce is not None:
            announce(f"Continuing the demo base's pretraining that stopped ({run_directory(path) / 'last.pth'}).")
        result = pretrain_base_classifier(
            base_name, out=path, progress=progress, resume=True, resume_with="the next command that needs the demo base", **asdict(settings),
        )
        record = {"base": base_name, "generator_version": GENERATOR_VERSION, "recipe_version": RECIPE_VERSION}
        write_json_atomic(path.with_suffix(".json"), {**record, **result.to_dict()}, listed=False)
        return path


def _cached(path: Path, base_name: str, announce: Callable[[str], None] | None) -> bool:
    """Whether ``path`` holds the demo base, said to ``announce``; a torn or damaged file is removed (and pretrained
    again, as cost tables are rebuilt)."""
    if path.is_file() and not _readable_weights(path):
        warnings.warn(f"{path}: the cached demo base is damaged (not a readable weights file); pretraining it again", NetadaptWarning, stacklevel=3)
        path.unlink(missing_ok=True)
    if path.is_file() and announce is not None:
        announce(f"No base weights given: using {base_name} pretrained as a classifier on demo object crops (cached: {path}).")
    return path.is_file()


@contextlib.contextmanager
def _only_pretraining(folder: Path, announce: Callable[[str], None] | None) -> Iterator[None]:
    """Hold the cache's ``pretrained`` folder (``fcntl.flock`` on it: the kernel lets go when the process dies), waiting
    for another process that holds it (it is pretraining: the weights are then cached when this one goes on)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if announce is not None:
                announce(f"Waiting for another process that is pretraining the demo base ({folder}).")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def _readable_weights(path: Path) -> bool:
    """Whether ``path`` loads as a state dict of tensors (what :func:`pretrain_base_classifier` writes)."""
    try:
        state = load_torch_file(path, what="cached demo base")
    except WeightsError:
        return False
    return isinstance(state, dict) and bool(state) and all(isinstance(value, torch.Tensor) for value in state.values())


def pretrained_demo_path(base_name: str = "mobilenetv2", *, cache_dir: str | Path | None = None, settings: PretrainSettings = DEFAULT_SETTINGS) -> Path:
    """Where :func:`pretrained_demo_base` keeps (or will keep) the weights."""
    return cache_root(cache_dir) / "pretrained" / f"{_cache_name(base_name, settings)}.pth"


def _cache_name(base_name: str, settings: PretrainSettings) -> str:
    name = f"{base_name}-demo-crops-v{GENERATOR_VERSION}-recipe-v{RECIPE_VERSION}-seed{settings.seed}"
    if settings != PretrainSettings(seed=settings.seed):
        name += "-" + hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode()).hexdigest()[:10]
    return name


def _crops(num_per_class: int, *, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Demo object crops as uint8 (N, 3, size, size) and labels (N,)."""
    images, labels = render_object_crops(num_per_class=num_per_class, size=size, seed=seed)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def _augmentation(size: int) -> v2.Transform:
    # Objects are drawn at any rotation, so flips keep the class; a random resized crop varies
    # the object's scale and position as detection images do. Mild, because 8 epochs are few.
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.6, 1.0), ratio=(0.8, 1.25), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
        ]
    )


def _normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 images → float, normalised as the detector normalises its inputs."""
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


class ClassifierStep:
    """One AdamW step of the classifier on a batch of crops, with the running accuracy of its epoch (the step
    :class:`~netadapt.engine.loop.Loop` runs). Its state is what the pretraining's ``last.pth`` holds beside the
    loop's (:class:`~netadapt.engine.run.Run`): the network, the optimiser, the schedule, the epoch's crop order and
    running counts, and the random state the augmentation draws from, so that a resumed pretraining ends bit for bit
    where an uninterrupted one does."""

    def __init__(self, network: nn.Module, settings: PretrainSettings, *, steps_per_epoch: int) -> None:
        self.network = network
        # AdamW with a one-cycle schedule (warm-up, then cosine decay) trains a MobileNetV2 from
        # scratch to high accuracy in a few hundred steps; SGD needs a longer warm-up and a
        # per-problem learning rate to be as fast, and this budget has no room for either.
        self.optimizer = torch.optim.AdamW(network.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch, pct_start=0.2
        )
        self.loss_function = nn.CrossEntropyLoss()
        self.counts = {"correct": 0, "seen": 0}  # the running accuracy of the epoch
        self.order: torch.Tensor | None = None  # the epoch's order of the crops

    def __call__(self, batch: tuple[torch.Tensor, torch.Tensor], at: Position) -> dict[str, float]:
        inputs, targets = batch
        if at.batch == 0:
            self.counts.update(correct=0, seen=0)
        self.network.train()
        logits = self.network(inputs)
        loss = self.loss_function(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        self.counts["correct"] += int((logits.argmax(1) == targets).sum())
        self.counts["seen"] += len(targets)
        return {"loss": loss.item(), "acc": self.counts["correct"] / self.counts["seen"]}

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.network.state_dict(), "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "counts": dict(self.counts), "order": self.order, "rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.counts = dict(state["counts"])
        self.order = state["order"]
        torch.set_rng_state(state["rng"])


def _train(
    network: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    val_images: torch.Tensor,
    val_labels: torch.Tensor,
    settings: PretrainSettings,
    *,
    run_dir: Path,
    resume: bool,
    resume_with: str,
    progress: bool,
) -> float:
    """Train in place, checkpointing to ``run_dir/last.pth`` each epoch and on SIGINT/SIGTERM (continued from it with
    ``resume``); returns the running accuracy of the last epoch."""
    augment = _augmentation(settings.crop_size)
    batch_size = min(settings.batch_size, len(labels))
    steps_per_epoch = len(labels) // batch_size  # full batches only: BN statistics stay stable
    run = Run(run_dir, format=PRETRAIN_FORMAT, config=settings, section="pretrain", resume=resume, context=distributed.Context())
    step = ClassifierStep(network, settings, steps_per_epoch=steps_per_epoch)
    run.restore(step)

    def batches(epoch: int, first: int):
        if first == 0:  # a new epoch's order; a run resumed within an epoch goes on with the one it checkpointed
            step.order = torch.randperm(len(labels))
        for index in range(first, steps_per_epoch):
            batch = step.order[index * batch_size : (index + 1) * batch_size]
            yield _normalise(torch.stack([augment(image) for image in images[batch]])), labels[batch]

    def end_of_epoch(epoch: int) -> dict[str, float] | None:
        if not progress:
            return None
        # Shown only: the held-out crops never steer training, nor do the re-estimated statistics. A few
        # batches give statistics good enough for the display at a fraction of a full pass's time.
        _reestimate_batchnorm(network, images, batch_size=settings.batch_size, seed=settings.seed, max_batches=DISPLAY_BATCHES)
        return {"val_acc": _accuracy(network, val_images, val_labels, batch_size=settings.batch_size)}

    loop = run.loop(
        step, log=run.log(), log_every=steps_per_epoch, checkpoint_every=steps_per_epoch,
        total=settings.epochs * steps_per_epoch, iterations_per_epoch=steps_per_epoch, batches=batches, description="pretrain",
        progress=progress, end_of_epoch=end_of_epoch, resume_with=resume_with,
        shown=lambda record, at: {"epoch": f"{at.epoch + 1}/{settings.epochs}", "loss": record["loss"], "acc": record["acc"]},
    )
    loop.run(step, start=run.start)
    return step.counts["correct"] / max(step.counts["seen"], 1)


def _reestimate_batchnorm(
    network: nn.Module, images: torch.Tensor, *, batch_size: int, seed: int, max_batches: int | None = None
) -> None:
    """Set every BatchNorm's running statistics to their average over ``images`` (unaugmented; at
    most ``max_batches`` batches of them) under the network's current weights.

    Training keeps them as an exponential average over the steps, each step weighted by BN's
    ``momentum``; with a small momentum (torchvision's MobileNetV3: 0.01) a few hundred steps leave
    them far from the final network's statistics. Measured on MobileNetV3 after the default 224
    steps: the held-out crops were classified at chance (16.7%) in eval mode, 99.7% with batch
    statistics, and 99.7% in eval mode after this re-estimation ("BN recalibration", as
    once-for-all networks do for each sub-network). ``momentum=None`` makes BN keep the exact
    cumulative average. The batches are shuffled (the crops are stored class by class, and a
    one-class batch misses the variance between classes) by a generator of their own, so the
    training's random stream is untouched; full batches only, like training
    (:func:`netadapt.engine.batchnorm.reestimate_batchnorm`).
    """
    batch_size = min(batch_size, len(images))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    batches = len(images) // batch_size if max_batches is None else min(max_batches, len(images) // batch_size)
    reestimate_batchnorm(network, (_normalise(images[order[start : start + batch_size]]) for start in range(0, batches * batch_size, batch_size)))


@torch.no_grad()
def _accuracy(network: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int) -> float:
    network.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = network(_normalise(images[start : start + batch_size]))
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    return correct / len(labels)
