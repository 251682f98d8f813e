"""Throughput settings (netadapt.engine.throughput) change speed, never the batches a run sees."""

from __future__ import annotations

import os
from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader, Dataset

from netadapt.engine.sampling import ResumableBatchSampler, SeededSamples
from netadapt.engine.throughput import loader_options, resolve_workers


class _Noisy(Dataset):
    """Index and a random draw: the draw shows the per-sample seed reached the worker."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int):
        return index, float(torch.rand(()))


def _epochs(workers: int) -> list:
    sampler = ResumableBatchSampler(10, batch_size=3, seed=4)
    options = loader_options(SimpleNamespace(workers=workers, prefetch_factor=2), torch.device("cpu"))
    loader = DataLoader(SeededSamples(_Noisy(), seed=1), batch_sampler=sampler, collate_fn=list, **options)
    seen = []
    for epoch, start, take in ((0, 0, 2), (0, 2, 9), (1, 1, 9), (2, 0, 1), (2, 3, 9)):  # stops mid-epoch and repositions, as the loops do
        sampler.set_position(epoch, start)
        for number, batch in enumerate(loader):
            if number == take:
                break
            seen.append((epoch, batch))
    return seen


def test_persistent_workers_see_exactly_the_batches_of_the_main_process() -> None:
    assert loader_options(SimpleNamespace(workers=2, prefetch_factor=3), torch.device("cpu")) == {
        "num_workers": 2, "pin_memory": False, "persistent_workers": True, "prefetch_factor": 3
    }
    assert loader_options(SimpleNamespace(workers=0, prefetch_factor=2), torch.device("cpu")) == {"num_workers": 0, "pin_memory": False}
    assert _epochs(2) == _epochs(0)


def test_auto_workers_follow_the_cores_of_this_process() -> None:
    cores = len(os.sched_getaffinity(0))
    assert resolve_workers("auto", local_world_size=1) == max(0, min(8, cores - 1))
    assert resolve_workers("auto", local_world_size=cores) == 0  # a rank per core: loading in the loop's process
    assert resolve_workers(3) == 3
