"""Parameters and MAdds of a detector, whole and split into backbone, further layers and head (DESIGN §1.4).

What is counted is the model's core forward on one normalised ``input_size``² image: the
backbone (base network and extra layers) and the head. Left out: the input transform
(``GeneralizedRCNNTransform``'s resize and normalisation), the anchor generator, box decoding,
score thresholding and NMS — none of them is a convolution or a fully connected layer, and
the papers' MAdds figures (MobileNetV2 SSDLite: 0.8B) do not count them either. Within the
core forward, the operators the ``madds`` cost model leaves out are listed under ``left_out``.
"""

from __future__ import annotations

import torch
from torch import nn

from netadapt import plugins


def detector_parts(model: nn.Module) -> dict[str, str]:
    """Label → module path of a detector's parts: ``backbone`` (the base network,
    ``backbone.body``), every other child of ``model.backbone`` under its own name (SSDLite's
    ``extras``, an FPN's ``fpn``), and ``head`` (see :mod:`netadapt.detectors`)."""
    layers = [name for name, _ in model.backbone.named_children() if name != "body"]
    return {"backbone": "backbone.body"} | {name: f"backbone.{name}" for name in layers} | {"head": "head"}


class CoreForward(nn.Module):
    """``model.backbone`` then ``model.head`` on a batch tensor: what fvcore traces.

    Works for any detector of :mod:`netadapt.detectors` (torchvision's single-stage detectors
    alike): the head takes the list of the backbone's feature maps and gives a dict of tensors,
    returned as a tuple in the head's order (``bbox_regression``, ``cls_logits`` for SSD). The
    submodules keep their paths in the detector (``backbone.*``, ``head.*``).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.head

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.backbone(images)
        if isinstance(features, torch.Tensor):
            features = {"0": features}
        outputs = self.head(list(features.values()))
        return tuple(outputs.values())


def detector_cost(model: nn.Module, *, input_size: int) -> dict:
    """Count ``model`` (a detector with ``backbone`` and ``head``, e.g. torchvision's ``SSD``).

    Returns ``{"input_size", "params", "madds", "parts": {label: {"params", "madds"}},
    "left_out", "excluded"}`` with the labels of :func:`detector_parts` (SSDLite: ``backbone``,
    ``extras``, ``head``); ``params`` counts every parameter of the model, ``madds`` the core
    forward described in the module docstring.
    """
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size <= 0:
        raise ValueError(f"input_size must be a positive integer, got {input_size!r}")
    core = CoreForward(model)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    inputs = (torch.zeros(1, 3, input_size, input_size, device=device),)
    params = plugins.cost_models().get("params").measure(model, inputs)
    madds = plugins.cost_models().get("madds").measure(core, inputs)
    return {
        "input_size": input_size,
        "params": params.total,
        "madds": madds.total,
        "parts": {label: {"params": params.of(path), "madds": madds.of(path)} for label, path in detector_parts(model).items()},
        "left_out": madds.left_out,
        "excluded": "input transform (resize, normalisation), anchors, box decoding, score threshold, NMS",
    }
