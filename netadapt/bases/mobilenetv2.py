"""MobileNetV2 (Sandler et al., 2018) as a base network of any genotype of its family.

Built-in plugin: registers the base ``mobilenetv2``. The module layout and ``state_dict`` keys
are torchvision's ``mobilenet_v2`` (``features.{i}.conv.{j}...``, ``classifier.1``), so its
weights load as they are; what torchvision's model lacks and this one adds is any kernel size,
expansion ratio and depth per layer (the genotype), ``skip`` layers, and detector taps.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation, ConvNormActivation

from netadapt.errors import WeightsError
from netadapt.genotype import Genotype, Op, genotype_from_data
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

# Tap names, smallest stride first (DESIGN §1.5, "SSDLite"): the expansion output (after
# BN+ReLU6) of the first block of the stage that reaches stride 32, and the final 1×1 conv.
TAP_STRIDE16 = "stride16"
TAP_STRIDE32 = "stride32"


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never below 90% of ``value`` (MobileNetV2's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class DepthwiseConv2d(nn.Conv2d):
    """A Conv2d with ``groups == in_channels == out_channels``.

    Its own type so that remapping rules treat depthwise convolution as its own case.
    """


class DepthwiseConvNormActivation(ConvNormActivation):
    """Depthwise conv → BN → activation (torchvision's Conv2dNormActivation with a DepthwiseConv2d)."""

    def __init__(self, channels: int, *, kernel_size: int, stride: int) -> None:
        super().__init__(
            channels,
            channels,
            kernel_size=kernel_size,
            stride=stride,
            groups=channels,
            activation_layer=nn.ReLU6,
            conv_layer=DepthwiseConv2d,
        )


class InvertedResidual(nn.Module):
    """MBConv: [1×1 expand] → k×k depthwise → 1×1 project, residual when shape is kept."""

    def __init__(self, *, in_channels: int, out_channels: int, stride: int, kernel: int, expansion: int) -> None:
        super().__init__()
        hidden = int(round(in_channels * expansion))
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(Conv2dNormActivation(in_channels, hidden, kernel_size=1, activation_layer=nn.ReLU6))
        layers += [
            DepthwiseConvNormActivation(hidden, kernel_size=kernel, stride=stride),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.has_expansion = expansion != 1
        self.hidden_channels = hidden
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out

    def forward_with_expansion(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output and its expansion output (its input when it has no expansion)."""
        expanded = self.conv[0](x) if self.has_expansion else x
        rest = self.conv[1:] if self.has_expansion else self.conv
        out = rest(expanded)
        return (x + out if self.use_residual else out), expanded


class MobileNetV2(nn.Module):
    """A MobileNetV2-family classifier built from a genotype, in torchvision's key layout."""

    def __init__(self, genotype: Genotype, *, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        width = genotype.width_mult
        channels = make_divisible(genotype.stem_channels * width)
        features: list[nn.Module] = [Conv2dNormActivation(3, channels, stride=2, activation_layer=nn.ReLU6)]
        self.layer_paths: list[list[str | None]] = []
        self.tap_index: int | None = None
        stride = 2
        for stage in genotype.stages:
            out_channels = make_divisible(stage.c_out * width)
            paths: list[str | None] = []
            for position, op in enumerate(stage.ops):
                first = position == 0
                if first and stride == 16 and stage.stride == 2 and self.tap_index is None:
                    self.tap_index = len(features)
                features.append(self._layer(op, channels, out_channels, stage.stride if first else 1))
                paths.append(None if op.is_skip else f"features.{len(features) - 1}")
                channels = out_channels
            stride *= stage.stride
            self.layer_paths.append(paths)
        self.last_channels = make_divisible(genotype.head_channels * max(1.0, width))
        features.append(Conv2dNormActivation(channels, self.last_channels, kernel_size=1, activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channels, num_classes))
        self.genotype = genotype
        # Parts outside the searched stages, by label (cost reports show them apart).
        self.part_paths = {"stem": "features.0", "head conv": f"features.{len(features) - 1}", "classifier": "classifier"}
        self.output_stride = stride
        self._init_weights()

    @property
    def tap_channels(self) -> dict[str, int]:
        """Channels of each detector tap (empty when the genotype never reaches stride 32)."""
        if self.tap_index is None:
            return {}
        return {TAP_STRIDE16: self.features[self.tap_index].hidden_channels, TAP_STRIDE32: self.last_channels}

    @staticmethod
    def _layer(op: Op, in_channels: int, out_channels: int, stride: int) -> nn.Module:
        if op.is_skip:
            return nn.Identity()
        return InvertedResidual(
            in_channels=in_channels, out_channels=out_channels, stride=stride, kernel=op.kernel, expansion=op.expansion
        )

    def _init_weights(self) -> None:
        # torchvision's MobileNetV2 initialisation.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)

    def forward_taps(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Detector features: ``stride16`` (expansion output of the first stride-32 block) and ``stride32``."""
        if self.tap_index is None:
            raise ValueError(f"genotype never reaches output stride 32 from 16 (it reaches {self.output_stride}); no detector taps")
        taps: OrderedDict[str, torch.Tensor] = OrderedDict()
        for index, layer in enumerate(self.features):
            if index == self.tap_index:
                x, taps[TAP_STRIDE16] = layer.forward_with_expansion(x)
            else:
                x = layer(x)
        taps[TAP_STRIDE32] = x
        return taps


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

        weights = MobileNet_V2_Weights.IMAGENET1K_V1
        try:
            return weights.get_state_dict(progress=False)
        except Exception as error:  # URLError, socket errors, hash mismatch: all mean "no weights here"
            raise WeightsError(
                f"cannot fetch ImageNet weights for {NAME} from {weights.url} ({type(error).__name__}: {error}); "
                "this machine may be offline: download the file elsewhere and pass it with --weights PATH"
            ) from None


@hookimpl
def register_bases(register) -> None:
    register(NAME, MobileNetV2Base())
