"""Settings that make a loop keep its device busy, and nothing else: none of them changes a result.

- DataLoader workers: ``workers: auto`` takes the cores this process may run on
  (``os.sched_getaffinity``), shared among the ranks of this machine, one left for the loop
  itself, at most 8 per rank; ``pin_memory`` on CUDA (page-locked batches copy asynchronously);
  ``persistent_workers`` with workers (a new epoch, or the α half's restart, reuses them instead of
  forking again); ``prefetch_factor`` batches prepared ahead per worker. Persistent workers keep
  resumed runs exact: the batch sampler (:mod:`netadapt.engine.sampling`) is iterated in the main
  process on each ``iter(loader)``, so ``set_position`` still decides the batches, and every sample
  is drawn under its own seed whichever worker draws it.
- ``torch.backends.cudnn.benchmark`` on CUDA (the input size is fixed, so the autotuned
  convolution algorithms are chosen once).
- ``channels_last`` (an option): the model's weights in NHWC, which tensor-core convolutions prefer.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

MAX_AUTO_WORKERS = 8


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | str, *, local_world_size: int | None = None) -> int:
    """``auto``: the cores per rank of this machine (torchrun's ``LOCAL_WORLD_SIZE`` ranks), one left
    for the loop, at most 8; else ``workers``."""
    if workers != "auto":
        return int(workers)
    if local_world_size is None:
        local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    per_rank = available_cores() // max(1, local_world_size)
    return max(0, min(MAX_AUTO_WORKERS, per_rank - 1))


def loader_options(config: Any, device: torch.device, *, local_world_size: int | None = None) -> dict[str, Any]:
    """DataLoader keyword arguments from ``config.workers`` / ``prefetch_factor`` and the device."""
    workers = resolve_workers(config.workers, local_world_size=local_world_size)
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers > 0:
        options |= {"persistent_workers": True, "prefetch_factor": config.prefetch_factor}
    return options


def prepare_device(device: torch.device) -> None:
    """Process-wide settings for the device a loop runs on (cuDNN autotuning on CUDA)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def to_memory_format(model: nn.Module, *, channels_last: bool) -> nn.Module:
    return model.to(memory_format=torch.channels_last) if channels_last else model
