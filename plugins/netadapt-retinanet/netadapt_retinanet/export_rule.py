"""The export rule of the ``retinanet`` detector (``netadapt export``; :class:`netadapt.contracts.ExportRule`).

``netadapt export`` writes the detector's backbone and head; what the model does after the head
— torchvision's ``RetinaNet.postprocess_detections`` with the background masked
(:class:`~netadapt_retinanet.retinanet.RetinaNetWithBackground`) — is this rule's, written with
netadapt's shared steps (:mod:`netadapt.detectors.postprocess`: box decoding, threshold and top
k, NMS per class; ``torchvision.ops`` underneath) instead of a call into the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from netadapt.detectors.postprocess import best_detections, box_settings, decode_boxes, top_candidates
from netadapt_retinanet.retinanet import mask_background

if TYPE_CHECKING:
    from netadapt.contracts import DetectorProbe


class RetinaNetExportRule:
    """Metadata: ``"scores": "sigmoid"``, :func:`~netadapt.detectors.postprocess.box_settings` (box weights
    1, 1, 1, 1) and ``anchors_per_level``, the anchors of each pyramid level (P4 to P7), in order.

    Post-processing, per image, from the outputs ``cls_logits``, ``bbox_regression`` and ``anchors``:

    1. split the anchors into the pyramid levels, ``anchors_per_level`` of them each;
    2. per level: scores = sigmoid of every (anchor, class) logit, the background's set to 0 (class 0
       is never a detection); keep the pairs scoring above ``score_thresh``, then the
       ``topk_candidates`` best; decode the boxes of their anchors;
    3. over all levels: NMS per class (IoU ``nms_thresh``), then the ``detections_per_img`` best.
    """

    def postprocess_settings(self, model: nn.Module, probe: DetectorProbe) -> dict[str, Any]:
        return {"scores": "sigmoid", **box_settings(model), "anchors_per_level": list(probe.anchors_per_level)}

    def postprocess(self, outputs: dict[str, torch.Tensor], info: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
        settings = info["postprocess"]
        levels = settings["anchors_per_level"]
        anchors = outputs["anchors"].split(levels)
        detections = []
        for deltas, logits in zip(outputs["bbox_regression"], mask_background(outputs["cls_logits"]), strict=True):
            boxes, scores, labels = [], [], []
            for level_deltas, level_logits, level_anchors in zip(deltas.split(levels), logits.split(levels), anchors, strict=True):
                classes = level_logits.shape[-1]
                best, indices = top_candidates(torch.sigmoid(level_logits).flatten(), settings)  # index: anchor · classes + class
                chosen = torch.div(indices, classes, rounding_mode="floor")
                boxes.append(decode_boxes(level_deltas[chosen], level_anchors[chosen], settings, size=info["input_size"]))
                scores.append(best)
                labels.append(indices % classes)
            detections.append(best_detections(torch.cat(boxes), torch.cat(scores), torch.cat(labels), settings))
        return detections
