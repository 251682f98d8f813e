"""How long the configured job takes, before it is run: a few steps of every phase timed, the rest projected.

:func:`estimate_job` builds what ``netadapt search`` and ``netadapt train`` build (the super network
with the configured strategy, the base network's detector), in the configured precision, and times
on the present device, with synthetic images and boxes (the data loader is not timed:
``benchmarks/input_pipeline.py`` measures whether it keeps up):

- a search **weight step** and an **α step** as :mod:`netadapt.search.loop` takes them (the α step's
  cost term is left out: a sum over a few hundred table entries, nothing next to the network);
- a **training step** of the base network's detector (the derived architecture is not known before
  the search; the paper's searched network costs about the same, ~1B MAdds vs 0.8B);
- an **evaluation** batch (inference and post-processing, not COCOeval).

Each phase runs one warm-up step, then ``steps`` timed ones (the median counts). The schedule is
then counted as the loops count it — weight steps per epoch ``ceil(ceil(images_w · repeat / W) / B)``,
one α step per ``weight_steps_per_alpha_step`` of them from ``alpha_start_epoch`` on, training steps
``epochs · ceil(ceil(images / W) / B)``, one evaluation pass at the end — and projected: wall-clock
hours with ``world_size`` devices (each as fast as this one; DDP's communication is not counted)
and device-hours (× W). On CPU a step at the configured batch can take minutes, so CPU measures at a
smaller batch (``measure_batch``, default 2), then again at the configured batch if that fits in
90 s, and otherwise projects time and the memory above the model at rest linearly to the
configured batch (CPU time grows about linearly with the batch; small batches use the cores less
well, so this errs long); every figure says whether it was measured or projected.

Peak memory per phase: CUDA ``torch.cuda.max_memory_allocated`` (reset before the phase); CPU the
process's resident-set high-water mark (``/proc/self/status`` VmHWM, reset through
``/proc/self/clear_refs`` before the phase; elsewhere ``resource.getrusage``'s ``ru_maxrss``, which
cannot be reset and so only grows from phase to phase).
"""

from __future__ import annotations

import ctypes
import math
import re
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from netadapt import plugins
from netadapt.detectors.model import build_detector_on, options_from_config
from netadapt.engine.config import SearchConfig, TrainConfig
from netadapt.engine.precision import Precision
from netadapt.engine.throughput import prepare_device, to_memory_format
from netadapt.engine.loop import make_optimizer

CPU_MEASURE_BATCH = 2  # the smallest batch BatchNorm trains on
CPU_FULL_BATCH_BUDGET_S = 90.0  # on CPU, a phase is measured again at the configured batch when that takes at most this long


@dataclass
class Phase:
    name: str
    batch_size: int  # the configured batch (per device)
    measured_batch: int  # the batch the steps ran at
    seconds_per_step: float  # at the configured batch (projected when measured_batch differs)
    measured_seconds: list[float]  # the timed steps, at measured_batch
    steps: int  # in the whole schedule, per device
    hours: float  # wall-clock
    peak_memory_bytes: int | None
    memory_method: str
    projected: list[str] = field(default_factory=list)  # which of the figures above were projected


@dataclass
class Estimate:
    device: str
    world_size: int
    train_images: int
    val_images: int
    num_classes: int
    strategy: str
    amp: dict[str, str]
    phases: list[Phase]

    @property
    def search_hours(self) -> float:
        return sum(phase.hours for phase in self.phases if phase.name.startswith("search"))

    @property
    def train_hours(self) -> float:
        return sum(phase.hours for phase in self.phases if not phase.name.startswith("search"))

    def to_dict(self) -> dict[str, Any]:
        total = self.search_hours + self.train_hours
        return {
            "device": self.device, "world_size": self.world_size, "train_images": self.train_images, "val_images": self.val_images,
            "num_classes": self.num_classes, "strategy": self.strategy, "amp": self.amp,
            "search_hours": self.search_hours, "train_hours": self.train_hours, "total_hours": total,
            "search_device_hours": self.search_hours * self.world_size, "train_device_hours": self.train_hours * self.world_size,
            "total_device_days": total * self.world_size / 24,
            "peak_memory_bytes": {phase.name: phase.peak_memory_bytes for phase in self.phases},
            "phases": [asdict(phase) for phase in self.phases],
            "measured": "seconds of the timed steps at measured_batch, and peak memory at measured_batch, on this device",
            "projected": "steps of the schedule, hours, and (where measured_batch < batch_size) time and memory at the configured batch",
        }


