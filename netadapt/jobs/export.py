"""The export job (``netadapt export``): a detector checkpoint as an ONNX or TorchScript model, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netadapt.data.demo import demo_image
from netadapt.data.images import read_rgb
from netadapt.detectors.model import load_detector
from netadapt.export import export_detector, export_rule, require_format
from netadapt.files import check_output_file

SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


def export(
    checkpoint: Path, *, format: str = "onnx", out: Path | None = None, image: Path | None = None, tolerance: float = 1e-4,
    dynamic_batch: bool = False,
) -> dict[str, Any]:
    """Export a detector's backbone and head into ``out`` (by default next to the checkpoint, ``<name>.onnx`` or
    ``<name>.torchscript.pt``) after checking it against PyTorch on ``image`` (by default an image of the demo
    dataset) and its mirror image (:func:`netadapt.export.export_detector`); its report, with the checkpoint and image.
    Nothing is written when the check fails."""
    require_format(format)  # a missing package is reported before the checkpoint is read
    out = check_output_file(out or checkpoint.with_name(checkpoint.stem + SUFFIXES[format]), inputs=[checkpoint, image])
    model, spec = load_detector(checkpoint)
    export_rule(spec.detector, model)  # a detector without one is reported before the image is read (or the demo made)
    image = image or demo_image()
    picture = read_rgb(image)
    report = export_detector(model, spec, out, format=format, image=picture, tolerance=tolerance, dynamic_batch=dynamic_batch, checkpoint=checkpoint)
    report["checkpoint"], report["image"] = str(checkpoint), str(image)
    return report
