"""A job's step measured before the job runs: its time and peak memory at a batch, in a fresh process.

The steps are the ones the jobs take, built as they build them (the configured strategy, precision,
optimiser and memory format) on synthetic images and boxes:

- ``search weight step`` and ``search α step``: the search's own :class:`~netadapt.search.step.SearchStep` (a synthetic
  cost table: every op costs 1); the α step runs after two weight steps in the same
  process, as in the search, so that the weights' gradients and optimiser state are alive under it: its peak
  is the search iteration's (the weight step's with its optimiser state, or the α step's, the larger);
- ``train step``: :class:`~netadapt.engine.train.DetectorTrainStep` of a detector on a genotype (by default the base network's);
- ``evaluation batch``: inference and post-processing.

:func:`measure_step` runs one warm-up and ``steps`` timed steps in a **fresh process**: peak memory only grows
in a process (the resident set's high-water mark, CUDA's peak counters), so each (step, batch) gets its own,
and one that would not fit ends there instead of taking the machine down. On CPU the process cannot allocate
more than its cap (``RLIMIT_DATA``, less the file-backed pages already resident: the resident set stays under
the cap); on CUDA ``torch.cuda.set_per_process_memory_fraction`` caps it. ``start="spawn"`` times at the
configured threads (``netadapt estimate``); ``"fork"`` starts in a fraction of a second and sees plugins
registered in this process (a job's check), with one thread (a forked process cannot use the parent's
OpenMP pool) — time is not what the check reads.

:func:`preflight_memory` is the check every job runs before it starts (:mod:`netadapt.engine.memory`'s line
and :func:`~netadapt.engine.memory.check_memory`); lines are cached per device and config, and
``netadapt estimate`` fills the same cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from netadapt import plugins
from netadapt import errors
from netadapt.cache import cache_root
from netadapt.config import SearchConfig, TrainConfig
from netadapt.detectors.model import build_detector_on, options_from_config
from netadapt.engine.loop import Position
from netadapt.engine.memory import MIN_BATCH, Budget, MemoryLine, PeakMemory, check_memory, format_bytes, memory_budget, process_status, start_peak_here
from netadapt.engine.precision import Precision
from netadapt.engine.throughput import prepare_device, to_memory_format
from netadapt.errors import MemoryBudgetError, RunError
from netadapt.files import write_json_atomic
from netadapt.genotype import Genotype

CHECK_ENV = "NETADAPT_MEMORY_CHECK"
PHASES = ("search weight step", "search α step", "train step", "evaluation batch")
SCHEDULE_ITERATIONS = 1000  # the schedule a measured step is built with (its learning rate does not change its time)
WORKER_TIMEOUT_S = 3600.0  # a measurement that hangs (a deadlocked thread pool) ends the command instead of blocking it


@dataclass(frozen=True)
class StepSpec:
    """What to build: ``phase`` (:data:`PHASES`) with ``config`` (the search's for search phases, else the training's),
    on ``base`` with ``detector`` for ``num_classes`` classes; ``genotype`` is the network trained (train, evaluation;
    ``None``: the base network's)."""

    phase: str
    config: SearchConfig | TrainConfig
    base: str = "mobilenetv2"
    detector: str = "ssdlite"
    num_classes: int = 81
    genotype: Genotype | None = None

    @property
    def batch_size(self) -> int:
        return self.config.eval_batch_size if self.phase == "evaluation batch" else self.config.batch_size


@dataclass(frozen=True)
class Measurement:
    batch: int
    seconds: list[float]  # the timed steps
    peak: int  # bytes: the process's peak (CPU: resident set, from its start; CUDA: reserved by the allocator)
    rest: int  # bytes: the same with the model, optimiser and batch built, before the first step


def measure_step(spec: StepSpec, batch: int, *, device: torch.device | str, cap: int, steps: int = 1, start: str = "spawn") -> Measurement:
    """One warm-up and ``steps`` timed steps of ``spec`` at ``batch`` in a fresh process that cannot allocate over ``cap``
    bytes (module docstring); :class:`~netadapt.errors.MemoryBudgetError` when it does not fit."""
    device = torch.device(device)
    context = multiprocessing.get_context("spawn" if device.type == "cuda" else start)
    receive, send = context.Pipe(duplex=False)
    forked = context.get_start_method() == "fork"
    file_pages = (process_status("RssFile") or 0) if forked else 0
    worker = context.Process(target=_worker, args=(send, spec, batch, str(device), cap, steps, forked, file_pages), daemon=True)
    worker.start()
    send.close()
    try:
        if not receive.poll(WORKER_TIMEOUT_S):
            raise RunError(f"measuring the {spec.phase} at batch {batch}: no answer in {WORKER_TIMEOUT_S:.0f} s")
        answer = receive.recv()
    except EOFError:  # it died without a word: killed, or it could not start
        worker.join(5)
        code = worker.exitcode
        answer = {"error": f"the measuring process ended with exit code {code}" + (f" (signal {-code})" if code and code < 0 else "")}
    finally:
        worker.join(5)
        if worker.is_alive():
            worker.kill()
            worker.join()
    if "over" in answer:
        raise MemoryBudgetError(
            f"the {spec.phase} at batch {batch} does not fit in {format_bytes(cap)} on {device} ({answer['over']}); "
            f"give it more with --max-memory"
        )
    if "netadapt_error" in answer:  # a config or plugin error the step met: the user's to fix, said as it was
        kind, message = answer["netadapt_error"]
        raise getattr(errors, kind, errors.NetadaptError)(message)
    if "error" in answer:
        raise RunError(f"measuring the {spec.phase} at batch {batch}: {answer['error']}")
    return Measurement(batch, answer["seconds"], answer["peak"], answer["rest"])


def _worker(send, spec: StepSpec, batch: int, device_name: str, cap: int, steps: int, forked: bool, parent_file_pages: int) -> None:
    device = torch.device(device_name)
    try:
        if forked:
            torch.set_num_threads(1)  # the parent's OpenMP pool does not survive fork; more threads would hang
        if device.type == "cpu":
            start_peak_here()
        _cap_memory(device, cap)
        step, before = build_step(spec, batch, device)
        memory = PeakMemory(device)
        if before is not None:
            before()
        rest = memory.current() or 0
        seconds = []
        for _ in range(steps + 1):
            _synchronise(device)
            started = time.perf_counter()
            step()
            _synchronise(device)
            seconds.append(time.perf_counter() - started)
        # A forked process maps its parent's heap but not the pages of the libraries' files its parent has resident
        # (torch's code: a few hundred MB), which the job's process will hold: they are counted as the parent's.
        unmapped = max(0, parent_file_pages - (process_status("RssFile") or 0)) if device.type == "cpu" else 0
        send.send({"seconds": seconds[1:], "peak": (memory.peak() or 0) + unmapped, "rest": rest + unmapped})
    except (torch.OutOfMemoryError, MemoryError) as error:
        send.send({"over": _first_line(error)})
    except errors.NetadaptError as error:
        send.send({"netadapt_error": (type(error).__name__, str(error))})
    except BaseException as error:  # noqa: BLE001 — the parent reports it; a worker never raises past its pipe
        if isinstance(error, RuntimeError) and ("can't allocate memory" in str(error) or "out of memory" in str(error).lower()):
            send.send({"over": _first_line(error)})  # CPU's allocator under the cap; CUDA's before torch 2.5
        else:
            send.send({"error": f"{type(error).__name__}: {_first_line(error)}"})
    finally:
        send.close()


def _cap_memory(device: torch.device, cap: int) -> None:
    """No allocation past ``cap`` bytes in this process (module docstring)."""
    if device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap / torch.cuda.get_device_properties(device).total_memory), device)
        return
    import resource

    # Anonymous memory (what RLIMIT_DATA counts: heap and private mappings, reserved or touched) plus the file-backed
    # pages resident is the resident set; so the data limit is the cap less those pages and a margin for the stacks
    # and for the library pages a step touches later (tens of MB). Reserved-but-untouched memory counts against the
    # limit too, so it errs on the safe side by what the allocators reserve ahead (~0.5 GB once torch is imported).
    limit = cap - (process_status("RssFile") or 0) - (process_status("RssShmem") or 0) - 64 * 2**20
    if limit <= (process_status("VmData") or 0):
        raise MemoryError(f"the process holds {format_bytes(process_status('VmData') or 0)} of data before it builds anything")
    resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1]))


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_step(spec: StepSpec, batch: int, device: torch.device) -> tuple[Callable[[], None], Callable[[], None] | None]:
    """The step to time, and what runs once before it (the α step's weight steps), on ``device`` at ``batch``."""
    prepare_device(device)
    if spec.phase in ("search weight step", "search α step"):
        steps = _search_steps(spec, device, batch)
        if spec.phase == "search weight step":
            return steps["weight"], None

        def two_weight_steps() -> None:  # the second one's backward runs with the optimiser's state as well
            steps["weight"]()
            steps["weight"]()

        return steps["alpha"], two_weight_steps
    if spec.phase == "train step":
        return _train_step(spec, device, batch), None
    if spec.phase == "evaluation batch":
        return _eval_step(spec, device, batch), None
    raise ValueError(f"unknown phase {spec.phase!r}; phases: {', '.join(PHASES)}")


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


