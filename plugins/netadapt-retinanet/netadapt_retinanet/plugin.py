"""The ``retinanet`` detector plugin (entry point ``retinanet`` in the ``netadapt`` group).

netadapt builds it like any detector plugin (:mod:`netadapt.detectors`): ``netadapt train
--detector retinanet``, ``netadapt search --detector retinanet``, ``netadapt cost --detector
retinanet``; ``netadapt eval``, ``netadapt predict`` and ``netadapt export`` (with the export rule
registered here, :mod:`netadapt_retinanet.export_rule`) rebuild it from a checkpoint's spec.
Its options are :func:`~netadapt_retinanet.retinanet.build_retinanet`'s keyword arguments: a run
config gives them as ``train.detector_options`` / ``search.detector_options`` (``netadapt config``
lists them), Python callers pass them to ``build``.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torchvision.models.detection.retinanet import RetinaNet

from netadapt.detectors.common import build_options
from netadapt.hookspecs import hookimpl
from netadapt_retinanet.export_rule import RetinaNetExportRule
from netadapt_retinanet.retinanet import NAME, build_retinanet

class RetinaNetDetector:
    """The ``retinanet`` detector plugin object."""

    name = NAME
    options = build_options(build_retinanet)  # train/search.detector_options: name → default

    def build(self, backbone: nn.Module, *, num_classes: int, input_size: int = 320, **options: Any) -> RetinaNet:
        """:func:`build_retinanet`; ``options`` are its keyword arguments (``fpn_channels``, ``anchor_scale``, ...)."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"unknown {NAME} option(s) {', '.join(unknown)}; known: {', '.join(self.options)}")
        return build_retinanet(backbone, num_classes=num_classes, input_size=input_size, **options)


@hookimpl
def register_detectors(register) -> None:
    register(NAME, RetinaNetDetector())


@hookimpl
def register_export_rules(register) -> None:
    register(NAME, RetinaNetExportRule())
