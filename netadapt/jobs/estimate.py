"""How long the configured job takes and how much memory it needs, before it is run: every phase measured at
small batches within a memory budget, the rest projected.

:func:`estimate_job` builds what ``netadapt search`` and ``netadapt train`` build (the super network with the
configured strategy, the base network's detector), in the configured precision, and measures on the present
device, with synthetic images and boxes (the data loader is not timed: ``benchmarks/input_pipeline.py``
measures whether it keeps up), the phases of :mod:`netadapt.jobs.preflight`:

- a search **weight step** and an **α step**: the search's own :class:`~netadapt.search.step.SearchStep` (the α step
  after two weight steps, whose gradients and optimiser state stay alive under it as in the search: its peak is the
  iteration's);
- a **training step** of the base network's detector, :class:`~netadapt.engine.train.DetectorTrainStep` (the derived
  architecture is not known before the search; the paper's searched network costs about the same, ~1B MAdds vs 0.8B);
- an **evaluation** batch (inference and post-processing, not COCOeval).

**Memory.** Nothing is allocated past the budget: ``--max-memory``, else half of ``MemAvailable`` on CPU (90 % of the
free memory on CUDA; :func:`~netadapt.engine.memory.memory_budget`). Each (phase, batch) runs in a fresh process
capped at the budget (:func:`~netadapt.jobs.preflight.measure_step`), whose peak is the process's own: the resident set's
high-water mark on CPU (libraries, model, optimiser state, activations: what ``/usr/bin/time`` reports of a run), the
caching allocator's reserved peak on CUDA. A phase is measured at batch 2 (``--measure-batch``) and twice that, the
peak's line in the batch fitted through both (:class:`~netadapt.engine.memory.MemoryLine`) and projected to the
configured batch; then measured again at the configured batch if the line puts it within the budget and (on CPU)
its steps take at most 90 s. A batch that does not fit the budget is not measured: the line, or the error that
says so, stands instead. The lines are cached for the jobs' own check (:func:`~netadapt.jobs.preflight.preflight_memory`).

**Time.** Each measurement is one warm-up step and ``steps`` timed ones (the median counts), projected to the
configured batch along the line through the two small batches' medians where it was not measured there (CPU time
grows about linearly with the batch; small batches use the cores less well). The schedule is then counted as the
loops count it — weight steps per epoch ``ceil(ceil(images_w · repeat / W) / B)``, one α step per
``weight_steps_per_alpha_step`` of them from ``alpha_start_epoch`` on, training steps ``epochs · ceil(ceil(images /
W) / B)``, one evaluation pass at the end — and projected: wall-clock hours with ``world_size`` devices (each as
fast as this one; DDP's communication is not counted) and device-hours (× W). Every figure says whether it was
measured or projected.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from netadapt.config import SearchConfig, TrainConfig, load_run_config
from netadapt.data.coco import COCO_CLASSES, COCO_VAL_IMAGES
from netadapt.engine.memory import MIN_BATCH, Budget, format_bytes, memory_budget
from netadapt.engine.precision import Precision
from netadapt.errors import MemoryBudgetError
from netadapt.jobs.preflight import Measurement, StepSpec, fit_line, measure_step, save_line, seconds_at

CPU_FULL_BATCH_BUDGET_S = 90.0  # on CPU, a phase is measured again at the configured batch when that takes at most this long


@dataclass
class Phase:
    name: str
    batch_size: int  # the configured batch (per device)
    measured_batch: int  # the largest batch the steps ran at
    seconds_per_step: float  # at the configured batch (projected when measured_batch differs)
    measured_seconds: list[float]  # the timed steps, at measured_batch
    steps: int  # in the whole schedule, per device
    hours: float  # wall-clock
    peak_memory_bytes: int | None  # at the configured batch: measured there, else projected along the line
    memory_method: str
    projected: list[str] = field(default_factory=list)  # which of the figures above were projected
    measured_peaks: dict[int, int] = field(default_factory=dict)  # batch → peak bytes measured
    memory_line: dict[str, float] = field(default_factory=dict)  # fixed + per_sample · batch, through the two smallest batches
    projected_peak_bytes: int | None = None  # the line at the configured batch (what a job's check compares)


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
    memory_budget: Budget | None = None

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
            "memory_budget_bytes": self.memory_budget.bytes if self.memory_budget else None,
            "memory_budget": self.memory_budget.how if self.memory_budget else None,
            "peak_memory_bytes": {phase.name: phase.peak_memory_bytes for phase in self.phases},
            "phases": [asdict(phase) for phase in self.phases],
            "measured": "seconds of the timed steps and peak memory at measured_peaks' batches, on this device, each in a fresh process",
            "projected": "steps of the schedule, hours, and (where measured_batch < batch_size) time and peak memory at the configured "
                         "batch, along the line through the small batches",
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
    max_memory: str | int | None = None,
    cache_dir: Path | None = None,
) -> Estimate:
    """Measure every phase of the job on ``device`` within the memory budget and project the whole schedule (module docstring)."""
    device = torch.device(device)
    budget = memory_budget(device, max_memory)
    from netadapt.search.step import alpha_every, split_halves, strategy_for

    every = alpha_every(strategy_for(search))
    weight_half, _ = split_halves(train_images, alpha_fraction=search.alpha_fraction, seed=search.split_seed)
    weight_per_epoch = _batches(len(weight_half) * search.repeat, search.batch_size, world_size)
    alpha_epochs = max(0, search.epochs - search.alpha_start_epoch + 1)
    alpha_steps = alpha_epochs * math.ceil(weight_per_epoch / every)
    schedule = {
        "search weight step": search.epochs * weight_per_epoch,
        "search α step": alpha_steps,
        "train step": train.epochs * _batches(train_images, train.batch_size, world_size),
        "evaluation batch": _batches(val_images, train.eval_batch_size, world_size, drop_single=False),
    }
    phases = []
    for name, count in schedule.items():
        if count == 0:
            continue
        spec = StepSpec(name, search if name.startswith("search") else train, base, detector, num_classes)
        phases.append(_phase(spec, count, device=device, budget=budget, steps=steps, first=measure_batch or MIN_BATCH, cache_dir=cache_dir))
    amp = {"search": Precision(search.amp, device).mode, "train": Precision(train.amp, device).mode}
    return Estimate(str(device), world_size, train_images, val_images, num_classes, search.strategy, amp, phases, budget)


def _phase(spec: StepSpec, count: int, *, device: torch.device, budget: Budget, steps: int, first: int, cache_dir: Path | None) -> Phase:
    """One phase measured at ``first`` and twice that (each within ``budget``), its line fitted and kept, then measured at the
    configured batch where the line and the time allow; the figures at the configured batch (module docstring)."""
    batch = spec.batch_size

    def measure(at: int) -> Measurement | None:
        try:
            return measure_step(spec, at, device=device, cap=budget.bytes, steps=steps)
        except MemoryBudgetError:
            if at == min(first, batch):
                raise
            return None  # a larger batch that does not fit: the smaller ones' line stands

    measurements = [measure(min(first, batch))]
    if 2 * first <= batch and (second := measure(2 * first)) is not None:
        measurements.append(second)
    line = fit_line(measurements)
    save_line(spec, device, line, cache_dir=cache_dir)
    largest = measurements[-1].batch
    per_step = seconds_at(measurements, batch)
    cheap = device.type == "cuda" or (steps + 1) * per_step <= CPU_FULL_BATCH_BUDGET_S
    if largest < batch and line.at(batch) <= budget.bytes and cheap and (full := measure(batch)) is not None:
        measurements.append(full)
        largest, per_step = batch, statistics.median(full.seconds)
    at_batch = measurements[-1]
    projected = ["steps", "hours"] + (["seconds_per_step", "peak_memory_bytes"] if largest != batch else [])
    return Phase(
        spec.phase, batch, largest, per_step, at_batch.seconds, count, per_step * count / 3600,
        at_batch.peak if largest == batch else line.at(batch), _memory_method(device), projected,
        {m.batch: m.peak for m in measurements}, {"fixed": line.fixed, "per_sample": line.per_sample}, line.at(batch),
    )


def _memory_method(device: torch.device) -> str:
    from netadapt.engine.memory import PeakMemory

    return PeakMemory(device).method


def _batches(images: int, batch_size: int, world_size: int, *, drop_single: bool = True) -> int:
    """Batches per epoch per device, as :class:`~netadapt.engine.sampling.ResumableBatchSampler` counts them."""
    per_rank = math.ceil(images / world_size)
    batches = math.ceil(per_rank / batch_size)
    return batches - 1 if drop_single and per_rank % batch_size == 1 else batches


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
        f"{'phase':<20}{'batch':>6}{'measured at':>14}{'s/step':>9}{'steps':>10}{'hours':>9}{'peak MiB':>12}",
    ]
    for phase in estimate.phases:
        peak = "n/a" if phase.peak_memory_bytes is None else f"{phase.peak_memory_bytes / 2**20:.0f}"
        peak += " (p)" if "peak_memory_bytes" in phase.projected else " (m)"
        batches = ",".join(str(b) for b in phase.measured_peaks)
        lines.append(
            f"{phase.name:<20}{phase.batch_size:>6}{batches:>14}{phase.seconds_per_step:>9.3f}{phase.steps:>10}"
            f"{phase.hours:>9.2f}{peak:>12}"
        )
    budget = estimate.memory_budget
    lines += [
        "",
        "measured (m): the timed steps and peak memory at the 'measured at' batches on this device, synthetic images, each in a",
        "fresh process; projected (p): steps of the schedule, hours, device-days (× world size, linear scaling assumed), and time",
        "and peak memory at the configured batch where it was not measured (along the line through the measured batches).",
        f"Memory: {estimate.phases[0].memory_method if estimate.phases else 'n/a'}"
        + (f"; no measurement allocated more than the budget, {format_bytes(budget.bytes)} ({budget.how})." if budget else "."),
    ]
    return lines


def dataset_sizes(dataset: str | None, data: Path | None, *, images: int | None) -> tuple[int, int, int]:
    """(training images, val images, classes with the background): from the annotations of the dataset
    (the embedded demo without one), or ``images`` with COCO 2017's val size and classes."""
    if images is not None:
        return images, COCO_VAL_IMAGES, COCO_CLASSES
    from netadapt.data.coco import read_json
    from netadapt.jobs.common import resolve_splits

    splits = resolve_splits(dataset, data)
    train, val = (read_json(splits[name].annotations) for name in ("train", "val"))
    return len(train.get("images", [])), len(val.get("images", [])), len(train.get("categories", [])) + 1


