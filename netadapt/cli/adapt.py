"""``netadapt adapt``: the whole method in one command, with a report in the paper's table form."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from netadapt.cli import options
from netadapt.cli.console import print_json, stdout


def adapt_command(
    base: str = typer.Option("mobilenetv2", "--base", help="Base network plugin."),
    detector: str = typer.Option("ssdlite", "--detector", help="Detector plugin."),
    weights: str = typer.Option(
        None, "--weights", help="Base weights: a .pth, a netadapt checkpoint, 'imagenet', or 'none' (random). "
        "Default on the demo: the base pretrained on demo object crops (cached)."
    ),
    data: Path = options.DATA,
    dataset: str = options.DATASET,
    config_file: Path = options.CONFIG,
    overrides: list[str] = options.SET,
    out: Path = typer.Option(Path("runs/adapt"), "--out", help="Run directory (search/, adapted/, base/, report.md)."),
    resume: bool = typer.Option(False, "--resume", help="Keep finished stages, continue the interrupted one."),
    device: str = options.DEVICE,
    quiet: bool = options.QUIET,
    json_: bool = options.JSON,
) -> None:
    """Search, derive, remap and train an adapted detector backbone; compare it with the base; write OUT/report.md."""
    from netadapt.adapt import run_adapt
    from netadapt.cli.weights import resolve_base_weights
    from netadapt.data.demo import cache_root
    from netadapt.engine.config import SearchConfig, TrainConfig, apply_overrides, default_config_file, read_config_file, section_config
    from netadapt.engine.jobs import resolve_splits

    dataset_name = dataset or ("coco" if data else "demo")
    is_demo = dataset_name == "demo"
    config_file = config_file or default_config_file(demo=is_demo)
    sections = apply_overrides(read_config_file(config_file), overrides or [])
    source = str(config_file or "command line")
    search_config = section_config(SearchConfig, sections, "search", source=source)
    train_config = section_config(TrainConfig, sections, "train", source=source)
    splits = resolve_splits(dataset, data)
    started = time.perf_counter()
    base_weights = resolve_base_weights(weights, base=base, demo=is_demo)
    extra = {"base pretraining on demo crops": (time.perf_counter() - started) / 3600} if is_demo and weights is None else {}
    report = run_adapt(
        base=base, detector=detector, weights=base_weights, splits=splits, dataset_name=dataset_name,
        search_config=search_config, train_config=train_config, out_dir=out, resume=resume, device=device,
        progress=not quiet, cache_dir=cache_root() / "cost_tables", announce=lambda m: stdout.print(m, markup=False),
        extra_hours=extra,
    )
    if json_:
        print_json(report.to_dict())
        return
    stdout.print(report.to_markdown(), markup=False)
    stdout.print(f"Wrote {out / 'report.md'} and {out / 'report.json'}", markup=False)