def _search_steps(spec: StepSpec, device: torch.device, batch_size: int) -> dict[str, Callable[[], None]]:
    """The search's own step (:class:`~netadapt.search.step.SearchStep`: its weight step and α step, gradient clipping,
    schedule and cost term included) on a randomly initialised super network, one synthetic batch for both halves.
    The cost table is synthetic too (every op costs 1: the cost term's arithmetic is the same whatever the entries)."""
    from netadapt.engine.distributed import Context
    from netadapt.search.cost_term import CostTerm
    from netadapt.search.space import default_space_name, load_search_space
    from netadapt.search.step import SearchStep, strategy_for
    from netadapt.search.supernet import ArchitectureParameters, build_supernet

    config = spec.config
    strategy = strategy_for(config)
    torch.manual_seed(config.seed)
    space = load_search_space(config.space or default_space_name(spec.base))
    base_plugin = plugins.bases().get(spec.base)
    genotype = base_plugin.base_genotype()
    supernet = build_supernet(spec.base, space, base_plugin.build(genotype), genotype)
    model = build_detector_on(
        supernet, spec.detector, num_classes=spec.num_classes, input_size=config.input_size, options=options_from_config(spec.detector, config)
    )
    arch = ArchitectureParameters(supernet.layers, generator=torch.Generator().manual_seed(config.seed))
    model.to(device)
    arch.to(device)
    precision = Precision(config.amp, device)
    precision.prepare(to_memory_format(model, channels_last=config.channels_last))
    costs = [torch.ones(len(layer.candidates), device=device) for layer in supernet.layers]
    cost_term = CostTerm(cost_lambda=config.cost_lambda, cost_log_base=config.cost_log_base, target=None, target_weight=config.target_weight)
    step = SearchStep(
        detector=model, supernet=supernet, arch=arch, strategy=strategy, config=config, context=Context(device=device), precision=precision,
        costs=costs, cost_term=cost_term, unit="ops", iterations_per_epoch=SCHEDULE_ITERATIONS,
    )
    batch = _synthetic_batch(batch_size, config.input_size, spec.num_classes, device)
    done = itertools.count()

    def weight_step() -> None:
        iteration = next(done)
        step.weight_step(batch, Position(iteration, 0, iteration))

    def alpha_step() -> None:
        step.alpha_step(batch, step.temperature(0))

    return {"weight": weight_step, "alpha": alpha_step}


