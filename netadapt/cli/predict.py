"""``netadapt predict``: draw a detector's boxes, class names and scores on images."""

from __future__ import annotations

from pathlib import Path

import typer

from netadapt.cli import options
from netadapt.cli.console import print_json, stdout


def predict_command(
    images: list[Path] = typer.Argument(..., help="Image files.", show_default=False),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Detector checkpoint (model.pth of `netadapt train`)."),
    out: Path = typer.Option(Path("predictions"), "--out", help="Folder for the PNG files."),
    score: float = typer.Option(0.3, "--score", help="Draw detections scoring at least this."),
    device: str = options.DEVICE,
    json_: bool = options.JSON,
) -> None:
    """Detect objects in images and draw them into PNG files (one per image)."""
    from netadapt import jobs

    written = jobs.predict(images, checkpoint=checkpoint, out_dir=out, score=score, device=device)
    if json_:
        print_json(written)
        return
    for item in written:
        stdout.print(f"{item['image']}: {item['detections']} detections → {item['out']}", markup=False)
