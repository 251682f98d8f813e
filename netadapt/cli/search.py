"""``netadapt search``: network adaptation by differentiable search (paper Section 2.2)."""

from __future__ import annotations

from pathlib import Path

import typer

from netadapt.cli import options
from netadapt.cli.console import print_json, stderr, stdout


@options.with_options(network=options.network, source=options.source, machine=options.machine)
def search_command(
    space: str = typer.Option(None, "--space", help="Search space: a registered name (fna) or a YAML file [config: search.space]."),
    strategy: str = typer.Option(None, "--strategy", help="Search strategy plugin [config: search.strategy]."),
    cost: str = typer.Option(None, "--cost", help="Cost model of the cost term: madds, params, or one a plugin registers [config: search.cost_model]."),
    cost_table: Path = typer.Option(
        None, "--cost-table", help="A cost table measured elsewhere (e.g. on the target device), read instead of measuring [config: search.cost_table]."
    ),
    target: str = options.TARGET,
    epochs: int = typer.Option(None, "--epochs", help="Override search.epochs."),
    out: Path = typer.Option(Path("runs/search"), "--out", help="Run directory."),
    resume: bool = options.RESUME,
    force: bool = options.FORCE,
    network: options.Network = None, source: options.Source = None, machine: options.Machine = None,  # the blocks above
) -> None:
    """Search an architecture for the detector, starting from the base network's weights; write OUT/genotype.yaml."""
    from netadapt import jobs
    from netadapt.jobs.common import format_cost

    flags = {"epochs": epochs, "space": space, "strategy": strategy, "cost_model": cost, "cost_table": str(cost_table) if cost_table else None,
             "target": target}
    result = jobs.search(
        base=network.base, detector=network.detector, weights=network.weights, data=source.data,
        config=source.config(jobs.SearchConfig, "search", flags), out_dir=out, resume=resume, force=force, **machine.job_options(),
        announce=lambda message: stderr.print(message, markup=False),
    )
    summary = {
        "out": str(result.out_dir),
        "genotype": str(result.out_dir / "genotype.yaml"),
        "stages": [stage.to_list() for stage in result.genotype.stages],
        "iterations": result.iterations,
        "seconds": round(result.seconds, 1),
        "expected_cost": result.expected_cost,
        "derived_cost": result.derived_cost,
        "measured_cost": result.cost.measured,
        "cost_model": result.cost.model,
        "cost_unit": result.cost_unit,
        "cost": str(result.out_dir / "cost.json"),
        "target": result.target,
        "alpha_top1_mean": round(result.decision["top1_mean"], 4),
        "alpha_gap_mean": round(result.decision["gap_mean"], 4),
        "alpha_top1_mean_at_final_temperature": round(result.decision["top1_mean_at_final_temperature"], 4),
    }
    if machine.json:
        print_json(summary)
        return
    stdout.print(result.genotype.to_yaml().split("stages:")[1].strip(), markup=False)
    measured = format_cost(result.cost.measured, result.cost_unit) if result.cost.measured is not None else "not measured here"
    budget = f", target {format_cost(result.target, result.cost_unit)}" if result.target is not None else ""
    stdout.print(
        f"Searched {result.iterations} iterations in {result.seconds:.0f} s → {summary['genotype']}\n"
        f"softmax(α) over the searched layers: mean top-1 probability {result.decision['top1_mean']:.3f} "
        f"(uniform {result.decision['uniform_top1_mean']:.3f}), mean gap to the second op {result.decision['gap_mean']:.3f}"
        + (f"; at the final temperature {result.decision['final_temperature']:.3g}: {result.decision['top1_mean_at_final_temperature']:.3f}"
           if result.decision["final_temperature"] != 1 else "") + "\n"
        f"Cost ({result.cost.source}) of {result.cost.scope}: predicted {format_cost(result.derived_cost, result.cost_unit)} "
        f"(sum of the cost table's entries), measured {measured}{budget}",
        markup=False,
    )