def _detector(spec: StepSpec, device: torch.device):
    config = spec.config
    torch.manual_seed(config.seed)
    base_plugin = plugins.bases().get(spec.genotype.base if spec.genotype is not None else spec.base)
    model = build_detector_on(
        base_plugin.build(spec.genotype or base_plugin.base_genotype()), spec.detector, num_classes=spec.num_classes,
        input_size=config.input_size, options=options_from_config(spec.detector, config),
    ).to(device)
    return to_memory_format(model, channels_last=config.channels_last)


def _train_step(spec: StepSpec, device: torch.device, batch_size: int) -> Callable[[], None]:
    """The detector's own training step (:class:`~netadapt.engine.train.DetectorTrainStep`) on one synthetic batch."""
    from netadapt.engine.train import DetectorTrainStep

    config = spec.config
    model = _detector(spec, device)
    precision = Precision(config.amp, device)
    precision.prepare(model)
    step = DetectorTrainStep(model, config, total=SCHEDULE_ITERATIONS, iterations_per_epoch=SCHEDULE_ITERATIONS, device=device, precision=precision)
    batch = _synthetic_batch(batch_size, config.input_size, spec.num_classes, device)
    done = itertools.count()

    def run() -> None:
        iteration = next(done)
        step(batch, Position(iteration, 0, iteration))

    return run


