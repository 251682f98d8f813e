"""Detectors: the interface a detector plugin provides.

A detector plugin registers a :class:`netadapt.contracts.Detector` (``name``, ``build``; see
docs/writing-a-plugin.md). Its settings are the run config's ``detector_options`` mapping, passed to
``build`` as keyword arguments, which checks them.

The model is a torchvision-style detection model: ``model(images, targets)`` in train mode gives
a dict of losses, ``model(images)`` in eval mode a list of ``{"boxes", "scores", "labels"}``
(labels 1..C-1, never the background 0). Its ``backbone`` holds the base network as
``backbone.body`` (state-dict keys ``backbone.body.<base key>``, which
:func:`netadapt.jobs.train.init_backbone` fills with remapped base weights), any further
layers as other children of ``backbone`` (``extras``, ``fpn``, ...), and ``head`` maps the list of
``backbone(x)``'s feature maps to a dict of tensors (:class:`netadapt.detectors.cost.CoreForward`).

Built in: ``ssdlite`` (:mod:`netadapt.detectors.ssdlite`, torchvision's ``SSD``). Costs are
counted by :func:`netadapt.detectors.cost.detector_cost`.
"""

from netadapt.contracts import Detector

__all__ = ["Detector"]
