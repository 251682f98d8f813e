"""``netadapt eval``: COCO bbox evaluation of a trained detector (pycocotools COCOeval)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from netadapt.cli import options
from netadapt.cli.console import print_json, stdout

METRIC_DESCRIPTIONS = {
    "AP": "AP @ IoU 0.50:0.95",
    "AP50": "AP @ IoU 0.50",
    "AP75": "AP @ IoU 0.75",
    "APs": "AP small",
    "APm": "AP medium",
    "APl": "AP large",
    "AR1": "AR @ 1 detection",
    "AR10": "AR @ 10 detections",
    "AR100": "AR @ 100 detections",
    "ARs": "AR small",
    "ARm": "AR medium",
    "ARl": "AR large",
}


def eval_command(
    checkpoint: Path = typer.Argument(..., help="Detector checkpoint (model.pth or last.pth of `netadapt train`).", show_default=False),
    data: Path = options.DATA,
    dataset: str = options.DATASET,
    split: str = typer.Option("val", "--split", help="Dataset split to evaluate."),
    out: Path = typer.Option(None, "--out", help="Write detections.json and metrics.json here [default: next to the checkpoint, eval/]."),
    batch_size: int = typer.Option(16, "--batch-size"),
    workers: int = typer.Option(2, "--workers"),
    device: str = options.DEVICE,
    json_: bool = options.JSON,
) -> None:
    """Evaluate a detector with COCO's 12 bbox metrics; write detections and metrics as JSON."""
    from netadapt.engine.jobs import resolve_splits, run_eval_job
    from netadapt.errors import DataError

    splits = resolve_splits(dataset, data)
    if split not in splits:
        raise DataError(f"dataset has no split {split!r}; it has: {', '.join(splits)}")
    out = out or checkpoint.parent / "eval"
    metrics, _ = run_eval_job(checkpoint, splits[split], out_dir=out, batch_size=batch_size, workers=workers, device=device)
    if json_:
        print_json(metrics)
        return
    table = Table(title=f"COCO bbox metrics of {checkpoint} on {splits[split].annotations}")
    table.add_column("metric")
    table.add_column("", style="dim")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, METRIC_DESCRIPTIONS[name], f"{value:.3f}")
    stdout.print(table)
    stdout.print(f"Wrote {out / 'detections.json'} and {out / 'metrics.json'}", markup=False)
