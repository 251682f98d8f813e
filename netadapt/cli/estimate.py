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
    import torch

    from netadapt import jobs
    from netadapt.config import SearchConfig, TrainConfig, load_run_config
    from netadapt.errors import ConfigError
    from netadapt.jobs.estimate import dataset_sizes, estimate_job, format_table

    if data is not None and images is not None:
        raise ConfigError("give --data or --images, not both")
    if world_size < 1 or steps < 1 or (images is not None and images < 2) or (measure_batch is not None and measure_batch < 2):
        raise ConfigError("--world-size and --steps must be at least 1, --images and --measure-batch at least 2")
    is_demo = jobs.Data(data, dataset).is_demo and images is None
    search = load_run_config(SearchConfig, "search", config_file=config_file, overrides=overrides or [], demo=is_demo)
    train = load_run_config(TrainConfig, "train", config_file=config_file, overrides=overrides or [], demo=is_demo)
    train_images, val_images, classes = dataset_sizes(dataset, data, images=images)
    result = estimate_job(
        search, train, base=base, detector=detector, train_images=train_images, val_images=val_images, num_classes=classes,
        world_size=world_size, device=device or ("cuda" if torch.cuda.is_available() else "cpu"), steps=steps, measure_batch=measure_batch,
        max_memory=max_memory,
    )
    if json_:
        print_json(result.to_dict())
        return
    stdout.print("\n".join(format_table(result)), markup=False)