def estimate_job(
    search: SearchConfig,
    train: TrainConfig,
    *,
    base: str = "mobilenetv2",
    detector: str = "ssdlite",
    train_images: int,
    val_images: int,
    num_classes: int,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    steps: int = 2,
    measure_batch: int | None = None,
) -> Estimate:
    """Time every phase of the job on ``device`` and project the whole schedule (module docstring)."""
    device = torch.device(device)
    prepare_device(device)
    memory = _PeakMemory(device)
    from netadapt.search.loop import split_halves, strategy_for

    strategy = strategy_for(search)
    alpha_every = getattr(strategy, "weight_steps_per_alpha_step", 1)
    weight_half, _ = split_halves(train_images, alpha_fraction=search.alpha_fraction, seed=search.split_seed)
    weight_per_epoch = _batches(len(weight_half) * search.repeat, search.batch_size, world_size)
    alpha_epochs = max(0, search.epochs - search.alpha_start_epoch + 1)
    alpha_steps = alpha_epochs * math.ceil(weight_per_epoch / alpha_every)
    schedule = {
        "search weight step": search.epochs * weight_per_epoch,
        "search α step": alpha_steps,
        "train step": train.epochs * _batches(train_images, train.batch_size, world_size),
        "evaluation batch": _batches(val_images, train.eval_batch_size, world_size, drop_single=False),
    }
    phases = []
    for name, (config, make_steps) in {
        "search weight step": (search, lambda b: _search_steps(search, strategy, base, detector, num_classes, device, b)["weight"]),
        "search α step": (search, lambda b: _search_steps(search, strategy, base, detector, num_classes, device, b)["alpha"]),
        "train step": (train, lambda b: _train_step(train, base, detector, num_classes, device, b)),
        "evaluation batch": (train, lambda b: _eval_step(train, base, detector, num_classes, device, b)),
    }.items():
        batch = train.eval_batch_size if name == "evaluation batch" else config.batch_size
        if schedule[name] == 0:
            continue
        measured_batch = min(batch, measure_batch or (batch if device.type == "cuda" else CPU_MEASURE_BATCH))
        seconds, peak, rest = _measure(make_steps(measured_batch), memory, device, steps)
        if measure_batch is None and measured_batch < batch and (steps + 1) * statistics.median(seconds) * batch / measured_batch <= CPU_FULL_BATCH_BUDGET_S:
            measured_batch = batch  # cheap enough to measure as configured
            seconds, peak, rest = _measure(make_steps(measured_batch), memory, device, steps)
        scale = batch / measured_batch
        per_step = statistics.median(seconds) * scale
        projected = ["steps", "hours"]
        if scale != 1:
            projected += ["seconds_per_step", "peak_memory_bytes"]
            if peak is not None and rest is not None:
                peak = int(rest + (peak - rest) * scale)
        phases.append(Phase(name, batch, measured_batch, per_step, seconds, schedule[name], per_step * schedule[name] / 3600, peak, memory.method, projected))
    amp = {"search": Precision(search.amp, device).mode, "train": Precision(train.amp, device).mode}
    return Estimate(str(device), world_size, train_images, val_images, num_classes, search.strategy, amp, phases)


def _measure(step, memory: _PeakMemory, device: torch.device, steps: int) -> tuple[list[float], int | None, int | None]:
    """Seconds of ``steps`` timed calls after one warm-up (allocation, cuDNN autotuning); peak and resting memory."""
    memory.reset()
    rest = memory.current()  # the model, optimiser and batch at rest
    step()
    memory.reset()
    seconds = []
    for _ in range(steps):
        _synchronise(device)
        started = time.perf_counter()
        step()
        _synchronise(device)
        seconds.append(time.perf_counter() - started)
    return seconds, memory.peak(), rest


