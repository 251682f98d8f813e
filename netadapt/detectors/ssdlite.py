"""SSDLite (MobileNetV2 paper, Sandler et al. 2018, §6.2) on any base network with detector taps.

Built-in plugin: registers the detector ``ssdlite`` and its export rule. The model is torchvision's ``SSD`` with
torchvision's ``SSDLiteHead`` and ``DefaultBoxGenerator``; they already do the matching (IoU 0.5),
hard negative mining (3:1), the losses, box coding with weights (10, 10, 5, 5) — i.e. the stds
(0.1, 0.1, 0.2, 0.2) of DESIGN §1.5 —, resizing and normalisation (``GeneralizedRCNNTransform``)
and post-processing (per-class top-k, NMS). What torchvision lacks, and this module adds:

- :class:`SSDLiteBackbone`, the feature extractor: torchvision's
  ``SSDLiteFeatureExtractorMobileNet`` slices a torchvision MobileNet's ``features``, so it can
  neither take a network of any genotype (whose tap channels follow the architecture: 576 for
  ``k*_e6`` as the first op of the 160 stage, 288 for ``e3``) nor keep the base network's keys
  under one prefix. Ours takes any base exposing ``forward_taps`` and ``tap_channels`` (two taps,
  strides 16 and 32) and appends the four extra blocks 1280→512→256→256→128;
- the anchors of FNA's code (``anchors="fna"``) as ``DefaultBoxGenerator`` arguments;
- :func:`build_ssdlite`, a builder with keyword-only arguments that raises ``ValueError`` on bad
  values (torchvision's ``ssdlite320_mobilenet_v3_large`` is tied to MobileNetV3);
- :class:`SSDExportRule`, the export rule of ``netadapt export`` (registered for ``ssdlite``):
  ``SSD.postprocess_detections`` as a function of the exported graph's outputs.

Checkpoint key layout of the detector (``SSD.state_dict()``)::

    backbone.body.<base key>                  the base network in its own (torchvision) key format,
                                              e.g. backbone.body.features.14.conv.0.0.weight;
                                              its classifier is dropped (no classifier.* keys)
    backbone.extras.{0..3}.{0,1,2}.{0,1}.*    extra blocks: 1×1 conv, 3×3 depthwise stride 2,
                                              1×1 conv; ".0" the Conv2d, ".1" its BatchNorm2d
    head.classification_head.module_list.{0..5}.{0.0,0.1,1}.*
    head.regression_head.module_list.{0..5}.{0.0,0.1,1}.*
                                              per feature map: 3×3 depthwise conv (0.0) + BN (0.1),
                                              then the 1×1 prediction conv with bias (1)

The anchor generator and the transform hold no tensors.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD
from torchvision.models.detection.ssdlite import SSDLiteHead
from torchvision.ops.misc import Conv2dNormActivation

from netadapt.detectors.common import build_options, check_detection_options, take_over_body
from netadapt.detectors.postprocess import best_detections, box_settings, decode_boxes, top_candidates
from netadapt.hookspecs import hookimpl

if TYPE_CHECKING:
    from netadapt.contracts import DetectorProbe

NAME = "ssdlite"

# Output channels of the four extra blocks after the stride-32 tap (MobileNetV2 paper §6.2).
EXTRA_CHANNELS = (512, 256, 256, 128)

# The anchor size list of FNA's code (DESIGN §1.5), in pixels at 320×320: map k has the square
# boxes min_k and sqrt(min_k·max_k) and, per aspect ratio r, min_k·sqrt(r) × min_k/sqrt(r) and its
# transpose, where max_k = min_{k+1} and the last max is 330.
FNA_ANCHOR_SIZES = (30, 60, 114, 168, 222, 276, 330)
FNA_ANCHOR_REFERENCE = 320
FNA_ASPECT_RATIOS = ([2], [2, 3], [2, 3], [2, 3], [2], [2])

ANCHOR_SCHEMES = ("fna", "torchvision")
DEFAULT_ANCHORS = "fna"

# torchvision's ssdlite uses BN with eps 0.001 and momentum 0.03 for the extras and the head.
DEFAULT_NORM_LAYER: Callable[..., nn.Module] = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)


def extra_block(in_channels: int, out_channels: int, norm_layer: Callable[..., nn.Module]) -> nn.Sequential:
    """1×1 conv to half the output channels → 3×3 depthwise stride 2 → 1×1 conv, each BN + ReLU6.

    torchvision's private ``ssdlite._extra_block``, rebuilt with the public ``Conv2dNormActivation``.
    """
    hidden = out_channels // 2
    block = partial(Conv2dNormActivation, norm_layer=norm_layer, activation_layer=nn.ReLU6)
    return nn.Sequential(
        block(in_channels, hidden, kernel_size=1),
        block(hidden, hidden, kernel_size=3, stride=2, groups=hidden),
        block(hidden, out_channels, kernel_size=1),
    )


def normal_init(module: nn.Module, *, std: float = 0.03) -> None:
    """Conv weights ~ N(0, std), biases 0: torchvision's private ``ssdlite._normal_init``.

    FNA's code starts the extras and the head the same way (DESIGN §1.5, std 0.03).
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.normal_(layer.weight, mean=0.0, std=std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class SSDLiteBackbone(nn.Module):
    """The base network's two taps plus four extra blocks: six feature maps for the SSD head.

    ``body`` is any network with ``forward_taps(x) -> OrderedDict[str, Tensor]`` and
    ``tap_channels: dict[str, int]`` holding two taps, strides 16 and 32, in that order (a base
    network of :mod:`netadapt.bases`). It is kept as ``self.body``, so its state-dict keys appear
    as ``backbone.body.<key>`` in the detector; its classifier is dropped
    (:func:`netadapt.detectors.common.take_over_body`).

    ``forward`` returns an ``OrderedDict``: the taps under their own names, then ``extra1`` ..
    ``extra4`` (at 320×320: 20, 10, 5, 3, 2 and 1 pixels square). ``out_channels`` lists the
    six channel counts.
    """

    def __init__(
        self,
        body: nn.Module,
        *,
        classifier: str | None = "classifier",
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.tap_names = take_over_body(body, classifier=classifier)
        norm_layer = norm_layer or DEFAULT_NORM_LAYER
        self.body = body
        channels = [body.tap_channels[name] for name in self.tap_names]
        in_channels = [channels[-1], *EXTRA_CHANNELS[:-1]]
        self.extras = nn.ModuleList(
            extra_block(c_in, c_out, norm_layer) for c_in, c_out in zip(in_channels, EXTRA_CHANNELS)
        )
        normal_init(self.extras)
        self.out_channels = channels + list(EXTRA_CHANNELS)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        taps = self.body.forward_taps(x)
        features = OrderedDict((name, taps[name]) for name in self.tap_names)
        x = features[self.tap_names[-1]]
        for index, block in enumerate(self.extras, start=1):
            x = block(x)
            features[f"extra{index}"] = x
        return features


def anchor_generator(scheme: str) -> DefaultBoxGenerator:
    """The default boxes of an anchor scheme (``"fna"`` or ``"torchvision"``), sizes relative to the image.

    - ``"torchvision"``: torchvision's ssdlite320 — aspect ratios [2, 3] on every map (6 boxes
      per location), scales spaced linearly from 0.2 to 0.95, box sizes clipped to the image.
    - ``"fna"``: FNA's code (DESIGN §1.5) — ratios [2], [2,3], [2,3], [2,3], [2], [2]
      (4/6/6/6/4/4 boxes). ``DefaultBoxGenerator`` computes map k's boxes from consecutive
      scales: s_k, sqrt(s_k·s_{k+1}) and s_k·sqrt(r) × s_k/sqrt(r) (+ transpose). With
      scales = (30, 60, 114, 168, 222, 276, 330) / 320 this is exactly FNA's min size, its
      sqrt(min·max) square and its ratio boxes at 320×320 (and scales with the input size). Box
      sizes are not clipped (``clip=False``), as in FNA's code: clipping would shrink the last
      map's 390×195 ratio boxes to 320×195. What remains different: box centres sit at
      (i + 0.5)/f_k of the image, whereas FNA's code places them at multiples of per-map strides
      (e.g. 107 for the 3×3 map), less than one pixel apart at 320×320; the order of the boxes
      within a location differs, which does not matter for a head trained from scratch.
    """
    if scheme == "torchvision":
        return DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    if scheme == "fna":
        scales = [size / FNA_ANCHOR_REFERENCE for size in FNA_ANCHOR_SIZES]
        return DefaultBoxGenerator([list(ratios) for ratios in FNA_ASPECT_RATIOS], scales=scales, clip=False)
    raise ValueError(f"unknown anchor scheme {scheme!r}; known: {', '.join(ANCHOR_SCHEMES)}")


def build_ssdlite(
    backbone: nn.Module,
    *,
    num_classes: int,
    input_size: int = 320,
    anchors: str = DEFAULT_ANCHORS,
    score_thresh: float = 0.02,
    nms_thresh: float = 0.6,
    detections_per_img: int = 200,
    topk_candidates: int = 400,
    image_mean: Sequence[float] = (0.5, 0.5, 0.5),
    image_std: Sequence[float] = (0.5, 0.5, 0.5),
    classifier: str | None = "classifier",
    norm_layer: Callable[..., nn.Module] | None = None,
) -> SSD:
    """An SSDLite detector (torchvision ``SSD``) on ``backbone``, a network with detector taps.

    Args:
        backbone: a base network exposing ``forward_taps`` and ``tap_channels`` (two taps);
            it becomes ``model.backbone.body`` (see :class:`SSDLiteBackbone`, ``classifier``).
        num_classes: classes including the background (81 for COCO's 80).
        input_size: images are resized to ``input_size`` × ``input_size`` inside the model.
        anchors: ``"fna"`` (default; 4/6/6/6/4/4 boxes per location) or ``"torchvision"``
            (6 everywhere), see :func:`anchor_generator`. ``"fna"`` is the default because it
            brings MobileNetV2-SSDLite at 320×320 with 81 classes closest to the MobileNetV2
            paper's 4.3M parameters and 0.8B MAdds (4.32M / 0.81B, against 4.48M / 0.85B
            with ``"torchvision"``; :func:`netadapt.detectors.cost.detector_cost`).
        score_thresh: test-time score threshold; 0.02 is FNA's code (DESIGN §1.5).
            torchvision's ssdlite320 uses 0.001, which keeps more low-score boxes for COCO mAP.
        nms_thresh, detections_per_img: NMS IoU and detections kept per image (FNA: 0.6, 200).
        topk_candidates: boxes kept per class before NMS (torchvision SSD's default).
        image_mean, image_std: normalisation of the [0, 1] input images; torchvision's ssdlite
            maps them to [-1, 1], as the MobileNetV2 paper's detector does.
        classifier: attribute of the base's classification head to drop, ``None`` to keep it.
        norm_layer: normalisation of the extras and head; torchvision's ssdlite BN
            (eps 0.001, momentum 0.03) by default.
    """
    check_detection_options(
        num_classes=num_classes, input_size=input_size, score_thresh=score_thresh, nms_thresh=nms_thresh,
        detections_per_img=detections_per_img, topk_candidates=topk_candidates, image_mean=image_mean, image_std=image_std,
    )
    if anchors not in ANCHOR_SCHEMES:
        raise ValueError(f"unknown anchor scheme {anchors!r}; known: {', '.join(ANCHOR_SCHEMES)}")

    norm_layer = norm_layer or DEFAULT_NORM_LAYER
    features = SSDLiteBackbone(backbone, classifier=classifier, norm_layer=norm_layer)
    boxes = anchor_generator(anchors)
    head = SSDLiteHead(features.out_channels, boxes.num_anchors_per_location(), num_classes, norm_layer)
    return SSD(
        features,
        boxes,
        (input_size, input_size),
        num_classes,
        image_mean=list(image_mean),
        image_std=list(image_std),
        head=head,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        topk_candidates=topk_candidates,
    )


class SSDLiteDetector:
    """The ``ssdlite`` detector plugin object."""

    name = NAME
    options = build_options(build_ssdlite)  # train/search.detector_options: name → default

    def build(self, backbone: nn.Module, *, num_classes: int, input_size: int = 320, **options: Any) -> SSD:
        """:func:`build_ssdlite`; ``options`` (``train.detector_options`` / ``search.detector_options``) are its keyword
        arguments (``anchors``, ``score_thresh``, ...), each checked there: an unknown one or a bad value is a ValueError."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"unknown {NAME} option(s) {', '.join(unknown)}; known: {', '.join(self.options)}")
        return build_ssdlite(backbone, num_classes=num_classes, input_size=input_size, **options)


class SSDExportRule:
    """The export rule (:class:`netadapt.contracts.ExportRule`) of torchvision's ``SSD``, SSDLite's model.

    Metadata: ``"scores": "softmax"`` and :func:`~netadapt.detectors.postprocess.box_settings`.
    Post-processing (torchvision's ``SSD.postprocess_detections``), per image, from the outputs
    ``bbox_regression``, ``cls_logits`` and ``anchors``:

    1. decode every anchor's box (:func:`~netadapt.detectors.postprocess.decode_boxes`; weights 10, 10, 5, 5);
    2. scores = softmax of the logits over the classes;
    3. for each class but the background: keep the anchors scoring above ``score_thresh``, then the
       ``topk_candidates`` best of them;
    4. NMS per class (IoU ``nms_thresh``) over all kept boxes, then the ``detections_per_img`` best.
    """

    def postprocess_settings(self, model: nn.Module, probe: DetectorProbe) -> dict[str, Any]:
        return {"scores": "softmax", **box_settings(model)}

    def postprocess(self, outputs: dict[str, torch.Tensor], info: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
        settings = info["postprocess"]
        detections = []
        for deltas, scores in zip(outputs["bbox_regression"], outputs["cls_logits"].softmax(-1), strict=True):
            boxes = decode_boxes(deltas, outputs["anchors"], settings, size=info["input_size"])
            kept_boxes, kept_scores, kept_labels = [], [], []
            for label in range(1, scores.shape[-1]):
                best, indices = top_candidates(scores[:, label], settings)
                kept_boxes.append(boxes[indices])
                kept_scores.append(best)
                kept_labels.append(torch.full_like(indices, label))
            detections.append(best_detections(torch.cat(kept_boxes), torch.cat(kept_scores), torch.cat(kept_labels), settings))
        return detections


@hookimpl
def register_detectors(register) -> None:
    register(NAME, SSDLiteDetector())


@hookimpl
def register_export_rules(register) -> None:
    register(NAME, SSDExportRule())