def _eval_step(spec: StepSpec, device: torch.device, batch_size: int) -> Callable[[], None]:
    config = spec.config
    model = _detector(spec, device).eval()
    precision = Precision(config.eval_amp or config.amp, device)
    precision.prepare(model)
    images, _ = _synthetic_batch(batch_size, config.input_size, spec.num_classes, device)

    def step() -> None:
        with torch.inference_mode(), precision.autocast():
            model(images)

    return step


def fit_line(measurements: list[Measurement]) -> MemoryLine:
    """The peak's line in the batch (:class:`~netadapt.engine.memory.MemoryLine`): through two measurements, or through
    one and the memory at rest (:data:`SINGLE_POINT_MARGIN` says how far to trust it)."""
    return MemoryLine.fit([(m.batch, m.peak) for m in measurements], rest=min(m.rest for m in measurements))


# --- the cache of lines: per device and the settings that change a step's memory ---------------------------------------

# Fields of a config that change a step's memory other than through the batch; the rest (lr, epochs, schedule,
# logging) do not, so a run with another lr reads the same line.
MEMORY_FIELDS = ("input_size", "detector_options", "strategy", "strategy_options", "space", "optimizer", "momentum", "amp", "eval_amp",
                 "channels_last")


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:torch-{torch.__version__}"


def line_key(spec: StepSpec, device: torch.device | str) -> str:
    fields = {name: getattr(spec.config, name) for name in MEMORY_FIELDS if hasattr(spec.config, name)}
    genotype = None
    if not spec.phase.startswith("search"):  # the base's genotype given or not is the same network
        genotype = (spec.genotype or plugins.bases().get(spec.base).base_genotype()).to_dict()
    data = {"device": device_name(device), "phase": spec.phase, "base": spec.base, "detector": spec.detector, "classes": spec.num_classes,
            "genotype": genotype, "config": fields}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cache_file(cache_dir: Path | None) -> Path:
    return cache_root(cache_dir) / "memory" / "lines.json"


def cached_line(spec: StepSpec, device: torch.device | str, *, cache_dir: Path | None = None) -> MemoryLine | None:
    try:
        lines = json.loads(_cache_file(cache_dir).read_text())
    except (OSError, ValueError):
        return None
    entry = lines.get(line_key(spec, device))
    return MemoryLine.from_dict(entry["line"]) if entry else None


def save_line(spec: StepSpec, device: torch.device | str, line: MemoryLine, *, cache_dir: Path | None = None) -> None:
    """Keep ``line`` for ``spec`` on this device; a line through two batches is not replaced by one through a single batch."""
    path = _cache_file(cache_dir)
    try:
        lines = json.loads(path.read_text())
    except (OSError, ValueError):
        lines = {}
    key = line_key(spec, device)
    if key in lines and MemoryLine.from_dict(lines[key]["line"]).measured and not line.measured:
        return
    lines[key] = {"phase": spec.phase, "device": device_name(device), "line": line.to_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, lines)


# --- the check every job runs before it starts -------------------------------------------------------------------------

# One measurement's line (through batch 2 and the memory at rest) is not quite an upper bound: the intercept of the line
# through two batches can fall below the memory at rest (the allocator keeps some of a step's memory). On the demo's α
# step it projected 3.9 GB at batch 16 where the line through batches 2 and 4 projects 4.3 GB (+11 %). So one measurement
# decides only with this margin: a projected peak at most half of what is available passes without a second one.
SINGLE_POINT_MARGIN = 2.0


def project_line(spec: StepSpec, *, device: torch.device | str, cap: int, batch: int, limit: int, cache_dir: Path | None = None) -> MemoryLine:
    """The line of ``spec``'s peak: cached (this device and config), else measured in forked processes capped at ``cap``
    bytes: at batch 2 first, which decides alone when it projects ``batch`` within half of ``limit``
    (:data:`SINGLE_POINT_MARGIN`: the demo's case, a few seconds), else at batch 4 too, through which the line is fitted."""
    line = cached_line(spec, device, cache_dir=cache_dir)
    if line is None:
        line = fit_line([measure_step(spec, MIN_BATCH, device=device, cap=cap, start="fork")])
        save_line(spec, device, line, cache_dir=cache_dir)
    second = min(batch, 2 * MIN_BATCH)
    if not line.measured and line.at(batch) * SINGLE_POINT_MARGIN > limit and second > line.points[-1][0] and line.at(second) <= cap:
        measured = measure_step(spec, second, device=device, cap=cap, start="fork")
        line = MemoryLine.fit([*line.points, (measured.batch, measured.peak)])
        save_line(spec, device, line, cache_dir=cache_dir)
    return line


