"""``netadapt select``: the selection stage between search and training (DESIGN §1.6)."""

from __future__ import annotations

from pathlib import Path

import typer

from netadapt.cli import options
from netadapt.cli.console import print_json, stderr, stdout


@options.with_options(source=options.source)
def select_command(
    search_dir: Path = typer.Argument(None, help="A finished search (its α, table, network and target); without one, the pool is the baselines and the score's choices.",
                                      show_default=False),
    target: str = typer.Option(None, "--target", help="Budget of the searched layers: 84M, or 0.7x of the base's (default: the search's target; config select.target)."),
    base: str = options.BASE,
    detector: str = options.DETECTOR,
    weights: str = typer.Option(
        None, "--weights", help="Base weights the candidates are remapped from: a .pth, 'imagenet' or 'none' (default on the demo: the demo base)."
    ),
    out: Path = typer.Option(Path("runs/select"), "--out", help="Selection directory."),
    parallel: int = typer.Option(1, "--parallel", help="Candidates trained side by side (worker processes of one thread each)."),
    resume: bool = typer.Option(False, "--resume", help="Continue a stopped selection in OUT (finished trainings are kept)."),
    force: bool = typer.Option(False, "--force", help="Start over in an OUT that holds a selection."),
    max_memory: str = options.MAX_MEMORY,
    quiet: bool = options.QUIET,
    json_: bool = options.JSON,
    source: options.Source = None,
) -> None:
    """Choose the network to train under a budget: baselines, the search's network and score-chosen candidates, narrowed
    by successive halving on held-out training images; write OUT/selection.json and OUT/genotype.yaml."""
    from netadapt import jobs
    from netadapt.jobs.common import format_cost

    result = jobs.select(
        search_dir, target=target, base=base, detector=detector, weights=weights, data=source.data, config=source.config(jobs.SelectConfig, "select"),
        train_config=source.config(jobs.TrainConfig, "train"), search_config=source.config(jobs.SearchConfig, "search"),
        remap=source.config(jobs.RemapConfig, "remap"), out_dir=out, parallel=parallel, resume=resume, force=force, max_memory=max_memory,
        announce=(lambda m: None) if quiet and not json_ else (lambda m: stderr.print(m, markup=False)),
    )
    summary = {
        "out": str(result.out_dir), "winner": result.winner.name, "winner_is_baseline": result.winner_is_baseline,
        "genotype": str(result.out_dir / "genotype.yaml"), "selection": str(result.out_dir / "selection.json"),
        "cost": result.winner.cost, "changed_layers": result.winner.changed, "pool": [c.name for c in result.pool], "seconds": result.seconds,
    }
    if json_:
        print_json(summary)
        return
    stdout.print(
        f"Selected {result.winner.name} ({result.winner.changed} layers changed, {format_cost(result.winner.cost, result.unit)}) from a pool of "
        f"{len(result.pool)} in {result.seconds:.0f} s → {summary['genotype']}", markup=False,
    )