def _batches(images: int, batch_size: int, world_size: int, *, drop_single: bool = True) -> int:
    """Batches per epoch per device, as :class:`~netadapt.engine.sampling.ResumableBatchSampler` counts them."""
    per_rank = math.ceil(images / world_size)
    batches = math.ceil(per_rank / batch_size)
    return batches - 1 if drop_single and per_rank % batch_size == 1 else batches


def _synthetic_batch(batch_size: int, input_size: int, num_classes: int, device: torch.device):
    generator = torch.Generator().manual_seed(0)
    images, targets = [], []
    for _ in range(batch_size):
        images.append(torch.rand(3, input_size, input_size, generator=generator).to(device))
        count = int(torch.randint(1, 8, (1,), generator=generator))
        corner = torch.rand(count, 2, generator=generator) * input_size * 0.6
        extent = (0.1 + 0.3 * torch.rand(count, 2, generator=generator)) * input_size
        boxes = torch.cat([corner, (corner + extent).clamp(max=input_size)], dim=1)
        targets.append({"boxes": boxes.to(device), "labels": torch.randint(1, num_classes, (count,), generator=generator).to(device)})
    return images, targets


def _search_steps(config: SearchConfig, strategy, base: str, detector_name: str, num_classes: int, device: torch.device, batch_size: int):
    """The search loop's weight step and α step on a randomly initialised super network (timing only)."""
    from netadapt.search.space import default_space_name, load_search_space
    from netadapt.search.supernet import ArchitectureParameters, build_supernet

    torch.manual_seed(config.seed)
    space = load_search_space(config.space or default_space_name(base))
    base_plugin = plugins.bases().get(base)
    genotype = base_plugin.base_genotype()
    supernet = build_supernet(base, space, base_plugin.build(genotype), genotype)
    model = build_detector_on(supernet, detector_name, num_classes=num_classes, input_size=config.input_size, options=options_from_config(detector_name, config))
    arch = ArchitectureParameters(supernet.layers, generator=torch.Generator().manual_seed(config.seed))
    model.to(device).train()
    arch.to(device)
    precision = Precision(config.amp, device)
    precision.prepare(to_memory_format(model, channels_last=config.channels_last))
    optimizer = make_optimizer(model.parameters(), config)
    alpha_optimizer = torch.optim.Adam(arch.parameters(), lr=config.alpha_lr)
    generator = torch.Generator(device=device).manual_seed(config.seed) if device.type == "cuda" else torch.Generator().manual_seed(config.seed)
    images, targets = _synthetic_batch(batch_size, config.input_size, num_classes, device)
    alphas = list(arch.parameters())

    def weight_step() -> None:
        supernet.set_op_weights(strategy.weight_step_weights(arch, temperature=config.alpha_temperature, generator=generator))
        with precision.autocast():
            loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        precision.backward(loss)
        precision.step(optimizer)

    def alpha_step() -> None:
        supernet.set_op_weights(strategy.alpha_step_weights(arch, temperature=config.alpha_temperature, generator=generator))
        with precision.autocast():
            loss = sum(model(images, targets).values())
        for alpha, grad in zip(alphas, precision.grad(loss, alphas)):
            alpha.grad = grad
        alpha_optimizer.step()

    return {"weight": weight_step, "alpha": alpha_step}


def _base_detector(config: TrainConfig, base: str, detector_name: str, num_classes: int, device: torch.device):
    torch.manual_seed(config.seed)
    base_plugin = plugins.bases().get(base)
    model = build_detector_on(
        base_plugin.build(base_plugin.base_genotype()), detector_name, num_classes=num_classes, input_size=config.input_size,
        options=options_from_config(detector_name, config),
    ).to(device)
    return to_memory_format(model, channels_last=config.channels_last)


def _train_step(config: TrainConfig, base: str, detector_name: str, num_classes: int, device: torch.device, batch_size: int):
    model = _base_detector(config, base, detector_name, num_classes, device).train()
    precision = Precision(config.amp, device)
    precision.prepare(model)
    optimizer = make_optimizer(model.parameters(), config)
    images, targets = _synthetic_batch(batch_size, config.input_size, num_classes, device)

    def step() -> None:
        with precision.autocast():
            loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        precision.backward(loss)
        precision.step(optimizer)

    return step


