"""Cost models (``register_cost_models``): what a network costs, per module.

A cost model is an object with ``name``, ``unit`` and
``measure(module, inputs) -> Cost``. Built in: ``madds`` (multiply-adds counted with fvcore) and
``params`` (parameters counted with fvcore). A latency model fits the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn


@dataclass
class Cost:
    """A measurement: ``total`` and the share of every module path (``""`` is the whole network).

    ``left_out`` names what the model saw but did not count (operator → occurrences or amount),
    so that a report can say so.
    """

    total: float
    by_module: dict[str, float]
    left_out: dict[str, str] = field(default_factory=dict)

    def of(self, path: str) -> float:
        return self.by_module.get(path, 0.0)


class CostModel(Protocol):
    name: str
    unit: str

    def measure(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Cost: ...
