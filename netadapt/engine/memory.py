"""Memory before it is spent: the budget, the peak of a step as a line in the batch size, the check.

A training step's peak memory is affine in the batch size: what does not depend on the batch (the
process with its libraries, weights, gradients, optimiser state, workspace) plus what each sample adds
(activations kept for the backward pass, its image and boxes). :class:`MemoryLine` is that line, fitted
through peaks measured at one or two small batches; it projects the peak at the configured batch and
gives the largest batch that fits. With a single point the line runs from the memory at rest (before the
step) at batch 0 through that point: close to the line through two batches, not a bound of it (the allocator
keeps part of a step's memory, so the true line starts below the memory at rest: :mod:`netadapt.jobs.preflight`
decides on one point only with a margin).

Where memory comes from (:func:`available_memory`): on CPU ``MemAvailable`` of ``/proc/meminfo`` (what
the kernel can give without swapping), on CUDA the free memory ``torch.cuda.mem_get_info`` reports. A
*budget* (:func:`memory_budget`) is ``--max-memory`` when given, else a fraction of it: what a
measurement may allocate, leaving the rest of a shared machine alone.

:func:`check_memory` compares a projected peak with what may be used and refuses with one line (projected
peak, available, the largest batch that fits), or under ``auto_batch`` returns that batch. Building the
steps and measuring them is :mod:`netadapt.jobs.preflight`'s and :mod:`netadapt.jobs.estimate`'s.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from netadapt.errors import ConfigError, MemoryBudgetError

# What a measurement may take of the available memory when no --max-memory is given: half on a CPU,
# whose memory the system and other jobs share, most of a GPU's free memory (nothing else grows into it).
CPU_BUDGET_FRACTION = 0.5
CUDA_BUDGET_FRACTION = 0.9
MIN_BATCH = 2  # BatchNorm does not train on one image
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_memory(text: str | int) -> int:
    """Bytes of ``4G``, ``512M``, ``1.5GiB``, ``800MB`` (binary units: 1G = 2**30 bytes) or a plain number of bytes."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(?:I?B)?\s*", str(text).upper())
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"--max-memory: expected a size such as 4G, 512M or 1.5GiB, got {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def format_bytes(size: float) -> str:
    """``3.2 GiB``, ``512 MiB``."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def available_memory(device: torch.device | str) -> int:
    """Bytes the device can still give: ``MemAvailable`` on CPU (Linux; elsewhere physical memory), free CUDA memory."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        match = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    except OSError:
        match = None
    if match:
        return int(match.group(1)) * 1024
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True)
class Budget:
    bytes: int
    how: str  # "--max-memory 4G" or "50% of MemAvailable 21.3 GiB"


def memory_budget(device: torch.device | str, max_memory: str | int | None = None, *, fraction: float | None = None) -> Budget:
    """``max_memory`` (``4G``), else ``fraction`` (default: :data:`CPU_BUDGET_FRACTION` / :data:`CUDA_BUDGET_FRACTION`)
    of :func:`available_memory`."""
    if max_memory is not None:
        return Budget(parse_memory(max_memory), f"--max-memory {max_memory}")
    device = torch.device(device)
    fraction = fraction or (CUDA_BUDGET_FRACTION if device.type == "cuda" else CPU_BUDGET_FRACTION)
    available = available_memory(device)
    source = "free CUDA memory" if device.type == "cuda" else "MemAvailable"
    share = "" if fraction == 1 else f"{fraction:.0%} of "
    return Budget(int(fraction * available), f"{share}{source} {format_bytes(available)}")


