"""SSD-style detection transforms (torchvision ``transforms.v2``) for COCO-format samples.

The training pipeline follows torchvision's SSD reference recipe (``references/detection/
presets.py``): photometric distortion, zoom-out, IoU crop and horizontal flip, then a resize to a
fixed square size. Both pipelines end with float32 images in [0, 1]: torchvision's SSD normalises
with its own mean and std and resizes again inside the model (``GeneralizedRCNNTransform``), so
the dataset must hand it unnormalised [0, 1] images. Resizing here already makes the model's own
resize a no-op when the sizes match, and lets a loader batch same-sized images; the model then
predicts boxes in the resized frame, which :func:`netadapt.engine.evaluate.run_evaluation` maps
back to the stored image with ``target["orig_size"]``.

Inputs are the ``uint8`` images :class:`~netadapt.data.coco.CocoDetection` yields; the zoom-out
fill is the ImageNet mean in that range.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

# ImageNet mean in uint8, the canvas colour of RandomZoomOut in torchvision's SSD recipe.
ZOOM_OUT_FILL = (123, 117, 104)


class SkipWithoutBoxes(torch.nn.Module):
    """Apply ``transform`` only to samples that hold at least one bounding box.

    torchvision's ``RandomIoUCrop`` needs boxes: a sample without a ``BoundingBoxes`` raises, and
    one with zero boxes spins through its trials until it draws "keep as is". An image without
    annotations passes through unchanged here instead.
    """

    def __init__(self, transform: torch.nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        if _count_boxes(sample) == 0:
            return sample
        return self.transform(*inputs)


def train_transforms(size: int = 320, *, hflip_prob: float = 0.5) -> v2.Compose:
    """SSD training augmentation ending in ``size``×``size`` float32 images in [0, 1]."""
    _check_size(size)
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomPhotometricDistort(),
            v2.RandomZoomOut(fill={tv_tensors.Image: ZOOM_OUT_FILL, "others": 0}),
            SkipWithoutBoxes(v2.RandomIoUCrop()),
            v2.RandomHorizontalFlip(p=hflip_prob),
            v2.Resize((size, size), antialias=True),
            # RandomIoUCrop marks boxes outside the crop as degenerate; this removes them together
            # with their labels (and crowd flags, when the sample has them).
            v2.SanitizeBoundingBoxes(labels_getter=per_box_fields),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def eval_transforms(size: int = 320) -> v2.Compose:
    """Evaluation preprocessing: resize to ``size``×``size``, float32 images in [0, 1]."""
    _check_size(size)
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((size, size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def per_box_fields(sample: Any) -> tuple[torch.Tensor, ...]:
    """The per-box tensors of a target that must be filtered along with its boxes.

    ``labels_getter`` for ``SanitizeBoundingBoxes``: ``labels`` and, in evaluation-style targets,
    ``iscrowd``.
    """
    target = sample[1] if isinstance(sample, (tuple, list)) else sample
    return tuple(target[key] for key in ("labels", "iscrowd") if key in target)


def _count_boxes(sample: Any) -> int:
    if isinstance(sample, tv_tensors.BoundingBoxes):
        return sample.shape[0]
    if isinstance(sample, dict):
        return sum(_count_boxes(value) for value in sample.values())
    if isinstance(sample, (tuple, list)):
        return sum(_count_boxes(value) for value in sample)
    return 0


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive integer, got {size!r}")
