"""What every base network of the MobileNet family shares (MobileNetV2, and plugins such as MobileNetV3).

:class:`MobileNetFamilyNetwork` lays a genotype out as torchvision's MobileNets do —
``features.0`` the stem, ``features.1..n`` one block per genotype op (``skip`` an
``nn.Identity``), ``features.{n+1}`` the 1×1 head conv, then ``classifier`` — and gives what
remapping, cost reports and detectors read from a base network (``netadapt.bases``):
``layer_paths``, ``part_paths``, ``tap_channels`` and ``forward_taps``. A family's subclass
builds its own stem, blocks, head conv and classifier; its blocks expose ``hidden_channels`` and
``forward_with_expansion`` for the stride-16 tap. Also here: the channel rounding of the MobileNets.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn
from torchvision.ops.misc import ConvNormActivation

from netadapt.errors import GenotypeError
from netadapt.genotype import Genotype, Op, scaled_channels

# Tap names, smallest stride first (DESIGN §1.5, "SSDLite"): the expansion output (after BN and
# activation) of the first block of the stage that reaches stride 32, and the head conv.
TAP_STRIDE16 = "stride16"
TAP_STRIDE32 = "stride32"


class DepthwiseConv2d(nn.Conv2d):
    """A Conv2d with ``groups == in_channels == out_channels``.

    Its own type so that remapping rules treat depthwise convolution as its own case.
    """


class DepthwiseConvNormActivation(ConvNormActivation):
    """Depthwise conv → norm → activation (torchvision's Conv2dNormActivation with a DepthwiseConv2d)."""

    def __init__(
        self,
        channels: int,
        *,
        kernel_size: int,
        stride: int,
        activation_layer: Callable[..., nn.Module],
        norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__(
            channels,
            channels,
            kernel_size=kernel_size,
            stride=stride,
            groups=channels,
            norm_layer=norm_layer,
            activation_layer=activation_layer,
            conv_layer=DepthwiseConv2d,
        )


class InvertedResidualBlock(nn.Module):
    """The forward passes of the family's blocks: a sequence [1×1 expansion conv] → the rest,
    plus the input when the block keeps its shape.

    A subclass builds the sequence under its torchvision attribute name, given as
    ``layers_attribute`` (``conv`` in MobileNetV2, ``block`` in MobileNetV3), and sets
    ``has_expansion``, ``hidden_channels`` and ``use_residual``.
    """

    layers_attribute: str
    has_expansion: bool
    hidden_channels: int
    use_residual: bool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = getattr(self, self.layers_attribute)(x)
        return x + out if self.use_residual else out

    def forward_with_expansion(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output and its expansion output (its input when it has no expansion)."""
        layers = getattr(self, self.layers_attribute)
        expanded = layers[0](x) if self.has_expansion else x
        out = (layers[1:] if self.has_expansion else layers)(expanded)
        return (x + out if self.use_residual else out), expanded


# make_layer(op, in_channels=, out_channels=, stride=, nominal_in_channels=) -> block; channels are
# width-scaled, ``nominal_in_channels`` is the genotype's (unscaled) input width of the block.
LayerBuilder = Callable[..., nn.Module]


class MobileNetFamilyNetwork(nn.Module):
    """A classifier of the MobileNet family built from a genotype, in torchvision's key layout.

    Subclasses call ``super().__init__`` with their family's ``stem`` (giving ``stem_channels``),
    ``make_layer`` (one block per non-skip op, see :data:`LayerBuilder`), ``make_head`` (the 1×1
    head conv from the last stage's channels, a module with ``out_channels``) and
    ``make_classifier`` (from the head's channels). Stage channels are
    ``scaled_channels(c, width_mult)`` (:mod:`netadapt.genotype`: genotype channels are nominal).
    """

    def __init__(
        self,
        genotype: Genotype,
        *,
        stem: nn.Module,
        stem_channels: int,
        make_layer: LayerBuilder,
        make_head: Callable[[int], nn.Module],
        make_classifier: Callable[[int], nn.Module],
    ) -> None:
        super().__init__()
        width = genotype.width_mult
        channels = stem_channels
        features: list[nn.Module] = [stem]
        self.layer_paths: list[list[str | None]] = []
        self.tap_index: int | None = None
        stride = 2
        for stage in genotype.stages:
            out_channels = scaled_channels(stage.c_out, width)
            paths: list[str | None] = []
            for position, op in enumerate(stage.ops):
                first = position == 0
                if first and stride == 16 and stage.stride == 2 and self.tap_index is None:
                    self.tap_index = len(features)
                features.append(
                    nn.Identity()
                    if op.is_skip
                    else make_layer(
                        op,
                        in_channels=channels,
                        out_channels=out_channels,
                        stride=stage.stride if first else 1,
                        nominal_in_channels=stage.c_in if first else stage.c_out,
                    )
                )
                paths.append(None if op.is_skip else f"features.{len(features) - 1}")
                channels = out_channels
            stride *= stage.stride
            self.layer_paths.append(paths)
        head = make_head(channels)
        self.last_channels: int = head.out_channels
        features.append(head)
        self.features = nn.Sequential(*features)
        self.classifier = make_classifier(self.last_channels)
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

    def _init_weights(self) -> None:
        # torchvision's MobileNetV2 and MobileNetV3 initialisation.
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

    def forward_taps(
        self, x: torch.Tensor, *, start: int = 0, before: Callable[[int, torch.Tensor], None] | None = None
    ) -> OrderedDict[str, torch.Tensor]:
        """Detector features: ``stride16`` (expansion output of the first stride-32 block) and ``stride32``.

        ``start > 0``: ``x`` is the input of ``features[start]`` and the layers before it are not run (a tap they
        would give is left out); ``before(index, input)`` sees the input of every layer run. The remap-aware score
        keeps the base's inputs and runs a changed network only from its first changed layer (:mod:`netadapt.select.score`).
        """
        if self.tap_index is None:
            raise ValueError(f"genotype never reaches output stride 32 from 16 (it reaches {self.output_stride}); no detector taps")
        taps: OrderedDict[str, torch.Tensor] = OrderedDict()
        for index, layer in enumerate(self.features):
            if index < start:
                continue
            if before is not None:
                before(index, x)
            if index == self.tap_index:
                x, taps[TAP_STRIDE16] = layer.forward_with_expansion(x)
            else:
                x = layer(x)
        taps[TAP_STRIDE32] = x
        return taps


def check_ops(genotype: Genotype, *, base: str, unsupported: Callable[[Op], list[str]]) -> None:
    """Refuse the first op a base cannot build: ``unsupported(op)`` lists what the base lacks of it
    (empty when the base builds it); one :class:`~netadapt.errors.GenotypeError` line names the layer."""
    for s, i, op in genotype.layers():
        reasons = [] if op.is_skip else unsupported(op)
        if reasons:
            raise GenotypeError(
                f"base {base} cannot build stage {s + 1}, op {i + 1} ({op.name}): {' and '.join(reasons)} "
                "is not part of its family (another base network may build it)"
            )
