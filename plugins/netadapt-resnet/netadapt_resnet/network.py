"""ResNets (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) built from a genotype.

The module layout and ``state_dict`` keys are torchvision's ``resnet18`` / ``resnet50``
(``conv1``, ``bn1``, ``layer{s}.{j}.conv1``, ``...downsample.{0,1}``, ``fc``), so its weights
load as they are, and the blocks run torchvision's own ``BasicBlock`` / ``Bottleneck`` forward
passes. What torchvision's ResNet lacks and this one adds is a kernel size and an inner width per
block (the genotype), any depth and channels per stage, ``skip`` blocks, and detector taps.

A genotype of the family is the four stages ``[[c_in, c_out], [ops], stride]`` after the stem
(7×7 conv with stride 2 to the first stage's ``c_in``, BN, ReLU, 3×3 max-pool with stride 2). Its
op ``k<K>_e<E>`` (netadapt's op grammar, :func:`netadapt.genotype.parse_op`) is one residual
block; the base network fixes the block type:

- ``resnet18``, basic block: K×K conv (stride) ``c_in → w``, BN, ReLU, K×K conv ``w → c_out``, BN;
- ``resnet50``, bottleneck (v1.5, stride on the K×K conv): 1×1 conv ``c_in → w``, BN, ReLU, K×K conv
  (stride) ``w → w``, BN, ReLU, 1×1 conv ``w → c_out``, BN;

plus the block's input — through ``downsample`` (1×1 conv with the stride, BN) where the stride or
the channels change —, then ReLU. The inner width ``w = round(E · c_out)`` (basic) or
``round(E · c_out / 4)`` (bottleneck): E is the width relative to the plain ResNet block, i.e.
torchvision's ``width_per_group / 64``, so ``k3_e1`` is ResNet's block in both and ``k3_e2`` on
``resnet50`` is ``wide_resnet50_2``'s. ``skip`` is the identity (not a stage's first op). ``_se``,
``_hs``, ``width_mult`` other than 1 and inner widths that round to 0 are refused with one line
naming the layer.

Detector taps: ``stride16`` is the input of the stage that takes the network from stride 16 to 32
(``layer3``'s output in ResNet-18/50: C4), ``stride32`` the last stage's output (C5).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models import resnet

from netadapt.bases.imagenet import torchvision_weights
from netadapt.bases.mobilenet import TAP_STRIDE16, TAP_STRIDE32, check_ops
from netadapt.errors import GenotypeError
from netadapt.genotype import Genotype, Op, genotype_from_data


class Conv2d(nn.Conv2d):
    """A ResNet convolution: its own type, so that remapping divides duplicated input channels
    (Net2Net, :mod:`netadapt_resnet.remap`)."""


class Linear(nn.Linear):
    """The ResNet classifier: its own type for the same reason as :class:`Conv2d`."""


def conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> Conv2d:
    return Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False)


def downsample(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """torchvision's projection shortcut (1×1 conv with the stride, BN), where the block changes shape."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(conv(in_channels, out_channels, 1, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(resnet.BasicBlock):
    """torchvision's ``BasicBlock`` (its forward) with K×K convs and inner width ``width``."""

    width_divisor = 1  # w = E · c_out

    def __init__(self, *, in_channels: int, width: int, out_channels: int, stride: int, kernel: int) -> None:
        nn.Module.__init__(self)  # torchvision's __init__ fixes 3×3 convs and the width
        self.conv1 = conv(in_channels, width, kernel, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(width, out_channels, kernel)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = downsample(in_channels, out_channels, stride)
        self.stride = stride


class Bottleneck(resnet.Bottleneck):
    """torchvision's ``Bottleneck`` (its forward) with a K×K middle conv and inner width ``width``."""

    width_divisor = 4  # w = E · c_out / 4

    def __init__(self, *, in_channels: int, width: int, out_channels: int, stride: int, kernel: int) -> None:
        nn.Module.__init__(self)
        self.conv1 = conv(in_channels, width, 1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv(width, width, kernel, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv(width, out_channels, 1)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample(in_channels, out_channels, stride)
        self.stride = stride


def unsupported(op: Op) -> list[str]:
    """What the ResNet family lacks of ``op``: squeeze-excitation and Hardswish."""
    return [reason for reason, present in (("squeeze-excitation (_se)", op.se), ("Hardswish (_hs)", op.hswish)) if present]


class ResNet(nn.Module):
    """A ResNet-family classifier built from a genotype, in torchvision's key layout (module docstring)."""

    def __init__(self, genotype: Genotype, *, block: type[BasicBlock | Bottleneck], base: str, num_classes: int = 1000) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        check_ops(genotype, base=base, unsupported=unsupported)
        if genotype.width_mult != 1.0:
            raise GenotypeError(f"base {base} has no width_mult (got {genotype.width_mult:g}): write the channels in the stages")
        self.conv1 = conv(3, genotype.stem_channels, 7, 2)
        self.bn1 = nn.BatchNorm2d(genotype.stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer_paths: list[list[str | None]] = []
        self.tap_stage: int | None = None  # index of the stage whose input is the stride-16 tap
        stride = 4
        for s, stage in enumerate(genotype.stages):
            blocks: list[nn.Module] = []
            for i, op in enumerate(stage.ops):
                width = 0 if op.is_skip else round(op.expansion * stage.c_out / block.width_divisor)
                if not op.is_skip and width < 1:
                    raise GenotypeError(f"base {base} cannot build stage {s + 1}, op {i + 1} ({op.name}): its inner width rounds to 0 channels")
                blocks.append(
                    nn.Identity()
                    if op.is_skip
                    else block(
                        in_channels=stage.c_in if i == 0 else stage.c_out, width=width, out_channels=stage.c_out,
                        stride=stage.stride if i == 0 else 1, kernel=op.kernel,
                    )
                )
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
            self.layer_paths.append([None if op.is_skip else f"layer{s + 1}.{i}" for i, op in enumerate(stage.ops)])
            if stride == 16 and stage.stride == 2 and self.tap_stage is None:
                self.tap_stage = s
            stride *= stage.stride
        self.output_stride = stride
        if stride != 32:
            self.tap_stage = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = Linear(genotype.stages[-1].c_out, num_classes)
        self.genotype = genotype
        # Parts outside the searched stages, by label: remapped by path, shown apart in cost reports;
        # "classifier" is what detectors and super networks drop.
        self.part_paths = {"stem conv": "conv1", "stem BN": "bn1", "classifier": "fc"}
        for module in self.modules():  # torchvision's ResNet initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{s + 1}") for s in range(len(self.layer_paths))]

    @property
    def tap_channels(self) -> dict[str, int]:
        """Channels of each detector tap (empty when the genotype does not end at stride 32)."""
        if self.tap_stage is None:
            return {}
        return {TAP_STRIDE16: self.genotype.stages[self.tap_stage].c_in, TAP_STRIDE32: self.genotype.stages[-1].c_out}

    def forward_taps(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Detector features: ``stride16`` (C4) and ``stride32`` (C5)."""
        if self.tap_stage is None:
            raise ValueError(f"genotype does not end at output stride 32 (it reaches {self.output_stride}); no detector taps")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        taps: OrderedDict[str, torch.Tensor] = OrderedDict()
        for s, stage in enumerate(self.stages):
            if s == self.tap_stage:
                taps[TAP_STRIDE16] = x
            x = stage(x)
        taps[TAP_STRIDE32] = x
        return taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages:
            x = stage(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ResNetBase:
    """A ResNet base network plugin object (see ``netadapt.bases``): ``resnet18`` or ``resnet50``."""

    classifier_key = "fc.weight"
    default_search_space = "fna-resnet"

    def __init__(self, name: str, *, block: type[BasicBlock | Bottleneck], stages: list, weights: str) -> None:
        self.name, self.block, self.stages, self.weights = name, block, stages, weights

    def base_genotype(self, *, width_mult: float = 1.0) -> Genotype:
        data = {"base": self.name, "width_mult": width_mult, "head_channels": self.stages[-1][0][1], "stages": self.stages}
        return genotype_from_data(data, source=self.name)

    def build(self, genotype: Genotype, *, num_classes: int = 1000) -> ResNet:
        return ResNet(genotype, block=self.block, base=self.name, num_classes=num_classes)

    def imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        # IMAGENET1K_V1: the weights torchvision's detection models (retinanet_resnet50_fpn) start from.
        from torchvision import models

        return torchvision_weights(getattr(models, self.weights).IMAGENET1K_V1, base=self.name)


def _stages(channels: list[int], depths: list[int]) -> list:
    strides = [1, 2, 2, 2]
    return [[[c_in, c_out], ["k3_e1"] * depth, stride] for c_in, c_out, depth, stride in zip(channels, channels[1:], depths, strides)]


# The head_channels field of these genotypes is the last stage's width: a ResNet has no head conv.
RESNET18 = ResNetBase("resnet18", block=BasicBlock, stages=_stages([64, 64, 128, 256, 512], [2, 2, 2, 2]), weights="ResNet18_Weights")
RESNET50 = ResNetBase("resnet50", block=Bottleneck, stages=_stages([64, 256, 512, 1024, 2048], [3, 4, 6, 3]), weights="ResNet50_Weights")
