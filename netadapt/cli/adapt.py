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
    select: bool = typer.Option(
        True, "--select/--no-select", help="Under a target, the selection stage between search and training (netadapt select); "
        "--no-select trains the search's network (the paper's pipeline)."
    ),
    parallel: int = typer.Option(1, "--parallel", help="Selection candidates trained side by side."),
    device: str = options.DEVICE,
    max_memory: str = options.MAX_MEMORY,
    auto_batch: bool = options.AUTO_BATCH,
    quiet: bool = options.QUIET,
    json_: bool = options.JSON,
) -> None:
    """Search, derive, remap and train an adapted detector backbone; compare it with the base; write OUT/report.md."""
    from netadapt import jobs
    from netadapt.config import RemapConfig, SearchConfig, SelectConfig, TrainConfig

    source = jobs.Data(data, dataset)

    def section(kind, name, flags=None):
        return source.config(kind, name, config_file=config_file, overrides=overrides or [], flags=flags)

    report = jobs.adapt(
        base=base, detector=detector, weights=weights, data=source,
        search_config=section(SearchConfig, "search", {"target": target}), train_config=section(TrainConfig, "train"),
        select_stage=select, select_config=section(SelectConfig, "select"), remap=section(RemapConfig, "remap"), parallel=parallel,
        out_dir=out, resume=resume, device=device, progress=not quiet, max_memory=max_memory, auto_batch=auto_batch,
        announce=lambda m: (stderr if json_ else stdout).print(m, markup=False),  # --json: stdout is JSON only
    )
    if json_:
        print_json(report.to_dict())
        return
    stdout.print(report.to_markdown(), markup=False)
    stdout.print(f"Wrote {out / 'report.md'} and {out / 'report.json'}", markup=False)
