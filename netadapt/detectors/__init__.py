"""Detectors: the interface a detector plugin provides.

A detector (registered through ``register_detectors``) is an object with:

- ``name`` — its registry name;
- ``build(backbone, *, num_classes, input_size=320, **options) -> torch.nn.Module`` — a detection
  model on top of ``backbone``, a network with detector taps (``forward_taps(x)`` and
  ``tap_channels``, see :mod:`netadapt.bases`). ``num_classes`` counts the background class.
  Unknown ``options`` and bad values raise ``ValueError`` naming them.

Built in: ``ssdlite`` (:mod:`netadapt.detectors.ssdlite`, torchvision's ``SSD``). Its costs are
counted by :func:`netadapt.detectors.cost.detector_cost`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import nn


@runtime_checkable
class Detector(Protocol):
    name: str

    def build(self, backbone: nn.Module, *, num_classes: int, input_size: int = 320, **options: Any) -> nn.Module: ...