@dataclass(frozen=True)
class MemoryLine:
    """Peak bytes = ``fixed + per_sample · batch``, fitted through ``points`` (batch, peak bytes)."""

    fixed: float
    per_sample: float
    points: tuple[tuple[int, int], ...]

    @classmethod
    def fit(cls, points: list[tuple[int, int]] | tuple[tuple[int, int], ...], *, rest: int = 0) -> MemoryLine:
        """Through the two points of the largest batches. With one point, through it and ``rest`` (the memory at rest
        before the step) at batch 0 (module docstring). A slope below zero (measurement noise at nearly equal peaks) is
        taken as flat at the larger peak."""
        points = tuple(sorted((int(b), int(p)) for b, p in points))
        if not points:
            raise ValueError("MemoryLine.fit needs at least one (batch, peak) point")
        if len({b for b, _ in points}) < 2:
            batch, peak = points[-1]
            rest = min(rest, peak)
            return cls(float(rest), (peak - rest) / batch, points)
        (b1, p1), (b2, p2) = points[-2], points[-1]
        slope = (p2 - p1) / (b2 - b1)
        if slope < 0:
            return cls(float(max(p1, p2)), 0.0, points)
        return cls(p2 - slope * b2, slope, points)

    @property
    def measured(self) -> bool:
        """Fitted through two batches (else through one and the memory at rest)."""
        return len({b for b, _ in self.points}) >= 2

    def at(self, batch: int) -> int:
        return int(math.ceil(self.fixed + self.per_sample * batch))

    def largest_batch(self, limit: int) -> int:
        """The largest batch whose projected peak is at most ``limit`` bytes (0: not even :data:`MIN_BATCH`)."""
        if self.per_sample <= 0:
            return 2**31 if self.fixed <= limit else 0
        batch = int((limit - self.fixed) // self.per_sample)
        return batch if batch >= MIN_BATCH else 0

    def to_dict(self) -> dict:
        return asdict(self) | {"points": [list(point) for point in self.points]}

    @classmethod
    def from_dict(cls, data: dict) -> MemoryLine:
        return cls(float(data["fixed"]), float(data["per_sample"]), tuple((int(b), int(p)) for b, p in data["points"]))


def check_memory(
    what: str, line: MemoryLine, *, batch: int, limit: int, limit_how: str, batch_field: str, auto_batch: bool = False,
) -> int:
    """The batch ``what`` (a job's step: ``search``) runs at: ``batch`` when ``line`` projects its peak within ``limit``
    bytes; under ``auto_batch`` the largest that fits; else :class:`~netadapt.errors.MemoryBudgetError`, one line with
    the projected peak, the limit and the largest batch that fits (``batch_field``, ``search.batch_size``, names the
    setting to change)."""
    projected = line.at(batch)
    if projected <= limit:
        return batch
    fits = line.largest_batch(limit)
    how = "projected from batches " + ", ".join(str(b) for b, _ in line.points) if line.measured else \
        f"projected from batch {line.points[-1][0]} and the memory at rest"
    if fits and auto_batch:
        return fits
    advice = (f"the largest batch that fits is {fits}: --set {batch_field}={fits} (scale the lr with it) or --auto-batch"
              if fits else f"no batch of {MIN_BATCH} or more fits: free memory or raise --max-memory")
    raise MemoryBudgetError(
        f"{what}: projected peak memory {format_bytes(projected)} at {batch_field}={batch} ({how}) exceeds the "
        f"{format_bytes(limit)} available ({limit_how}); {advice}"
    )


class PeakMemory:
    """The peak memory of this process on ``device`` since it started or :func:`start_peak_here` (CUDA: since the last
    reset): the caching allocator's reserved bytes on CUDA, the resident set's high-water mark on CPU (``VmHWM``; elsewhere
    ``ru_maxrss``). Both only grow, which is why a measurement runs in a fresh process (:mod:`netadapt.jobs.preflight`)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            self.method = "torch.cuda.max_memory_reserved (the caching allocator's peak; the CUDA context not counted)"
        elif process_status("VmHWM") is not None:
            self.method = "resident set high-water mark of a fresh process per phase and batch (VmHWM)"
        else:
            self.method = "resource.getrusage ru_maxrss of a fresh process per phase and batch"

    def current(self) -> int | None:
        if self.device.type == "cuda":
            return torch.cuda.memory_reserved(self.device)
        return process_status("VmRSS")

    def peak(self) -> int | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_reserved(self.device)
        high_water = process_status("VmHWM")
        if high_water is not None:
            return high_water
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def start_peak_here() -> None:
    """Make this process's resident peak (``VmHWM``) count from now, over only what it holds now: the heap's free
    pages go back to the system first (glibc ``malloc_trim``). A forked process inherits its parent's heap, free
    blocks included; without this a step's allocations reuse those already-resident pages and its peak reads as the
    parent's (the same at batch 2 as at 4). Writing ``5`` to ``/proc/self/clear_refs`` resets the high-water mark
    (Linux >= 4.0, proc(5)); where either is missing the peak counts from the process's start, as before."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def process_status(name: str, pid: int | str = "self") -> int | None:
    """A ``kB`` field of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``, ``RssFile``), in bytes; None where there is none."""
    try:
        match = re.search(rf"^{name}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None