def preflight_memory(
    job: str,
    config: SearchConfig | TrainConfig,
    *,
    base: str = "mobilenetv2",
    detector: str = "ssdlite",
    num_classes: int,
    genotype: Genotype | None = None,
    device: torch.device | str = "cpu",
    max_memory: str | int | None = None,
    auto_batch: bool = False,
    announce: Callable[[str], None] | None = print,
    cache_dir: Path | None = None,
    phase: str | None = None,
) -> Any:
    """Check, before ``job`` (``search``, ``train``, or any job whose step is one of them: ``select``, ``front``) starts,
    that its step's projected peak at ``config.batch_size`` fits what ``device`` has (or ``max_memory``): ``config``
    unchanged when it does; under ``auto_batch`` ``config`` with the largest batch that fits and the lr scaled linearly
    (Goyal et al. 2017; α's Adam lr is left alone), said through ``announce``; else a one-line
    :class:`~netadapt.errors.MemoryBudgetError` with the projected peak, what is available and the batch that fits.

    With a :class:`SearchConfig` the step is the α step (its peak is the search iteration's, :data:`PHASES`), or the
    weight step when no α step runs; with a :class:`TrainConfig` the training step of ``genotype`` (default: the base's);
    ``phase`` names another of :data:`PHASES` (``front``: the weight step, an upper bound of its BatchNorm passes,
    evaluation and fine-tuning steps on one path). The line comes from the cache (``netadapt estimate`` fills it) or
    :func:`project_line`. ``NETADAPT_MEMORY_CHECK=off`` skips the check (a script that knows its runs fit)."""
    if os.environ.get(CHECK_ENV) == "off":
        return config
    device = torch.device(device)
    if phase is not None:
        spec = StepSpec(phase, config, base, detector, num_classes, genotype)
    elif isinstance(config, SearchConfig):
        alpha = config.alpha_start_epoch <= config.epochs
        spec = StepSpec("search α step" if alpha else "search weight step", config, base, detector, num_classes)
    else:
        spec = StepSpec("train step", config, base, detector, num_classes, genotype)
    # A measurement (batches 2 and 4) may take the measuring budget, a fraction of what is available; the job's projected
    # peak is compared with all that is available, or with max_memory (which may be smaller than a measurement needs:
    # the process alone, before any batch, is a few hundred MB).
    measure = memory_budget(device)
    limit = memory_budget(device, max_memory, fraction=1.0)
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if device.type == "cpu" else 1  # torchrun's ranks share this memory
    if ranks > 1:
        limit = Budget(limit.bytes // ranks, f"{limit.how}, shared by {ranks} ranks")
    line = project_line(spec, device=device, cap=measure.bytes, batch=config.batch_size, limit=limit.bytes, cache_dir=cache_dir)
    section = "search" if isinstance(config, SearchConfig) else "train"
    batch = check_memory(
        job, line, batch=config.batch_size, limit=limit.bytes, limit_how=limit.how, batch_field=f"{section}.batch_size", auto_batch=auto_batch,
    )
    if batch == config.batch_size:
        return config
    scaled = dataclasses.replace(config, batch_size=batch, lr=config.lr * batch / config.batch_size)
    if announce is not None:
        announce(
            f"--auto-batch: {job}'s projected peak {format_bytes(line.at(config.batch_size))} at batch {config.batch_size} exceeds the "
            f"{format_bytes(limit.bytes)} available ({limit.how}); running at {section}.batch_size={batch} "
            f"(projected {format_bytes(line.at(batch))}) with {section}.lr {config.lr:g} → {scaled.lr:g} (linear scaling rule)"
        )
    return scaled


def seconds_at(measurements: list[Measurement], batch: int) -> float:
    """Seconds of a step at ``batch`` from the medians at the measured batches: the line through the two largest,
    or proportional to the largest alone (and where the line would fall, which is noise on a near-flat line)."""
    points = sorted((m.batch, statistics.median(m.seconds)) for m in measurements)
    b2, t2 = points[-1]
    proportional = t2 * batch / b2
    if len(points) < 2 or batch == b2:
        return t2 if batch == b2 else proportional
    b1, t1 = points[-2]
    slope = (t2 - t1) / (b2 - b1)
    return t2 + slope * (batch - b2) if slope > 0 else proportional
