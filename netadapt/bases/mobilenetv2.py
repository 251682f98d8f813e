"""MobileNetV2 (Sandler et al., 2018) as a base network of any genotype of its family.

Built-in plugin: registers the base ``mobilenetv2``. The module layout and ``state_dict`` keys
are torchvision's ``mobilenet_v2`` (``features.{i}.conv.{j}...``, ``classifier.1``), so its
weights load as they are; what torchvision's model lacks and this one adds is any kernel size,
expansion ratio and depth per layer (the genotype), ``skip`` layers, and detector taps.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from netadapt.bases.imagenet import torchvision_weights
from netadapt.bases.mobilenet import (
    DepthwiseConvNormActivation,
    InvertedResidualBlock,
    MobileNetFamilyNetwork,
    check_ops,
)
from netadapt.genotype import Genotype, Op, genotype_from_data, make_divisible, scaled_channels
from netadapt.hookspecs import hookimpl

NAME = "mobilenetv2"

# DESIGN §1.1: MobileNetV2 as a genotype.
BASE_STAGES = [
    [[32, 16], ["k3_e1"], 1],
    [[16, 24], ["k3_e6"] * 2, 2],
    [[24, 32], ["k3_e6"] * 3, 2],
    [[32, 64], ["k3_e6"] * 4, 2],
    [[64, 96], ["k3_e6"] * 3, 1],
    [[96, 160], ["k3_e6"] * 3, 2],
    [[160, 320], ["k3_e6"], 1],
]


def unsupported(op: Op) -> list[str]:
    """What MobileNetV2's family lacks of ``op``: squeeze-excitation, Hardswish, fractional expansions."""
    return [
        reason
        for reason, present in (
            ("squeeze-excitation (_se)", op.se),
            ("Hardswish (_hs)", op.hswish),
            (f"a fractional expansion (e{op.expansion:g})", not float(op.expansion).is_integer()),
        )
        if present
    ]


class InvertedResidual(InvertedResidualBlock):
    """MBConv: [1×1 expand] → k×k depthwise → 1×1 project, residual when shape is kept."""

    layers_attribute = "conv"

    def __init__(self, *, in_channels: int, out_channels: int, stride: int, kernel: int, expansion: int) -> None:
        super().__init__()
        hidden = int(round(in_channels * expansion))
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(Conv2dNormActivation(in_channels, hidden, kernel_size=1, activation_layer=nn.ReLU6))
        layers += [
            DepthwiseConvNormActivation(hidden, kernel_size=kernel, stride=stride, activation_layer=nn.ReLU6),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.has_expansion = expansion != 1
        self.hidden_channels = hidden
        self.use_residual = stride == 1 and in_channels == out_channels


class MobileNetV2(MobileNetFamilyNetwork):
    """A MobileNetV2-family classifier built from a genotype, in torchvision's key layout."""

    def __init__(self, genotype: Genotype, *, num_classes: int = 1000, dropout: float = 0.2) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        check_ops(genotype, base=NAME, unsupported=unsupported)
        width = genotype.width_mult
        stem_channels = scaled_channels(genotype.stem_channels, width)
        super().__init__(
            genotype,
            stem=Conv2dNormActivation(3, stem_channels, stride=2, activation_layer=nn.ReLU6),
            stem_channels=stem_channels,
            make_layer=self._layer,
            # torchvision's MobileNetV2 never narrows its last conv (max(1.0, width_mult)): kept for its weights.
            make_head=lambda channels: Conv2dNormActivation(
                channels, make_divisible(genotype.head_channels * max(1.0, width)), kernel_size=1, activation_layer=nn.ReLU6
            ),
            make_classifier=lambda channels: nn.Sequential(nn.Dropout(p=dropout), nn.Linear(channels, num_classes)),
        )

    @staticmethod
    def _layer(op: Op, *, in_channels: int, out_channels: int, stride: int, nominal_in_channels: int) -> nn.Module:
        return InvertedResidual(
            in_channels=in_channels, out_channels=out_channels, stride=stride, kernel=op.kernel, expansion=op.expansion
        )


class MobileNetV2Base:
    """The ``mobilenetv2`` base network plugin object."""

    name = NAME
    classifier_key = "classifier.1.weight"

    def base_genotype(self, *, width_mult: float = 1.0) -> Genotype:
        return genotype_from_data({"base": NAME, "width_mult": width_mult, "stages": BASE_STAGES}, source=NAME)

    def build(self, genotype: Genotype, *, num_classes: int = 1000) -> MobileNetV2:
        return MobileNetV2(genotype, num_classes=num_classes)

    def imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        from torchvision.models import MobileNet_V2_Weights

        return torchvision_weights(MobileNet_V2_Weights.IMAGENET1K_V1, base=NAME)


@hookimpl
def register_bases(register) -> None:
    register(NAME, MobileNetV2Base())
