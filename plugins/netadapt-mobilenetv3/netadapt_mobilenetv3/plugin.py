"""The ``netadapt`` entry point of this package: the base ``mobilenetv3`` and the space ``fna-mobilenetv3``.

No remapping rule is registered: every module of MobileNetV3 that owns tensors is a type the
built-in rules already cover (``Conv2d`` — the squeeze-excitation's ``fc1``/``fc2`` included —,
``DepthwiseConv2d``, ``BatchNorm2d``, ``Linear``); Hardswish, ReLU and the hard-sigmoid gate hold
no tensors. A width change therefore follows the built-in channel rule
(``netadapt.remap.rules.select_channels``): a narrower layer takes the first channels, a wider one
repeats the source's channels cyclically (so a wider candidate, e.g. ``e2.3`` → ``e6``, does not
compute what the base did); the squeeze width follows the hidden width
(``make_divisible(hidden // 4, 8)``).
"""

from __future__ import annotations

from netadapt.hookspecs import hookimpl
from netadapt_mobilenetv3.network import NAME, MobileNetV3Base
from netadapt_mobilenetv3.space import NAME as SPACE_NAME
from netadapt_mobilenetv3.space import fna_mobilenetv3_space


@hookimpl
def register_bases(register) -> None:
    register(NAME, MobileNetV3Base())


@hookimpl
def register_search_spaces(register) -> None:
    register(SPACE_NAME, fna_mobilenetv3_space(MobileNetV3Base().base_genotype()))
