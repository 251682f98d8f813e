"""Memory before it is spent (issue 25): the budget, the line through small batches, every job's check, and running
out of memory during a run as one line naming the iteration and the checkpoint to resume from."""

from __future__ import annotations

import gc
import os
import re
import signal
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from typer.testing import CliRunner

from netadapt import jobs
from netadapt.cli.main import app
from netadapt.config import SearchConfig, TrainConfig
from netadapt.engine.loop import Loop
from netadapt.engine.memory import MemoryLine, check_memory, memory_budget, parse_memory
from netadapt.errors import ConfigError, MemoryBudgetError, OutOfMemory
from netadapt.jobs.preflight import StepSpec, measure_step, preflight_memory, save_line

MiB = 2**20


def test_sizes_read_as_binary_units() -> None:
    assert parse_memory("4G") == 4 * 2**30 and parse_memory("512M") == 512 * MiB and parse_memory("1.5GiB") == int(1.5 * 2**30)
    assert parse_memory("800mb") == 800 * MiB and parse_memory("1024") == 1024
    with pytest.raises(ConfigError, match="--max-memory"):
        parse_memory("lots")
    assert memory_budget("cpu", "3G").bytes == 3 * 2**30
    assert 0 < memory_budget("cpu").bytes <= memory_budget("cpu", fraction=1.0).bytes


def test_the_line_through_two_batches_projects_and_names_the_batch_that_fits() -> None:
    line = MemoryLine.fit([(2, 600 * MiB), (4, 800 * MiB)])
    assert line.measured and line.fixed == 400 * MiB and line.per_sample == 100 * MiB
    assert line.at(16) == 2000 * MiB and line.largest_batch(1000 * MiB) == 6 and line.largest_batch(500 * MiB) == 0
    one = MemoryLine.fit([(2, 600 * MiB)], rest=500 * MiB)  # through the memory at rest: 50 MiB a sample
    assert not one.measured and one.at(16) == 1300 * MiB

    assert check_memory("search", line, batch=4, limit=1000 * MiB, limit_how="--max-memory 1000M", batch_field="search.batch_size") == 4
    assert check_memory("search", line, batch=16, limit=1000 * MiB, limit_how="x", batch_field="search.batch_size", auto_batch=True) == 6
    with pytest.raises(MemoryBudgetError) as refused:
        check_memory("search", line, batch=16, limit=1000 * MiB, limit_how="--max-memory 1000M", batch_field="search.batch_size")
    message = str(refused.value)
    assert "\n" not in message
    assert "projected peak memory 2.0 GiB at search.batch_size=16" in message and "1000 MiB available (--max-memory 1000M)" in message
    assert "the largest batch that fits is 6" in message
    with pytest.raises(MemoryBudgetError, match="no batch of 2 or more fits"):
        check_memory("train", line, batch=16, limit=500 * MiB, limit_how="x", batch_field="train.batch_size")


@pytest.fixture
def kept_lines(netadapt_cache: Path):
    """The cache's memory lines as they were before the test (a test writes made-up ones)."""
    path = netadapt_cache / "memory" / "lines.json"
    before = path.read_bytes() if path.is_file() else None
    try:
        yield
    finally:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)


def _demo_search_config() -> tuple[SearchConfig, int]:
    data = jobs.Data()
    return data.config(SearchConfig, "search"), jobs.num_classes(data.splits())