def estimate(
    *, base: str = "mobilenetv2", detector: str = "ssdlite", data: Path | None = None, dataset: str | None = None, images: int | None = None,
    config_file: Path | None = None, overrides: Sequence[str] = (), world_size: int = 1, steps: int = 2, measure_batch: int | None = None,
    device: str | None = None, max_memory: str | int | None = None,
) -> Estimate:
    """``netadapt estimate``: :func:`estimate_job` of the search and training ``config_file`` and ``overrides`` configure
    (the demo's packaged config on the demo), on the images of dataset ``dataset`` in ``data`` (the demo without either)
    or on ``images`` training images of a COCO-sized dataset; ``device`` by default CUDA when there is one."""
    from netadapt.errors import ConfigError
    from netadapt.jobs.common import Data

    if data is not None and images is not None:
        raise ConfigError("give --data or --images, not both")
    if world_size < 1 or steps < 1 or (images is not None and images < 2) or (measure_batch is not None and measure_batch < 2):
        raise ConfigError("--world-size and --steps must be at least 1, --images and --measure-batch at least 2")
    demo = Data(data, dataset).is_demo and images is None
    search = load_run_config(SearchConfig, "search", config_file=config_file, overrides=overrides, demo=demo)
    train = load_run_config(TrainConfig, "train", config_file=config_file, overrides=overrides, demo=demo)
    train_images, val_images, classes = dataset_sizes(dataset, data, images=images)
    return estimate_job(
        search, train, base=base, detector=detector, train_images=train_images, val_images=val_images, num_classes=classes,
        world_size=world_size, device=device or ("cuda" if torch.cuda.is_available() else "cpu"), steps=steps, measure_batch=measure_batch,
        max_memory=max_memory,
    )
