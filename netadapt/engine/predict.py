"""Detections drawn on images (``netadapt predict``), with torchvision's ``draw_bounding_boxes``."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F
from torchvision.utils import draw_bounding_boxes

from netadapt.files import atomic_path


@torch.inference_mode()
def detect(model: torch.nn.Module, image: torch.Tensor, *, input_size: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Detections of one uint8 image, boxes in the image's own pixels."""
    model.eval()
    height, width = image.shape[-2:]
    resized = F.to_dtype(F.resize(image, [input_size, input_size]), torch.float32, scale=True)
    (output,) = model([resized.to(device)])
    scale = torch.tensor([width / input_size, height / input_size] * 2, device=output["boxes"].device)
    return {"boxes": (output["boxes"] * scale).cpu(), "scores": output["scores"].cpu(), "labels": output["labels"].cpu()}


def draw_detections(
    image: torch.Tensor, detections: dict[str, torch.Tensor], *, class_names: list[str], score_threshold: float
) -> torch.Tensor:
    keep = detections["scores"] >= score_threshold
    labels = [f"{class_names[int(label)]} {float(score):.2f}" for label, score in zip(detections["labels"][keep], detections["scores"][keep])]
    return draw_bounding_boxes(image, detections["boxes"][keep], labels=labels, width=2, colors="yellow")


def output_names(images: list[Path]) -> list[str]:
    """One distinct PNG name per image: ``<stem>.png``, or ``<stem>-2.png``, ``-3``… where stems repeat
    (``a/x.jpg b/x.jpg`` must not write one file over the other)."""
    names: list[str] = []
    taken: set[str] = set()
    for path in images:
        name, number = f"{path.stem}.png", 1
        while name.lower() in taken:  # case-insensitive file systems fold X.png onto x.png
            number += 1
            name = f"{path.stem}-{number}.png"
        taken.add(name.lower())
        names.append(name)
    return names


def write_png(image: torch.Tensor, path: str | Path) -> None:
    with atomic_path(path) as temporary:
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(temporary, format="PNG")