def test_a_search_over_a_small_max_memory_is_refused_in_one_line_before_anything_trains(tmp_path: Path, kept_lines) -> None:
    # The demo search's line, as a measurement (or `netadapt estimate`) leaves it in the cache: 400 MiB + 100 MiB a sample.
    config, classes = _demo_search_config()
    save_line(StepSpec("search α step", config, num_classes=classes), "cpu", MemoryLine.fit([(2, 600 * MiB), (4, 800 * MiB)]))
    out = tmp_path / "search"
    result = CliRunner().invoke(app, ["search", "--max-memory", "1000M", "--weights", "none", "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "search: projected peak memory 2.0 GiB at search.batch_size=16" in lines[0] and "the largest batch that fits is 6" in lines[0]
    assert not out.exists()  # refused before the run directory, the data loader or a step

    scaled = preflight_memory("search", config, num_classes=classes, max_memory="1000M", auto_batch=True, announce=(said := []).append)
    assert scaled.batch_size == 6 and scaled.lr == pytest.approx(config.lr * 6 / 16)
    assert "linear scaling rule" in said[0] and "search.batch_size=6" in said[0]


def test_a_step_is_measured_in_a_fresh_process_that_cannot_pass_its_cap() -> None:
    config = TrainConfig(input_size=64, batch_size=4, workers=0)
    spec = StepSpec("train step", config, num_classes=3)
    measured = measure_step(spec, 2, device="cpu", cap=4 * 2**30, start="fork")
    assert measured.batch == 2 and len(measured.seconds) == 1 and measured.peak >= measured.rest > 0
    with pytest.raises(MemoryBudgetError, match="does not fit in 64 MiB on cpu"):
        measure_step(spec, 2, device="cpu", cap=64 * MiB, start="fork")


def _loop(tmp_path: Path, batches, **options) -> Loop:
    path = tmp_path / "last.pth"
    return Loop(total=10, iterations_per_epoch=5, batches=batches, progress=False, save=lambda done: path.write_text(str(done)),
                checkpoint_every=2, checkpoint_path=path, **options)


def test_cuda_out_of_memory_is_one_line_naming_the_iteration_and_the_checkpoint(tmp_path: Path) -> None:
    def step(batch, at):
        if at.iteration == 4:  # the fifth iteration
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore details")
        return {"loss": 1.0}

    with pytest.raises(OutOfMemory) as stopped:
        _loop(tmp_path, lambda epoch, first: range(first, 5)).run(step)
    message = str(stopped.value)
    assert "\n" not in message and "out of memory at iteration 5 of 10" in message and "Tried to allocate 2.00 GiB" in message
    assert f"{tmp_path / 'last.pth'} at iteration 4" in message and "--resume" in message


def test_a_connection_reset_by_a_dying_process_is_the_same_line(tmp_path: Path) -> None:
    def batches(epoch, first):
        yield from range(first, 3)
        raise ConnectionResetError(104, "Connection reset by peer")

    with pytest.raises(OutOfMemory, match=r"out of memory at iteration 4 of 10: a connection to another process was reset .* iteration 2"):
        _loop(tmp_path, batches).run(lambda batch, at: {"loss": 1.0})


class _KilledInWorker(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> int:
        if index == 5:
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
        return index


def test_a_loader_worker_killed_is_one_line_naming_the_iteration_and_the_checkpoint(tmp_path: Path) -> None:
    # Batches as plain lists: a tensor batch travels as a file descriptor, whose transfer a dying worker can cut (a
    # ConnectionResetError, which the loop reports the same way) before its death is seen.
    loader = DataLoader(_KilledInWorker(), batch_size=1, num_workers=1, collate_fn=list)
    with pytest.raises(OutOfMemory) as stopped:
        _loop(tmp_path, lambda epoch, first: loader).run(lambda batch, at: {"loss": 1.0})
    message = str(stopped.value)  # the worker's death is noticed at the next batch or, through SIGCHLD, during a step
    del stopped, loader  # the loader's iterator goes, and with it its SIGCHLD handler's record of the dead worker
    gc.collect()
    assert "\n" not in message and "DataLoader worker" in message and "out-of-memory killer" in message
    assert re.search(r"a data loader worker died at iteration [1-6] of 10", message) and ("--resume" in message or "no checkpoint" in message)


def test_estimate_never_measures_past_its_budget() -> None:
    import shutil
    import subprocess

    # The first measurement's process is capped at the budget: one that cannot hold even batch 2 ends there, in one line.
    done = subprocess.run(
        [shutil.which("netadapt"), "estimate", "--images", "100", "--max-memory", "300M", "--steps", "1", "--set", "search.input_size=64"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "the search weight step at batch 2 does not fit in 300 MiB on cpu" in lines[0], done.stderr


def test_a_measured_search_is_refused_naming_the_batch_its_line_gives(tmp_path: Path, kept_lines) -> None:
    from netadapt.jobs.preflight import project_line

    config, classes = _demo_search_config()
    config.input_size = 64
    spec = StepSpec("search α step", config, num_classes=classes)
    # A long-lived parent (this test session, a job after its data loading) has freed blocks resident in its heap; the
    # forked measurement inherits them, and its step must not read flat by reusing them (CI did: 1.41 GiB at 2 and 4).
    freed = [bytearray(4096) for _ in range(200_000)]
    pinned = bytearray(4096)  # above the freed blocks: the heap's top cannot shrink past it
    del freed
    line = project_line(spec, device="cpu", cap=8 * 2**30, batch=16, limit=1)  # measured at batches 2 and 4, kept in the cache
    assert line.measured and line.fixed > 0 and line.per_sample > 4 * 2**20  # ~35 MiB an image of 64 pixels
    del pinned
    limit = line.at(6) + 1  # fits 6 images, not 7 nor the configured 16
    out = tmp_path / "search"
    result = CliRunner().invoke(app, ["search", "--set", "search.input_size=64", "--max-memory", str(limit), "--weights", "none", "--out", str(out)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "(projected from batches 2, 4)" in result.output and "the largest batch that fits is 6" in result.output
    assert not out.exists()


def test_a_resumed_auto_batch_run_keeps_the_batch_it_started_with(tmp_path: Path) -> None:
    config = TrainConfig(batch_size=16, lr=0.002)
    torch.save({"format": "netadapt-train", "config": {"batch_size": 6, "lr": 0.00075}, "iteration": 3}, tmp_path / "last.pth")
    resumed = jobs.started_batch(config, tmp_path, resume=True)
    assert (resumed.batch_size, resumed.lr) == (6, 0.00075)
    assert jobs.started_batch(config, tmp_path, resume=False) is config and jobs.started_batch(config, tmp_path / "new", resume=True) is config
