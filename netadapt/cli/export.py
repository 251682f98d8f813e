"""``netadapt export``: a detector checkpoint as an ONNX or TorchScript model, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from netadapt.cli import options
from netadapt.cli.console import print_json, stdout


def export_command(
    checkpoint: Path = typer.Argument(..., help="Detector checkpoint (model.pth or last.pth of `netadapt train`/`adapt`).", show_default=False),
    format: str = typer.Option("onnx", "--format", help="onnx (needs `pip install 'netadapt\\[export]'`) or torchscript (traced, torch.jit.save)."),
    out: Path = typer.Option(None, "--out", help="Output file \\[default: next to the checkpoint, <name>.onnx or <name>.torchscript.pt]."),
    image: Path = typer.Option(None, "--image", help="Image to check the export on, with its mirror image \\[default: an image of the demo dataset]."),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="Absolute difference allowed between the exported model's outputs and PyTorch's, on top of twice PyTorch's own float32 rounding error (measured against float64)."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="ONNX: a dynamic batch axis instead of batch 1 (slower export). TorchScript takes any batch."),
    json_: bool = options.JSON,
) -> None:
    """Export a detector's backbone + head; check it against PyTorch on an image.

    \b
    Input   images [N, 3, S, S] float32, S = the checkpoint's input size
            (ONNX: N = 1 unless --dynamic-batch). Preprocess: RGB, resize
            to S×S (bilinear, antialiased), /255, (x - mean) / std per
            channel (SSDLite: mean 0.5, std 0.5).
    Output  the head's outputs, bbox_regression [N, A, 4] and cls_logits
            [N, A, C] (class 0 the background), then anchors [A, 4], x1 y1
            x2 y2 pixels of the S×S input.
    Post-process each image as the detector does, by its export rule (a
    plugin's register_export_rules; netadapt.export.postprocess runs it):
    decode the boxes from the anchors with the box coder weights (SSDLite
    10, 10, 5, 5) and clip them to S×S. SSDLite: softmax over the classes;
    for each class but the background keep scores > score_thresh, at most
    topk_candidates; NMS per class (nms_thresh); keep the best
    detections_per_img. Then scale the boxes to the original image size.
    The file holds these numbers as JSON (ONNX metadata 'netadapt',
    TorchScript extra file 'netadapt.json').

    Nothing is written if the check fails (one error line, exit code 2).
    """
    from netadapt import jobs

    report = jobs.export(checkpoint, format=format, out=out, image=image, tolerance=tolerance, dynamic_batch=dynamic_batch)
    if json_:
        print_json(report)
        return
    shapes = ", ".join(f"{name} {tuple(shape)}" for name, shape in report["outputs"].items())
    stdout.print(f"Exported {escape(str(checkpoint))} → [bold]{escape(report['out'])}[/] ({format}: {escape(shapes)})", soft_wrap=True)
    worst = max(report["max_abs_diff"], key=report["max_abs_diff"].get)
    stdout.print(
        f"Check on {escape(report['image'])}: max abs difference to PyTorch {report['max_abs_diff_all']:.2e} in {worst} "
        f"(allowed {report['allowed'][worst]:.2g}: tolerance {tolerance:g} + 2 × PyTorch's float32 rounding "
        f"{report['float32_rounding'][worst]:.2g})",
        soft_wrap=True,
    )
