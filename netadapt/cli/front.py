"""``netadapt front``: the accuracy-vs-cost front of a finished search (DESIGN §1.6, :mod:`netadapt.search.front`)."""

from __future__ import annotations

from pathlib import Path

import typer

from netadapt.cli import options
from netadapt.cli.console import print_json, stderr, stdout


@options.with_options(machine=options.machine)
def front_command(
    search_dir: Path = typer.Argument(..., help="A finished `netadapt search` run directory (its supernet.pth, split.json)."),
    targets: str = typer.Option(
        None, "--targets", help="Comma-separated budgets of the searched layers: 250M, 0.25B, 20 (ms), or 0.7x of the base network's "
        "[default: 0.5x,0.6x,0.7x,0.8x,0.9x,1.0x]."
    ),
    points: int = typer.Option(None, "--points", help="N budgets evenly spaced from the cheapest network of the space to the base network (1.0x)."),
    evaluate_on: str = typer.Option("alpha", "--evaluate-on", help="Proxy mAP on 'alpha' (the α half of the training split) or 'val'."),
    bn_images: int = typer.Option(256, "--bn-images", help="Training images (weight half) that re-estimate BatchNorm statistics per point."),
    finetune_steps: int = typer.Option(
        0, "--finetune-steps", help="Optimizer steps (the search's optimizer and lr) on each path alone before it is scored; undone after."
    ),
    data: Path = options.DATA,
    dataset: str = options.DATASET,
    out: Path = typer.Option(None, "--out", help="Output folder [default: SEARCH_DIR/front]."),
    machine: options.Machine = None,
) -> None:
    """Derive the best architecture under each budget from one search and score each with the super network's weights."""
    from netadapt import jobs
    from netadapt.jobs.common import format_cost

    def on_point(point, unit: str) -> None:
        if machine.quiet or machine.json:
            return
        measured = format_cost(point.measured, unit) if point.measured is not None else "not measured"
        target = f"target {point.target_given} = {format_cost(point.target, unit)}" if point.target is not None else "base network"
        stdout.print(
            f"{point.name}: {target}; predicted {format_cost(point.predicted, unit)}, measured {measured}; "
            f"{point.params / 1e6:.2f}M params; proxy mAP {100 * point.metrics['AP']:.1f} (mAP@0.5 {100 * point.metrics['AP50']:.1f})",
            markup=False,
        )

    result = jobs.front(
        search_dir, targets=[target.strip() for target in targets.split(",") if target.strip()] if targets else None, points=points,
        evaluate_on=evaluate_on, bn_images=bn_images, finetune_steps=finetune_steps, data=jobs.Data(data, dataset), out_dir=out,
        device=machine.device, max_memory=machine.max_memory, auto_batch=machine.auto_batch,
        announce=lambda m: stderr.print(m, markup=False), on_point=on_point,
    )
    out, written = result.out_dir, result.written
    if machine.json:
        print_json(result.front.to_dict() | {"out": str(out)})
        return
    stdout.print(
        f"Proxy mAP: {result.front.to_dict()['proxy']['how']}, on {result.front.evaluated_on}.\n"
        f"Costs: {result.front.scope}. Wrote {', '.join(str(path) for path in written[:3])} and {len(written) - 3} genotype.yaml files "
        f"(train one: netadapt train {out / 'point-1' / 'genotype.yaml'}).",
        markup=False,
    )
