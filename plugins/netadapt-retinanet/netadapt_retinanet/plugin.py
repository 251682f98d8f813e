"""The ``retinanet`` detector plugin (entry point ``retinanet`` in the ``netadapt`` group).

netadapt builds it like any detector plugin (:mod:`netadapt.detectors`): ``netadapt train
--detector retinanet``, ``netadapt search --detector retinanet``, ``netadapt cost --detector
retinanet``; ``netadapt eval``, ``netadapt predict`` and ``netadapt export`` (with the export rule
registered here, :mod:`netadapt_retinanet.export_rule`) rebuild it from a checkpoint's spec.
It takes no options from the run config (``train.anchors`` / ``search.anchors`` are SSDLite's
anchor schemes); Python callers pass :func:`~netadapt_retinanet.retinanet.build_retinanet`'s
options to ``build``.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn
from torchvision.models.detection.retinanet import RetinaNet

from netadapt.hookspecs import hookimpl
from netadapt_retinanet.export_rule import RetinaNetExportRule
from netadapt_retinanet.retinanet import NAME, build_retinanet

BUILD_OPTIONS = tuple(
    name
    for name, parameter in inspect.signature(build_retinanet).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("num_classes", "input_size")
)


class RetinaNetDetector:
    """The ``retinanet`` detector plugin object."""

    name = NAME

    def build(self, backbone: nn.Module, *, num_classes: int, input_size: int = 320, **options: Any) -> RetinaNet:
        """:func:`build_retinanet`; ``options`` are its keyword arguments (``fpn_channels``, ``anchor_scale``, ...)."""
        unknown = sorted(set(options) - set(BUILD_OPTIONS))
        if unknown:
            raise ValueError(f"unknown {NAME} option(s) {', '.join(unknown)}; known: {', '.join(BUILD_OPTIONS)}")
        return build_retinanet(backbone, num_classes=num_classes, input_size=input_size, **options)


@hookimpl
def register_detectors(register) -> None:
    register(NAME, RetinaNetDetector())


@hookimpl
def register_export_rules(register) -> None:
    register(NAME, RetinaNetExportRule())
