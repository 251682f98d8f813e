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
    import torch

    from netadapt.data.images import read_rgb
    from netadapt.detectors.model import load_detector
    from netadapt.engine.predict import detect, draw_detections, output_names, write_png
    from netadapt.files import check_outputs, output_folder

    pictures = [read_rgb(path) for path in images]  # every file is checked before anything is written or loaded
    names = output_names(images)
    check_outputs([out / name for name in names], inputs=[*images, checkpoint])  # never draws over an input picture
    written = []
    with output_folder(out):
        model, spec = load_detector(checkpoint)
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model.to(target)
        for path, picture, name in zip(images, pictures, names):
            detections = detect(model, picture, input_size=spec.input_size, device=target)
            drawn = draw_detections(picture, detections, class_names=spec.class_names, score_threshold=score)
            destination = out / name
            write_png(drawn, destination)
            kept = int((detections["scores"] >= score).sum())
            written.append({"image": str(path), "out": str(destination), "detections": kept})
    if json_:
        print_json(written)
        return
    for item in written:
        stdout.print(f"{item['image']}: {item['detections']} detections → {item['out']}", markup=False)
