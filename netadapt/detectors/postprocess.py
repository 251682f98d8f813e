"""The parts of a single-stage detector's post-processing that export rules share (``netadapt export``).

What torchvision's ``SSD`` and ``RetinaNet`` do after the head — decode box deltas against the
anchors, clip, NMS per class, keep the best — happens inside their ``postprocess_detections``
methods, with the box coder of the private ``torchvision.models.detection._utils``. A runtime
that has only an exported graph's raw outputs needs the steps outside a model. What torchvision
lacks, and this module adds: :func:`decode_boxes`, the box coder's arithmetic as a function (no
public alias exists), and the two steps both detectors share, :func:`top_candidates` (score
threshold, top k) and :func:`best_detections` (NMS per class, the best k); the box operations are
``torchvision.ops``' (``box_convert``, ``clip_boxes_to_image``, ``batched_nms``). An export rule
(:class:`netadapt.contracts.ExportRule`) composes them with its detector's own scoring:
:class:`netadapt.detectors.ssdlite.SSDExportRule` for SSD, the ``retinanet`` plugin's for RetinaNet.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.ops import batched_nms, box_convert, clip_boxes_to_image


def box_settings(model: nn.Module) -> dict[str, Any]:
    """The post-processing numbers a torchvision single-stage detector (``SSD``, ``RetinaNet``) holds, JSON-able:
    ``box_weights``, ``box_clip`` (its box coder's), ``score_thresh``, ``topk_candidates``, ``nms_thresh``,
    ``detections_per_img``."""
    return {
        "box_weights": [float(value) for value in model.box_coder.weights],
        "box_clip": float(model.box_coder.bbox_xform_clip),
        "score_thresh": float(model.score_thresh),
        "topk_candidates": int(model.topk_candidates),
        "nms_thresh": float(model.nms_thresh),
        "detections_per_img": int(model.detections_per_img),
    }


def decode_boxes(deltas: torch.Tensor, anchors: torch.Tensor, settings: dict[str, Any], *, size: int) -> torch.Tensor:
    """Boxes ``[K, 4]`` (x1, y1, x2, y2) from deltas ``[K, 4]`` (dx, dy, dw, dh) and their anchors ``[K, 4]``
    (x1, y1, x2, y2), clipped to the ``size × size`` input.

    With the weights ``(wx, wy, ww, wh) = settings["box_weights"]`` (SSDLite: 10, 10, 5, 5; RetinaNet:
    1, 1, 1, 1), the anchor's centre ``(ax, ay)`` and size ``(aw, ah)``: ``cx = dx/wx·aw + ax``,
    ``cy = dy/wy·ah + ay``, ``w = exp(min(dw/ww, clip))·aw``, ``h = exp(min(dh/wh, clip))·ah``, ``clip =
    settings["box_clip"]`` (torchvision: log(1000/16)); corners ``cx ± w/2``, ``cy ± h/2``. The operations
    run in the order of torchvision's ``BoxCoder.decode_single``, so that the boxes equal the detector's bit
    for bit: the anchor centre is ``x1 + aw/2``, which rounds differently from ``box_convert``'s ``(x1 + x2)/2``.
    """
    anchors = anchors.to(deltas.dtype)
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    centres_x = anchors[:, 0] + 0.5 * widths
    centres_y = anchors[:, 1] + 0.5 * heights
    wx, wy, ww, wh = settings["box_weights"]
    dx, dy, dw, dh = deltas.unbind(-1)
    clip = settings["box_clip"]
    centred = torch.stack(
        (
            dx / wx * widths + centres_x,
            dy / wy * heights + centres_y,
            torch.exp(torch.clamp(dw / ww, max=clip)) * widths,
            torch.exp(torch.clamp(dh / wh, max=clip)) * heights,
        ),
        dim=-1,
    )
    return clip_boxes_to_image(box_convert(centred, "cxcywh", "xyxy"), (size, size))


def best_detections(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, settings: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """One image's detections from its candidates: NMS per class (IoU ``settings["nms_thresh"]``), then the
    ``settings["detections_per_img"]`` best, best first."""
    keep = batched_nms(boxes, scores, labels, settings["nms_thresh"])[: settings["detections_per_img"]]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


def top_candidates(scores: torch.Tensor, settings: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Of ``scores`` (1-D), those above ``settings["score_thresh"]``, at most the ``settings["topk_candidates"]``
    best: ``(scores, indices into the input)``, best first."""
    (indices,) = torch.where(scores > settings["score_thresh"])
    best, order = scores[indices].topk(min(settings["topk_candidates"], len(indices)))
    return best, indices[order]

