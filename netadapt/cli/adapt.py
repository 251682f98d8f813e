"""``netadapt adapt``: the whole method in one command, with a report in the paper's table form."""

from __future__ import annotations

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
    max_memory: str = options.MAX_MEMORY,
    auto_batch: bool = options.AUTO_BATCH,
    quiet: bool = options.QUIET,
    json_: bool = options.JSON,
) -> None:
    """Search, derive, remap and train an adapted detector backbone; compare it with the base; write OUT/report.md."""
    from netadapt import jobs
    from netadapt.engine.config import SearchConfig, TrainConfig

    source = jobs.Data(data, dataset)
    report = jobs.adapt(
        base=base, detector=detector, weights=weights, data=source,
        search_config=source.config(SearchConfig, "search", config_file=config_file, overrides=overrides or [], flags={"target": target}),
        train_config=source.config(TrainConfig, "train", config_file=config_file, overrides=overrides or []),
        out_dir=out, resume=resume, device=device, progress=not quiet, max_memory=max_memory, auto_batch=auto_batch,
        announce=lambda m: (stderr if json_ else stdout).print(m, markup=False),  # --json: stdout is JSON only
    )
    if json_:
        print_json(report.to_dict())
        return
    stdout.print(report.to_markdown(), markup=False)
    stdout.print(f"Wrote {out / 'report.md'} and {out / 'report.json'}", markup=False)
