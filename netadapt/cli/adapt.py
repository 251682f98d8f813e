"""``netadapt adapt``: the whole method in one command, with a report in the paper's table form."""

from __future__ import annotations

from pathlib import Path

import typer

from netadapt.cli import options
from netadapt.cli.console import print_json, stderr, stdout


@options.with_options(network=options.network, source=options.source, machine=options.machine)
def adapt_command(
    target: str = options.TARGET,
    out: Path = typer.Option(Path("runs/adapt"), "--out", help="Run directory (search/, adapted/, base/, report.md)."),
    resume: bool = typer.Option(False, "--resume", help="Keep finished stages, continue the interrupted one."),
    select: bool = typer.Option(
        True, "--select/--no-select", help="Under a target, the selection stage between search and training (netadapt select); "
        "--no-select trains the search's network (the paper's pipeline)."
    ),
    parallel: int = typer.Option(1, "--parallel", help="Selection candidates trained side by side."),
    network: options.Network = None, source: options.Source = None, machine: options.Machine = None,  # the blocks above
) -> None:
    """Search, derive, remap and train an adapted detector backbone; compare it with the base; write OUT/report.md."""
    from netadapt import jobs

    report = jobs.adapt(
        base=network.base, detector=network.detector, weights=network.weights, data=source.data,
        search_config=source.config(jobs.SearchConfig, "search", {"target": target}), train_config=source.config(jobs.TrainConfig, "train"),
        select_stage=select, select_config=source.config(jobs.SelectConfig, "select"), remap=source.config(jobs.RemapConfig, "remap"),
        parallel=parallel, out_dir=out, resume=resume, **machine.job_options(),
        announce=lambda m: (stderr if machine.json else stdout).print(m, markup=False),  # --json: stdout is JSON only
    )
    if machine.json:
        print_json(report.to_dict())
        return
    stdout.print(report.to_markdown(), markup=False)
    stdout.print(f"Wrote {out / 'report.md'} and {out / 'report.json'}", markup=False)
