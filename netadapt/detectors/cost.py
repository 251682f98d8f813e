"""Parameters and MAdds of a detector, whole and split into backbone, extras and head (DESIGN §1.4).

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

# Parts of a detector with a ``backbone`` (base as ``backbone.body``, extra layers as
# ``backbone.extras``) and a ``head``, by module path.
PARTS = {"backbone": "backbone.body", "extras": "backbone.extras", "head": "head"}


class CoreForward(nn.Module):
    """``model.backbone`` then ``model.head`` on a batch tensor: what fvcore traces.

    The submodules keep their paths in the detector (``backbone.*``, ``head.*``).
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

    Returns ``{"input_size", "params", "madds", "parts": {"backbone"|"extras"|"head":
    {"params", "madds"}}, "left_out", "excluded"}``; ``params`` counts every parameter of the
    model, ``madds`` the core forward described in the module docstring.
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
        "parts": {label: {"params": params.of(path), "madds": madds.of(path)} for label, path in PARTS.items()},
        "left_out": madds.left_out,
        "excluded": "input transform (resize, normalisation), anchors, box decoding, score threshold, NMS",
    }
