"""The prediction job (``netadapt predict``): a detector's boxes, class names and scores drawn on images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from netadapt.data.images import read_rgb
from netadapt.detectors.model import load_detector
from netadapt.engine.predict import detect, draw_detections, output_names, write_png
from netadapt.files import check_outputs, output_folder


def predict(
    images: list[Path], *, checkpoint: Path, out_dir: Path = Path("predictions"), score: float = 0.3, device: str | None = None,
) -> list[dict[str, Any]]:
    """Detect objects in ``images`` and draw those scoring at least ``score`` into one PNG file each in ``out_dir``;
    per image its path, the PNG's and the detections drawn. Every image is read before anything is written or loaded,
    and no PNG is drawn over an input."""
    pictures = [read_rgb(path) for path in images]
    names = output_names(images)
    check_outputs([out_dir / name for name in names], inputs=[*images, checkpoint])
    written = []
    with output_folder(out_dir):
        model, spec = load_detector(checkpoint)
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model.to(target)
        for path, picture, name in zip(images, pictures, names):
            detections = detect(model, picture, input_size=spec.input_size, device=target)
            drawn = draw_detections(picture, detections, class_names=spec.class_names, score_threshold=score)
            destination = out_dir / name
            write_png(drawn, destination)
            kept = int((detections["scores"] >= score).sum())
            written.append({"image": str(path), "out": str(destination), "detections": kept})
    return written
