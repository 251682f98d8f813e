"""RetinaNet (Lin et al. 2017, "Focal Loss for Dense Object Detection") on any base network with detector taps.

FNA (Fang et al., ICLR 2020) adapts MobileNetV2 to two detectors: SSDLite (netadapt's built-in
``ssdlite``) and RetinaNet, which this module builds. The model is torchvision's ``RetinaNet``
with torchvision's ``RetinaNetHead`` (per branch four 3×3 convs with ReLU, then the prediction
conv; sigmoid focal loss α 0.25, γ 2; L1 box loss), ``AnchorGenerator``,
``FeaturePyramidNetwork`` and ``LastLevelP6P7``. They already do the matching (IoU ≥ 0.5
foreground, < 0.4 background, each box's best anchor kept), the losses, box coding, resizing and
normalisation (``GeneralizedRCNNTransform``) and post-processing (per-level top-k, class-wise
NMS). What torchvision lacks, and this module adds:

- :class:`RetinaNetBackbone`, the feature pyramid over the base's detector taps. torchvision's
  ``BackboneWithFPN`` picks its inputs with ``IntermediateLayerGetter``, by child-module name,
  so it cannot read the taps a netadapt base exposes (``forward_taps``, ``tap_channels``), which
  follow the genotype (576 channels for ``k*_e6`` as the first op of the 160 stage, 288 for
  ``e3``). Ours builds the FPN over the two taps, ``stride16`` and ``stride32``: P4 and P5 from
  the taps, P6 and P7 from P5 by ``LastLevelP6P7`` — four levels, strides 16, 32, 64, 128.
  torchvision's ``fasterrcnn_mobilenet_v3_large_fpn`` also builds its FPN over a MobileNet's
  last two stages only (``backbone_utils._mobilenet_extractor``: ``returned_layers =
  [num_stages - 2, num_stages - 1]``, 256 channels);
- the anchors of those four levels, scaled to the input size (:func:`anchor_sizes`);
- :class:`RetinaNetWithBackground`: netadapt's label 0 is the background, and never a detection
  (:func:`mask_background`, which the export rule, :mod:`netadapt_retinanet.export_rule`, applies too);
- :func:`build_retinanet`, a builder with keyword-only arguments that raises ``ValueError`` on
  bad values (torchvision's ``retinanet_resnet50_fpn`` is tied to a ResNet).

Where it differs from FNA's code (``fna_det/configs/fna_retinanet_fpn_retrain.py``): FNA's FPN
takes the outputs of the 32-, 96- and 320-channel stages (strides 8, 16, 32: P3 to P5) and
computes P6 from C5 (mmdetection's extra convs on the inputs); ours takes the base's detector
taps — the ones SSDLite uses — and computes P6 from P5, as torchvision's
``retinanet_resnet50_fpn`` does (a 3×3 conv from the 1280-channel C5 would add 2.9M
parameters). FNA trains at 1333×800; netadapt's detectors run at a square ``input_size``. The
input is normalised to [-1, 1] (mean = std = 0.5), as netadapt's SSDLite and the demo's
pretrained base expect, not with ImageNet's statistics.

Checkpoint key layout of the detector (``RetinaNet.state_dict()``)::

    backbone.body.<base key>                  the base network in its own (torchvision) key format,
                                              e.g. backbone.body.features.14.conv.0.0.weight;
                                              its classifier is dropped (no classifier.* keys)
    backbone.fpn.inner_blocks.{0,1}.0.*       1×1 lateral convs (with bias) on the stride-16 and
                                              stride-32 taps
    backbone.fpn.layer_blocks.{0,1}.0.*       3×3 output convs: P4, P5
    backbone.fpn.extra_blocks.{p6,p7}.*       3×3 stride-2 convs: P6 from P5, P7 from ReLU(P6)
    head.classification_head.conv.{0..3}.0.*  the four 3×3 convs (".1": the norm layer, when
                                              ``norm_layer`` is given)
    head.classification_head.cls_logits.*     3×3 conv, 9 anchors × num_classes outputs
    head.regression_head.conv.{0..3}.0.*
    head.regression_head.bbox_reg.*           3×3 conv, 9 anchors × 4 outputs

The anchor generator and the transform hold no tensors.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from netadapt.detectors.common import check_detection_options, take_over_body

NAME = "retinanet"

# torchvision's FPN width (retinanet_resnet50_fpn, fasterrcnn_mobilenet_v3_large_fpn) and FNA's.
FPN_CHANNELS = 256

# Strides of the pyramid levels P4, P5 (the taps), P6 and P7 (LastLevelP6P7).
LEVEL_STRIDES = (16, 32, 64, 128)

# torchvision's retinanet anchors (its _default_anchorgen): per level, three sizes a third of an
# octave apart, each with the aspect ratios (height / width) 0.5, 1 and 2 — 9 per location. The
# base size is 4 × the level's stride (the RetinaNet paper, §4: areas 32² to 512² on P3 to P7;
# FNA's code: octave_base_scale=4) on images resized to a short side of 800 pixels
# (torchvision's min_size, FNA's 1333×800); netadapt's square inputs scale them (anchor_sizes).
ANCHOR_SCALE = 4.0
ANCHOR_REFERENCE = 800
SCALES_PER_OCTAVE = 3
ASPECT_RATIOS = (0.5, 1.0, 2.0)


def anchor_sizes(input_size: int, anchor_scale: float = ANCHOR_SCALE) -> tuple[tuple[float, ...], ...]:
    """Anchor sides per level (P4..P7) in pixels of the ``input_size``² model input.

    Level k with stride s_k has the sides ``anchor_scale · s_k · 2^(i/3) · input_size / 800``,
    i = 0, 1, 2. At ``input_size`` 800 these are torchvision's retinanet sizes of those levels,
    (64, 80, 101), (128, 161, 203), (256, 322, 406), (512, 645, 812) — except that torchvision
    rounds 64·2^(1/3) = 80.6 down to 80 and we keep the exact values, as mmdetection (FNA's
    code) does. Smaller inputs scale them, so that they keep their size relative to the image,
    as the objects do (as SSDLite's anchors, :func:`netadapt.detectors.ssdlite.anchor_generator`):
    at 320 they span 26 to 325 pixels (SSDLite's FNA anchors: 30 to 330). Without the scaling,
    P4 to P7 would start at 64 pixels and reach 812 on a 320-pixel image.
    """
    factor = anchor_scale * input_size / ANCHOR_REFERENCE
    return tuple(tuple(factor * stride * 2 ** (i / SCALES_PER_OCTAVE) for i in range(SCALES_PER_OCTAVE)) for stride in LEVEL_STRIDES)


def anchor_generator(input_size: int, anchor_scale: float = ANCHOR_SCALE) -> AnchorGenerator:
    """torchvision's ``AnchorGenerator`` with :func:`anchor_sizes` and the ratios 0.5, 1, 2 on every level.

    ``AnchorGenerator`` rounds the box corners to whole pixels and centres the boxes of a
    location on its top-left pixel (torchvision's convention).
    """
    return AnchorGenerator(anchor_sizes(input_size, anchor_scale), (ASPECT_RATIOS,) * len(LEVEL_STRIDES))


class RetinaNetBackbone(nn.Module):
    """The base network's two taps and a feature pyramid over them: P4 to P7 for the RetinaNet head.

    ``body`` is any network with ``forward_taps(x) -> OrderedDict[str, Tensor]`` and
    ``tap_channels: dict[str, int]`` holding two taps, strides 16 and 32, in that order (a base
    network of :mod:`netadapt.bases`, or a super network). It is kept as ``self.body``, so its
    state-dict keys appear as ``backbone.body.<key>`` in the detector; its classifier is dropped
    (:func:`netadapt.detectors.common.take_over_body`).

    ``forward`` returns the FPN's ``OrderedDict``: P4 and P5 under the taps' names, then ``p6``
    and ``p7`` (at 320×320: 20, 10, 5 and 3 pixels square), each with ``out_channels`` channels.
    """

    def __init__(self, body: nn.Module, *, fpn_channels: int = FPN_CHANNELS, classifier: str | None = "classifier") -> None:
        super().__init__()
        self.tap_names = take_over_body(body, classifier=classifier)
        self.body = body
        self.fpn = FeaturePyramidNetwork(
            [body.tap_channels[name] for name in self.tap_names],
            fpn_channels,
            extra_blocks=LastLevelP6P7(fpn_channels, fpn_channels),  # equal widths: P6 from P5
        )
        self.out_channels = fpn_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        taps = self.body.forward_taps(x)
        return self.fpn(OrderedDict((name, taps[name]) for name in self.tap_names))


def mask_background(logits: torch.Tensor) -> torch.Tensor:
    """``logits`` (classes last) with the background's, class 0, set to −∞: its sigmoid score is 0, below any
    score threshold, so class 0 is never a detection."""
    return logits.index_fill(-1, torch.zeros(1, dtype=torch.long, device=logits.device), -math.inf)


class RetinaNetWithBackground(RetinaNet):
    """torchvision's ``RetinaNet`` whose class 0 is the background, never detected.

    netadapt counts the background as class 0 of ``num_classes`` (as torchvision's SSD does).
    RetinaNet scores every class with its own sigmoid, class 0 too (torchvision's COCO models
    have 91 outputs with index 0 unused): in training class 0 is never a positive, so its score
    only falls, but an untrained or briefly trained head can still rank it, and label 0 is no
    class of the dataset. Its logits are set to −∞ before post-processing, so that it never
    passes the score threshold (:func:`mask_background`).
    """

    def postprocess_detections(self, head_outputs, anchors, image_shapes):
        logits = [mask_background(level) for level in head_outputs["cls_logits"]]
        return super().postprocess_detections(head_outputs | {"cls_logits": logits}, anchors, image_shapes)


def build_retinanet(
    backbone: nn.Module,
    *,
    num_classes: int,
    input_size: int = 320,
    fpn_channels: int = FPN_CHANNELS,
    anchor_scale: float = ANCHOR_SCALE,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    topk_candidates: int = 1000,
    fg_iou_thresh: float = 0.5,
    bg_iou_thresh: float = 0.4,
    image_mean: Sequence[float] = (0.5, 0.5, 0.5),
    image_std: Sequence[float] = (0.5, 0.5, 0.5),
    classifier: str | None = "classifier",
    norm_layer: Callable[..., nn.Module] | None = None,
) -> RetinaNet:
    """A RetinaNet detector (torchvision ``RetinaNet``) on ``backbone``, a network with detector taps.

    Args:
        backbone: a base network exposing ``forward_taps`` and ``tap_channels`` (two taps);
            it becomes ``model.backbone.body`` (see :class:`RetinaNetBackbone`, ``classifier``).
        num_classes: classes including the background (81 for COCO's 80).
        input_size: images are resized to ``input_size`` × ``input_size`` inside the model.
        fpn_channels: width of the pyramid and the head (256: torchvision, FNA).
        anchor_scale: anchor base side in units of the level's stride at an 800-pixel input
            (4: RetinaNet, torchvision, FNA), see :func:`anchor_sizes`.
        score_thresh, nms_thresh, detections_per_img, topk_candidates: test-time score threshold,
            NMS IoU, detections kept per image and boxes kept per level before NMS — FNA's code
            (0.05, 0.5, 100, 1000; torchvision keeps 300 detections).
        fg_iou_thresh, bg_iou_thresh: anchors with IoU ≥ ``fg_iou_thresh`` are positives, below
            ``bg_iou_thresh`` negatives, in between ignored (0.5, 0.4: RetinaNet §4, FNA).
        image_mean, image_std: normalisation of the [0, 1] input images (to [-1, 1] by default,
            as netadapt's SSDLite).
        classifier: attribute of the base's classification head to drop, ``None`` to keep it.
        norm_layer: normalisation in the head's convs; ``None`` (none, with conv biases) is
            torchvision's ``retinanet_resnet50_fpn`` and FNA's, ``partial(nn.GroupNorm, 32)``
            torchvision's ``retinanet_resnet50_fpn_v2``.
    """
    check_detection_options(
        num_classes=num_classes, input_size=input_size, score_thresh=score_thresh, nms_thresh=nms_thresh,
        detections_per_img=detections_per_img, topk_candidates=topk_candidates, image_mean=image_mean, image_std=image_std,
    )
    if isinstance(fpn_channels, bool) or not isinstance(fpn_channels, int) or fpn_channels < 1:
        raise ValueError(f"fpn_channels must be a positive integer, got {fpn_channels!r}")
    if isinstance(anchor_scale, bool) or not isinstance(anchor_scale, (int, float)) or not 0 < anchor_scale < math.inf:
        raise ValueError(f"anchor_scale must be a positive number, got {anchor_scale!r}")
    if not 0.0 < bg_iou_thresh <= fg_iou_thresh <= 1.0:
        raise ValueError(
            f"IoU thresholds must satisfy 0 < bg_iou_thresh ≤ fg_iou_thresh ≤ 1, got bg_iou_thresh={bg_iou_thresh!r}, "
            f"fg_iou_thresh={fg_iou_thresh!r}"
        )

    features = RetinaNetBackbone(backbone, fpn_channels=fpn_channels, classifier=classifier)
    anchors = anchor_generator(input_size, float(anchor_scale))
    head = RetinaNetHead(features.out_channels, anchors.num_anchors_per_location()[0], num_classes, norm_layer=norm_layer)
    return RetinaNetWithBackground(
        features,
        num_classes,
        min_size=input_size,
        max_size=input_size,
        image_mean=list(image_mean),
        image_std=list(image_std),
        anchor_generator=anchors,
        head=head,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        fg_iou_thresh=fg_iou_thresh,
        bg_iou_thresh=bg_iou_thresh,
        topk_candidates=topk_candidates,
        # GeneralizedRCNNTransform: every image to input_size² (as torchvision's SSD), no padding.
        fixed_size=(input_size, input_size),
        size_divisible=1,
    )
