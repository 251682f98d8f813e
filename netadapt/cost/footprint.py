"""What a network would allocate, from its genotype alone: sizes are refused before they allocate.

A typo or a crafted file (``--set train.input_size=100000``, ``--num-classes 10000000``, a genotype
whose every value is in bounds but that holds terabytes of weights, a checkpoint whose
``spec.input_size`` is 200000) would otherwise allocate until the machine swaps or the kernel kills
the process. :func:`genotype_footprint` counts, without building anything, the parameters and the
per-image activations of a genotype's layers (each op an MBConv block: expansion, depthwise and
projection, their BatchNorms; the stem and the final 1×1 conv) and, for a detector, of an
SSDLite-like head (six anchors per location on taps at strides 16 to 512, one output per class
and box coordinate). It is a lower bound of what torch allocates (each layer's output counted once, no
workspace, no copies for the backward pass), so :func:`check_memory`, which refuses what exceeds this
machine's memory, never refuses a run that fits; the sizes it is for exceed it by orders of magnitude.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from netadapt.errors import ConfigError

FLOAT_BYTES = 4
FINAL_CHANNELS = 1280  # MobileNetV2's last 1×1 conv
HEAD_STRIDES = (16, 32, 64, 128, 256, 512)  # SSDLite's six feature maps
HEAD_CHANNELS = (576, 1280, 512, 256, 256, 128)
ANCHORS_PER_LOCATION = 6


@dataclass(frozen=True)
class Footprint:
    parameters: int  # numbers held by the network
    activations: int  # numbers one image's forward pass produces, layer by layer

    def bytes(self, *, batch: int = 1, training: bool = False) -> int:
        """At least this many bytes: weights (with their gradients when training) and ``batch`` images' activations."""
        return (self.parameters * (2 if training else 1) + self.activations * batch) * FLOAT_BYTES


def genotype_footprint(genotype: Any, *, input_size: int, num_classes: int = 1000, detector: bool = False) -> Footprint:
    """The :class:`Footprint` of ``genotype`` at ``input_size`` (a classifier of ``num_classes``, or a detector's
    backbone and head with ``detector``); nothing is built."""
    side = math.ceil(input_size / 2)  # the stem: 3×3 conv, stride 2
    first = genotype.stages[0].c_in if genotype.stages else 32
    parameters, activations = 27 * first + 2 * first, first * side * side
    channels = first
    for stage in genotype.stages:
        for index, op in enumerate(stage.ops):
            stride = stage.stride if index == 0 else 1
            c_in = stage.c_in if index == 0 else stage.c_out
            out_side = math.ceil(side / stride)
            if op.is_skip:
                side = out_side
                continue
            hidden = max(1, round(c_in * float(op.expansion)))
            expand = c_in * hidden + 2 * hidden if hidden != c_in else 0
            parameters += expand + op.kernel * op.kernel * hidden + 2 * hidden + hidden * stage.c_out + 2 * stage.c_out
            activations += (hidden * side * side if expand else 0) + (hidden + stage.c_out) * out_side * out_side
            side = out_side
        channels = stage.c_out
    parameters += channels * FINAL_CHANNELS + 2 * FINAL_CHANNELS
    activations += FINAL_CHANNELS * side * side
    if detector:
        outputs = ANCHORS_PER_LOCATION * (num_classes + 4)
        for stride, tap in zip(HEAD_STRIDES, HEAD_CHANNELS):
            locations = math.ceil(input_size / stride) ** 2
            parameters += tap * (9 + outputs)  # depthwise 3×3, then 1×1 to every anchor's classes and box
            activations += locations * (tap + outputs)
    else:
        parameters += FINAL_CHANNELS * num_classes
        activations += num_classes
    return Footprint(parameters, activations)


def machine_memory() -> int:
    """This machine's physical memory in bytes (0 when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_memory(needed: int, *, what: str) -> None:
    """Refuse ``what`` (a phrase naming the option or file) when it would need more than this machine's memory."""
    available = machine_memory()
    if available and needed > available:
        raise ConfigError(
            f"{what} would allocate about {_gigabytes(needed)} (estimated before building anything), more than this machine's "
            f"{_gigabytes(available)} of memory"
        )


def _gigabytes(count: int) -> str:
    return f"{count / 2**30:,.1f} GiB" if count < 2**40 else f"{count / 2**40:,.1f} TiB"
