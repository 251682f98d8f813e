"""Detectors: the interface a detector plugin provides.

A detector (registered through ``register_detectors``) is an object with:

- ``name`` — its registry name;
- ``build(backbone, *, num_classes, input_size=320, **options) -> torch.nn.Module`` — a detection
  model on top of ``backbone``, a network with detector taps (``forward_taps(x)`` and
  ``tap_channels``, see :mod:`netadapt.bases`). ``num_classes`` counts the background class.
  Unknown ``options`` and bad values raise ``ValueError`` naming them.

Optional:

- ``options_from_config(config) -> dict`` — the build ``options`` a run config
  (:class:`~netadapt.engine.config.TrainConfig` or ``SearchConfig``) sets for this detector;
  ``ssdlite`` takes its anchor scheme from ``anchors``. A detector without it is built with no
  options from the config (:func:`netadapt.detectors.model.options_from_config`).

The model is a torchvision-style detection model: ``model(images, targets)`` in train mode gives
a dict of losses, ``model(images)`` in eval mode a list of ``{"boxes", "scores", "labels"}``
(labels 1..C-1, never the background 0). Its ``backbone`` holds the base network as
``backbone.body`` (state-dict keys ``backbone.body.<base key>``, which
:func:`netadapt.detectors.model.init_backbone` fills with remapped base weights), any further
layers as other children of ``backbone`` (``extras``, ``fpn``, ...), and ``head`` maps the list of
``backbone(x)``'s feature maps to a dict of tensors (:class:`netadapt.detectors.cost.CoreForward`).

Built in: ``ssdlite`` (:mod:`netadapt.detectors.ssdlite`, torchvision's ``SSD``). Costs are
counted by :func:`netadapt.detectors.cost.detector_cost`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import nn


@runtime_checkable
class Detector(Protocol):
    name: str

    def build(self, backbone: nn.Module, *, num_classes: int, input_size: int = 320, **options: Any) -> nn.Module: ...
