"""``netadapt adapt``: the whole method in one command, with a report in the paper's table form."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from netadapt.cli import options
from netadapt.cli.console import print_json, stderr, stdout


def adapt_command(
    base: str = options.BASE,
    detector: str = options.DETECTOR,
    weights: str = options.BASE_WEIGHTS,
    data: Path = options.DATA,
    dataset: str = options.DATASET,
    config_file: Path = options.CONFIG,
    overrides: list[str] = options.SET,
    target: str = typer.Option(
        None, "--target", help="Hard budget of the searched layers in the cost model's unit: 250M, 0.25B, or ms for latency [config: search.target]."
    ),
    out: Path = typer.Option(Path("runs/adapt"), "--out", help="Run directory (search/, adapted/, base/, report.md)."),
    resume: bool = typer.Option(False, "--resume", help="Keep finished stages, continue the interrupted one."),
    device: str = options.DEVICE,
    quiet: bool = options.QUIET,
    json_: bool = options.JSON,
) -> None:
    """Search, derive, remap and train an adapted detector backbone; compare it with the base; write OUT/report.md."""
    from netadapt.adapt import run_adapt
    from netadapt.bases.pretrain import pretrained_demo_path
    from netadapt.cli.weights import resolve_base_weights
    from netadapt.cache import cache_root
    from netadapt.engine.config import SearchConfig, TrainConfig, dataset_is_demo, load_run_config
    from netadapt.engine.jobs import resolve_splits
    from netadapt.search.loop import check_search_target

    is_demo = dataset_is_demo(dataset, data)
    dataset_name = dataset or ("demo" if is_demo else "coco")
    flags = {"target": target}
    search_config = load_run_config(SearchConfig, "search", config_file=config_file, overrides=overrides or [], flags=flags, demo=is_demo)
    train_config = load_run_config(TrainConfig, "train", config_file=config_file, overrides=overrides or [], demo=is_demo)
    splits = resolve_splits(dataset, data)
    check_search_target(base, search_config, cache_dir=cache_root() / "cost_tables")  # before any training
    started = time.perf_counter()
    pretraining = is_demo and weights is None and not pretrained_demo_path(base).is_file()
    base_weights = resolve_base_weights(weights, base=base, demo=is_demo, progress=not quiet)
    extra = {"base pretraining on demo crops": (time.perf_counter() - started) / 3600} if pretraining else {}
    report = run_adapt(
        base=base, detector=detector, weights=base_weights, splits=splits, dataset_name=dataset_name,
        search_config=search_config, train_config=train_config, out_dir=out, resume=resume, device=device,
        progress=not quiet, cache_dir=cache_root() / "cost_tables", announce=lambda m: (stderr if json_ else stdout).print(m, markup=False),  # --json: stdout is JSON only
        extra_hours=extra,
    )
    if json_:
        print_json(report.to_dict())
        return
    stdout.print(report.to_markdown(), markup=False)
    stdout.print(f"Wrote {out / 'report.md'} and {out / 'report.json'}", markup=False)