def _eval_step(config: TrainConfig, base: str, detector_name: str, num_classes: int, device: torch.device, batch_size: int):
    model = _base_detector(config, base, detector_name, num_classes, device).eval()
    precision = Precision(config.eval_amp or config.amp, device)
    precision.prepare(model)
    images, _ = _synthetic_batch(batch_size, config.input_size, num_classes, device)

    def step() -> None:
        with torch.inference_mode(), precision.autocast():
            model(images)

    return step


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _PeakMemory:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            self.method = "torch.cuda.max_memory_allocated"
        elif _vm("VmHWM") is not None and Path("/proc/self/clear_refs").exists():
            self.method = "resident set high-water mark (VmHWM, reset per phase)"
        else:
            self.method = "resource.getrusage ru_maxrss (not reset between phases)"

    def current(self) -> int | None:
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device)
        return _vm("VmRSS")

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.method.startswith("resident"):
            try:
                ctypes.CDLL("libc.so.6").malloc_trim(0)  # give back the heap earlier phases freed, or it stays resident
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.method = "resource.getrusage ru_maxrss (not reset between phases)"

    def peak(self) -> int | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        if self.method.startswith("resident"):
            return _vm("VmHWM")
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _vm(name: str) -> int | None:
    try:
        match = re.search(rf"^{name}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def format_table(estimate: Estimate) -> list[str]:
    """The paper's Table 2 form (search cost, training cost, total in device-days), then each phase."""
    w = estimate.world_size
    days = lambda hours: hours * w / 24  # noqa: E731
    lines = [
        f"Projected on {estimate.device} × {w} ({estimate.train_images} training images, {estimate.val_images} val, "
        f"strategy {estimate.strategy}, amp search {estimate.amp['search']} / train {estimate.amp['train']})",
        "",
        f"{'':<26}{'search':>12}{'training':>12}{'total':>12}",
        f"{'device-days (GPU-days)':<26}{days(estimate.search_hours):>12.2f}{days(estimate.train_hours):>12.2f}"
        f"{days(estimate.search_hours + estimate.train_hours):>12.2f}",
        f"{'wall-clock hours':<26}{estimate.search_hours:>12.1f}{estimate.train_hours:>12.1f}{estimate.search_hours + estimate.train_hours:>12.1f}",
        "",
        f"{'phase':<20}{'batch':>6}{'measured at':>12}{'s/step':>9}{'steps':>10}{'hours':>9}{'peak MiB':>10}",
    ]
    for phase in estimate.phases:
        peak = "n/a" if phase.peak_memory_bytes is None else f"{phase.peak_memory_bytes / 2**20:.0f}"
        lines.append(
            f"{phase.name:<20}{phase.batch_size:>6}{phase.measured_batch:>12}{phase.seconds_per_step:>9.3f}{phase.steps:>10}"
            f"{phase.hours:>9.2f}{peak:>10}"
        )
    lines += [
        "",
        "measured: the timed steps (and peak memory) at the 'measured at' batch on this device, synthetic images;",
        "projected: steps of the schedule, hours, device-days (× world size, linear scaling assumed), and time and memory",
        f"at the configured batch where it differs from the measured one (linear in the batch). Memory: {estimate.phases[0].memory_method if estimate.phases else 'n/a'}.",
    ]
    return lines


COCO_VAL_IMAGES, COCO_CLASSES = 5000, 81  # val2017; 80 categories and the background


def dataset_sizes(dataset: str | None, data: Path | None, *, images: int | None) -> tuple[int, int, int]:
    """(training images, val images, classes with the background): from the annotations of the dataset
    (the embedded demo without one), or ``images`` with COCO 2017's val size and classes."""
    if images is not None:
        return images, COCO_VAL_IMAGES, COCO_CLASSES
    from netadapt.data.coco import read_json
    from netadapt.jobs import resolve_splits

    splits = resolve_splits(dataset, data)
    train, val = (read_json(splits[name].annotations) for name in ("train", "val"))
    return len(train.get("images", [])), len(val.get("images", [])), len(train.get("categories", [])) + 1
