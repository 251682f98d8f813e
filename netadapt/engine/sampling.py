"""Deterministic, resumable data order and augmentation.

torch's ``DistributedSampler`` shuffles per epoch but cannot start in the middle of one, and
augmentation draws from the global RNG, whose state depends on how many samples were drawn, by
which worker. Two small pieces make a run reproducible bit for bit, across resumes and worker
counts:

- :class:`ResumableBatchSampler`: the order of epoch ``e`` is ``randperm`` under seed
  ``(seed, e)``, padded and split across ranks as ``DistributedSampler`` does, batched, and it can
  start at any batch of an epoch;
- :class:`SeededSamples`: every sample is drawn under its own RNG seed derived from
  ``(seed, epoch, index)``, so its augmentation does not depend on what ran before it.

An epoch's last batch is dropped when it would hold a single image (``size % batch_size == 1``
per rank): BatchNorm cannot train on one value per channel (SSDLite's 1×1 extra layers see one
value per channel and image), so a batch of one fails. Only that image of the epoch is left
out, and since the order is reshuffled every epoch, a different one each time; incomplete
batches of two or more are kept. The rule depends only on sizes, so a resumed run sees the same
batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

from netadapt.engine.signals import ignore_interrupts_in_worker
from netadapt.errors import DataError


def sample_key(epoch: int, index: int, size: int) -> int:
    """One integer for (epoch, index): what the batch sampler yields and the dataset decodes."""
    return epoch * size + index


class ResumableBatchSampler(Sampler[list[int]]):
    def __init__(self, size: int, *, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True) -> None:
        if size <= 0:
            raise DataError("no images to train on: the dataset (or the half of it this run samples) is empty")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.per_rank = math.ceil(size / world_size)
        self.batches_per_epoch = math.ceil(self.per_rank / batch_size)
        if self.per_rank % batch_size == 1:  # a last batch of one image: dropped (module docstring)
            self.batches_per_epoch -= 1
        if self.batches_per_epoch == 0:
            raise DataError(
                f"{size} image(s) to train on over {world_size} process(es): a training batch needs at least 2 images "
                "(BatchNorm cannot train on one); give more images"
            )
        self.epoch = 0
        self.start_batch = 0

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def indices(self, epoch: int) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        order += order[: self.per_rank * self.world_size - self.size]  # pad as DistributedSampler does
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        mine = self.indices(self.epoch)
        for batch in range(self.start_batch, self.batches_per_epoch):
            chunk = mine[batch * self.batch_size : (batch + 1) * self.batch_size]
            yield [sample_key(self.epoch, index, self.size) for index in chunk]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch


class SeededSamples(Dataset):
    """Wraps a dataset: key ``sample_key(epoch, index)`` → ``dataset[index]`` under its own seed."""

    def __init__(self, dataset: Dataset, *, seed: int) -> None:
        self.dataset, self.seed = dataset, seed
        self._worker_ready = False  # set in each DataLoader worker on its first sample

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int) -> Any:
        if not self._worker_ready and get_worker_info() is not None:
            ignore_interrupts_in_worker()
            self._worker_ready = True
        epoch, index = divmod(key, len(self.dataset))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + index)
            return self.dataset[index]
