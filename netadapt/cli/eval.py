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
    checkpoint: Path = typer.Argument(None, help="Detector checkpoint (model.pth or last.pth of `netadapt train`).", show_default=False),
    detections: Path = typer.Option(None, "--detections", help="Evaluate this COCO results JSON instead of running a checkpoint."),
    annotations: Path = typer.Option(None, "--annotations", help="Ground-truth COCO JSON [default: the split's]."),
    data: Path = options.DATA,
    dataset: str = options.DATASET,
    split: str = typer.Option("val", "--split", help="Dataset split to evaluate."),
    out: Path = typer.Option(None, "--out", help="Write detections.json and metrics.json here [default: next to the checkpoint, eval/]."),
    batch_size: int = typer.Option(16, "--batch-size"),
    workers: int = typer.Option(2, "--workers"),
    device: str = options.DEVICE,
    json_: bool = options.JSON,
) -> None:
    """Evaluate a detector (or a detections file) with COCO's 12 bbox metrics; write them as JSON."""
    from netadapt import jobs

    result = jobs.evaluation(
        checkpoint, detections=detections, annotations=annotations, data=jobs.Data(data, dataset), split=split, out_dir=out,
        batch_size=batch_size, workers=workers, device=device,
    )
    if json_:
        print_json(result.metrics)
        return
    table = Table(title=f"COCO bbox metrics of {checkpoint or detections} on {result.ground_truth}")
    table.add_column("metric")
    table.add_column("", style="dim")
    table.add_column("value", justify="right")
    for name, value in result.metrics.items():
        table.add_row(name, METRIC_DESCRIPTIONS[name], f"{value:.3f}")
    stdout.print(table)
    stdout.print("Wrote " + " and ".join(str(path) for path in result.written), markup=False)
