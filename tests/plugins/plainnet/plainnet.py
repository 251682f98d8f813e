"""The ``plainnet`` base network, written from docs/writing-a-plugin.md alone (issue 12).

torchvision's MNASNet layout: one flat ``layers`` sequence holds the stem (conv, BN, ReLU) and the
first layer — a depthwise-separable conv, five modules side by side — then one block per op.
Depthwise convs are plain ``nn.Conv2d(C, C, k, groups=C)``; no netadapt module type is used.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from netadapt.errors import GenotypeError, WeightsError
from netadapt.genotype import Genotype, genotype_from_data
from netadapt.hookspecs import hookimpl

NAME = "plainnet"
STAGES = [
    [[16, 16], ["k3_e1"], 1],
    [[16, 24], ["k3_e3", "k3_e3"], 2],
    [[24, 32], ["k3_e3", "k3_e3"], 2],
    [[32, 48], ["k5_e3", "k3_e3"], 2],
    [[48, 64], ["k3_e3"], 2],
]


def conv_bn(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, *, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    modules = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return modules + [nn.ReLU(inplace=True)] if relu else modules


class Block(nn.Module):
    """1×1 expansion → k×k depthwise → 1×1 projection, plus the input when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, *, kernel: int, expansion: float, stride: int) -> None:
        super().__init__()
        hidden = round(c_in * expansion)
        self.conv = nn.Sequential(
            *conv_bn(c_in, hidden), *conv_bn(hidden, hidden, kernel, stride, groups=hidden), *conv_bn(hidden, c_out, relu=False)
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class PlainNet(nn.Module):
    def __init__(self, genotype: Genotype, *, num_classes: int) -> None:
        super().__init__()
        first, op = genotype.stages[0], genotype.stages[0].ops[0]
        if op.expansion != 1 or op.se or op.hswish or genotype.width_mult != 1:
            raise GenotypeError(f"{NAME}: the first op is a plain depthwise-separable conv (k<n>_e1) at width 1, got {op.name}")
        modules = conv_bn(3, first.c_in, 3, 2) + conv_bn(first.c_in, first.c_in, op.kernel, first.stride, groups=first.c_in)
        modules += conv_bn(first.c_in, first.c_out, relu=False)
        self.layer_paths: list[list[str | tuple[str, ...] | None]] = [[] for _ in genotype.stages]
        self.tap_channels: dict[str, int] = {}
        self.tap_index, stride = None, 2
        for s, stage in enumerate(genotype.stages):
            for i, op in enumerate(stage.ops):
                if i == 0 and stride == 16 and stage.stride == 2:  # the stride-16 tap: this block's input
                    self.tap_index, self.tap_channels["stride16"] = len(modules), stage.c_in
                if s == i == 0:  # the first layer: modules 3 to 7 of `layers`, built above
                    self.layer_paths[0].append(tuple(f"layers.{j}" for j in range(3, 8)))
                    continue
                c_in, block_stride = (stage.c_in, stage.stride) if i == 0 else (stage.c_out, 1)
                modules.append(nn.Identity() if op.is_skip else Block(c_in, stage.c_out, kernel=op.kernel, expansion=op.expansion, stride=block_stride))
                self.layer_paths[s].append(None if op.is_skip else f"layers.{len(modules) - 1}")
            stride *= stage.stride
        self.layers = nn.Sequential(*modules)
        self.head = nn.Sequential(*conv_bn(genotype.stages[-1].c_out, genotype.head_channels))
        self.classifier = nn.Linear(genotype.head_channels, num_classes)
        self.part_paths = {"stem": ("layers.0", "layers.1"), "head": "head", "classifier": "classifier"}
        if stride == 32:
            self.tap_channels["stride32"] = genotype.head_channels
        else:
            self.tap_index, self.tap_channels = None, {}

    def forward_taps(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        if self.tap_index is None:
            raise ValueError(f"{NAME}: the genotype does not reach stride 32 from 16; no detector taps")
        taps: OrderedDict[str, torch.Tensor] = OrderedDict()
        for index, module in enumerate(self.layers):
            if index == self.tap_index:
                taps["stride16"] = x
            x = module(x)
        taps["stride32"] = self.head(x)
        return taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.layers(x)).mean((2, 3)))


class PlainNetBase:
    name = NAME
    classifier_key = "classifier.weight"

    def base_genotype(self, *, width_mult: float = 1.0) -> Genotype:
        return genotype_from_data({"base": NAME, "width_mult": width_mult, "head_channels": 256, "stages": STAGES}, source=NAME)

    def build(self, genotype: Genotype, *, num_classes: int = 1000) -> PlainNet:
        return PlainNet(genotype, num_classes=num_classes)

    def imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        raise WeightsError(f"{NAME} has no ImageNet weights: pass --weights FILE or --weights none")


@hookimpl
def register_bases(register) -> None:
    register(NAME, PlainNetBase())
