"""``netadapt estimate``: the hours and device-days of the configured search and training, before running them."""

from __future__ import annotations

from pathlib import Path

import typer

from netadapt.cli import options
from netadapt.cli.console import print_json, stdout


def estimate_command(
    base: str = options.BASE,
    detector: str = options.DETECTOR,
    data: Path = options.DATA,
    dataset: str = options.DATASET,
    images: int = typer.Option(None, "--images", help="Training images, instead of counting a dataset's (COCO train2017: 118287); val: 5000, 81 classes."),
    config_file: Path = options.CONFIG,
    overrides: list[str] = options.SET,
    world_size: int = typer.Option(1, "--world-size", help="Devices the job runs on (DDP), each as fast as this one."),
    steps: int = typer.Option(2, "--steps", help="Timed steps per phase (after one warm-up)."),
    measure_batch: int = typer.Option(
        None, "--measure-batch", help="The smaller of the two small batches each phase is measured at, and twice it (default 2); "
        "time and peak memory are projected along the line through them."
    ),
    device: str = options.DEVICE,
    max_memory: str = typer.Option(
        None, "--max-memory", help="Memory budget of the measurements (4G, 512M); by default half of MemAvailable on CPU, 90% of free CUDA memory."
    ),
    json_: bool = options.JSON,
) -> None:
    """Time a few steps of every phase of the job on this device within a memory budget and project the whole schedule (search,
    training, evaluation): hours, device-days and the peak memory of every phase."""
    from netadapt import jobs
    from netadapt.jobs.estimate import format_table

    result = jobs.estimate(
        base=base, detector=detector, data=data, dataset=dataset, images=images, config_file=config_file, overrides=overrides or [],
        world_size=world_size, steps=steps, measure_batch=measure_batch, device=device, max_memory=max_memory,
    )
    if json_:
        print_json(result.to_dict())
        return
    stdout.print("\n".join(format_table(result)), markup=False)
