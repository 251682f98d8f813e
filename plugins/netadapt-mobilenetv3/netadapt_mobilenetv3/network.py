"""MobileNetV3-Large (Howard et al., 2019) as a base network of any genotype of its family.

The module layout and ``state_dict`` keys are torchvision's ``mobilenet_v3_large``
(``features.{i}.block.{j}...``, squeeze-excitation at ``block.N.fc1``/``fc2``, ``classifier.0``
and ``classifier.3``), so its weights load as they are. What torchvision's model lacks and this
one adds is any kernel size, expansion ratio, depth, squeeze-excitation and activation per layer
(the genotype), ``skip`` layers, and detector taps.

A bneck block (the paper's §5.3, Table 1) is the op ``k<K>_e<E>[_se][_hs]``: hidden width
``make_divisible(E · c_in · width_mult, 8)`` as torchvision's ``adjust_channels`` computes the
"exp size" of Table 1 (``E · c_in`` exactly at width 1 for every block of the base: 80 → 200 is
``e2.5``, 80 → 184 ``e2.3``); no expansion conv where the hidden width equals the input width;
``_se`` adds squeeze-and-excitation with ``make_divisible(hidden // 4, 8)`` squeeze channels and
a hard-sigmoid gate; ``_hs`` uses Hardswish where the block would use ReLU. The stem
(16 channels) and the head conv (960) use Hardswish, the classifier is
Linear(960, 1280)-Hardswish-Dropout-Linear(1280, classes), every BN has eps 0.001 (torchvision's).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation, SqueezeExcitation

from netadapt.bases.imagenet import torchvision_weights
from netadapt.bases.mobilenet import (
    DepthwiseConvNormActivation,
    InvertedResidualBlock,
    MobileNetFamilyNetwork,
)
from netadapt.genotype import Genotype, Op, genotype_from_data, make_divisible, scaled_channels

NAME = "mobilenetv3"

# MobileNetV3-Large (the paper's Table 1, torchvision's mobilenet_v3_large) as a genotype: the
# bnecks grouped into stages by output channels and stride.
BASE_STAGES = [
    [[16, 16], ["k3_e1"], 1],
    [[16, 24], ["k3_e4", "k3_e3"], 2],
    [[24, 40], ["k5_e3_se"] * 3, 2],
    [[40, 80], ["k3_e6_hs", "k3_e2.5_hs", "k3_e2.3_hs", "k3_e2.3_hs"], 2],
    [[80, 112], ["k3_e6_se_hs"] * 2, 1],
    [[112, 160], ["k5_e6_se_hs"] * 3, 2],
]
HEAD_CHANNELS = 960  # the last 1×1 conv
CLASSIFIER_CHANNELS = 1280  # the classifier's hidden layer (scaled by width_mult, as torchvision does)

# torchvision's MobileNetV3 BN (eps 0.001, momentum 0.01); eps matters for equal outputs.
NORM_LAYER = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)


class InvertedResidual(InvertedResidualBlock):
    """bneck: [1×1 expand] → k×k depthwise → [squeeze-excitation] → 1×1 project, residual when shape is kept."""

    layers_attribute = "block"

    def __init__(
        self, *, in_channels: int, hidden_channels: int, out_channels: int, stride: int, kernel: int, se: bool, hswish: bool
    ) -> None:
        super().__init__()
        activation = nn.Hardswish if hswish else nn.ReLU
        layers: list[nn.Module] = []
        self.has_expansion = hidden_channels != in_channels
        if self.has_expansion:
            layers.append(
                Conv2dNormActivation(in_channels, hidden_channels, kernel_size=1, norm_layer=NORM_LAYER, activation_layer=activation)
            )
        layers.append(
            DepthwiseConvNormActivation(hidden_channels, kernel_size=kernel, stride=stride, activation_layer=activation, norm_layer=NORM_LAYER)
        )
        if se:
            squeeze = make_divisible(hidden_channels // 4, 8)
            layers.append(SqueezeExcitation(hidden_channels, squeeze, scale_activation=nn.Hardsigmoid))
        layers.append(Conv2dNormActivation(hidden_channels, out_channels, kernel_size=1, norm_layer=NORM_LAYER, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.hidden_channels = hidden_channels
        self.use_residual = stride == 1 and in_channels == out_channels


class MobileNetV3(MobileNetFamilyNetwork):
    """A MobileNetV3-family classifier built from a genotype, in torchvision's key layout."""

    def __init__(self, genotype: Genotype, *, num_classes: int = 1000, dropout: float = 0.2) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        width = genotype.width_mult
        stem_channels = scaled_channels(genotype.stem_channels, width)
        hidden = make_divisible(CLASSIFIER_CHANNELS * width)
        super().__init__(
            genotype,
            stem=Conv2dNormActivation(3, stem_channels, stride=2, norm_layer=NORM_LAYER, activation_layer=nn.Hardswish),
            stem_channels=stem_channels,
            make_layer=partial(self._layer, width=width),
            make_head=lambda channels: Conv2dNormActivation(
                channels, scaled_channels(genotype.head_channels, width), kernel_size=1, norm_layer=NORM_LAYER,
                activation_layer=nn.Hardswish,
            ),
            make_classifier=lambda channels: nn.Sequential(
                nn.Linear(channels, hidden), nn.Hardswish(inplace=True), nn.Dropout(p=dropout, inplace=True), nn.Linear(hidden, num_classes)
            ),
        )

    @staticmethod
    def _layer(op: Op, *, in_channels: int, out_channels: int, stride: int, nominal_in_channels: int, width: float) -> nn.Module:
        # Rounded to 6 places: the exact product (the paper's exp size), not its floating-point error
        # (1.14 · 200 is 227.99999999999997, which would round to 224 where 228 rounds to 232).
        exp_size = round(op.expansion * nominal_in_channels * width, 6)
        return InvertedResidual(
            in_channels=in_channels,
            hidden_channels=make_divisible(exp_size),
            out_channels=out_channels,
            stride=stride,
            kernel=op.kernel,
            se=op.se,
            hswish=op.hswish,
        )


class MobileNetV3Base:
    """The ``mobilenetv3`` base network plugin object (see ``netadapt.bases``)."""

    name = NAME
    classifier_key = "classifier.3.weight"
    default_search_space = "fna-mobilenetv3"

    def base_genotype(self, *, width_mult: float = 1.0) -> Genotype:
        data = {"base": NAME, "width_mult": width_mult, "head_channels": HEAD_CHANNELS, "stages": BASE_STAGES}
        return genotype_from_data(data, source=NAME)

    def build(self, genotype: Genotype, *, num_classes: int = 1000) -> MobileNetV3:
        return MobileNetV3(genotype, num_classes=num_classes)

    def imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        # IMAGENET1K_V1: the backbone weights torchvision's ssdlite320_mobilenet_v3_large starts from.
        from torchvision.models import MobileNet_V3_Large_Weights

        return torchvision_weights(MobileNet_V3_Large_Weights.IMAGENET1K_V1, base=NAME)
