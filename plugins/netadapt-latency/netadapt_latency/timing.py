"""Timing one op on its device: warm-up runs, then the median of timed repeats.

The op runs in eval mode under ``torch.no_grad()`` (inference latency, batch norm with running
statistics). On CPU torch's intra-op thread count is fixed for the measurement and restored
afterwards; on CUDA every timed run is bracketed by ``torch.cuda.synchronize`` so that the
clock sees the kernels finish, not only their launch. The median, not the mean, so that a
run the operating system interrupted does not move the result.
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import torch
from torch import nn


def device_of(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.device:
    """Where ``module`` runs: the device of its parameters (of its input when it has none)."""
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else inputs[0].device


def device_name(device: torch.device, *, threads: int) -> str:
    """``cpu Intel(R) Xeon(R) CPU @ 2.20GHz, 1 thread`` or ``cuda NVIDIA H100 80GB HBM3``."""
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    return f"cpu {cpu_model()}, {threads} thread{'s' if threads != 1 else ''}"


@cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` knows)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


@contextlib.contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside the block, restored after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def time_module(module: nn.Module, inputs: tuple[torch.Tensor, ...], *, warmup: int, repeats: int, threads: int) -> float:
    """The median latency of ``module(*inputs)`` in milliseconds (see the module docstring)."""
    device = device_of(module, inputs)
    cuda = device.type == "cuda"
    was_training = module.training
    module.eval()
    times = []
    try:
        with torch.no_grad(), (contextlib.nullcontext() if cuda else cpu_threads(threads)):
            for _ in range(warmup):
                module(*inputs)
            for _ in range(repeats):
                if cuda:
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                module(*inputs)
                if cuda:
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - start)
    finally:
        module.train(was_training)
    return 1e3 * statistics.median(times)
