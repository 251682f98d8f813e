"""``netadapt front``: the accuracy-vs-cost front of a finished search (DESIGN §1.6, :mod:`netadapt.search.front`)."""

from __future__ import annotations

from pathlib import Path

import typer

from netadapt.cli import options
from netadapt.cli.console import print_json, stderr, stdout


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
    device: str = options.DEVICE,
    max_memory: str = options.MAX_MEMORY,
    auto_batch: bool = options.AUTO_BATCH,
    quiet: bool = options.QUIET,
    json_: bool = options.JSON,
) -> None:
    """Derive the best architecture under each budget from one search and score each with the super network's weights."""
    import dataclasses

    from netadapt.cost import format_cost
    from netadapt.engine.distributed import setup
    from netadapt.files import check_outputs, output_folder
    from netadapt.jobs import check_memory, resolve_splits
    from netadapt.search.front import compute_front, front_outputs, load_search, resolve_targets, write_front

    search = load_search(search_dir)
    given = [target.strip() for target in targets.split(",") if target.strip()] if targets else None
    resolved = resolve_targets(search, given, points)
    splits = resolve_splits(dataset, data)
    unit = search.table.unit
    # The front's steps run one path at the search's batch: BatchNorm passes, evaluation, fine-tuning steps; the search's
    # weight step (one path under fna and sampled, all of them under darts) bounds them.
    config = check_memory(
        "front", search.config, base=search.base, detector=search.detector, splits=splits, device=device, max_memory=max_memory,
        auto_batch=auto_batch, announce=lambda m: stderr.print(m, markup=False), phase="search weight step",
    )
    search = dataclasses.replace(search, config=config)

    def announce(point) -> None:
        if quiet or json_:
            return
        measured = format_cost(point.measured, unit) if point.measured is not None else "not measured"
        target = f"target {point.target_given} = {format_cost(point.target, unit)}" if point.target is not None else "base network"
        stdout.print(
            f"{point.name}: {target}; predicted {format_cost(point.predicted, unit)}, measured {measured}; "
            f"{point.params / 1e6:.2f}M params; proxy mAP {100 * point.metrics['AP']:.1f} (mAP@0.5 {100 * point.metrics['AP50']:.1f})",
            markup=False,
        )

    out = out or search.directory / "front"
    check_outputs(front_outputs(out, len(resolved), base=search.base_ops is not None))  # before any point is computed
    with output_folder(out):
        front = compute_front(search, resolved, splits, evaluate_on=evaluate_on, bn_images=bn_images, device=setup(device).device,
            finetune_steps=finetune_steps, announce=announce)
        written = write_front(front, out)
    if json_:
        print_json(front.to_dict() | {"out": str(out)})
        return
    stdout.print(
        f"Proxy mAP: {front.to_dict()['proxy']['how']}, on {front.evaluated_on}.\n"
        f"Costs: {front.scope}. Wrote {', '.join(str(path) for path in written[:3])} and {len(written) - 3} genotype.yaml files "
        f"(train one: netadapt train {out / 'point-1' / 'genotype.yaml'}).",
        markup=False,
    )
