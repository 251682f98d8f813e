"""Cost models (``register_cost_models``): what a network costs, per module.

A cost model is an object with ``name``, ``unit`` and
``measure(module, inputs) -> Cost``. Built in: ``madds`` (multiply-adds counted with fvcore) and
``params`` (parameters counted with fvcore). A latency model fits the same interface.

Optional members, which the search uses (:mod:`netadapt.search.cost_table`) when a model has them:

- ``for_config(search_config) -> CostModel``: the model configured for one run, from
  ``search.cost_table`` (a cost table measured elsewhere) and ``search.cost_options``; a model
  without it accepts neither.
- ``cache_key() -> str | None``: what the measurement depends on beyond the network and its
  input (a device, a table file). The search's on-disk cost table is keyed by it; ``None`` keeps
  the search from caching the table at all (the model keeps its own cache). Without it the
  cost is taken to depend on nothing else (counts such as MAdds).
- ``measures: bool``: ``False`` when the model only looks costs up in a table it was given and
  can measure nothing here; the search then reports no measured cost.
- ``describe() -> str``: where the costs come from (a device, a file), for reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from netadapt.errors import ConfigError


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


def cost_model_for(config: Any) -> CostModel:
    """The cost model ``config.cost_model`` names, configured by its ``for_config`` (see the module docstring)."""
    from netadapt import plugins

    model = plugins.cost_models().get(config.cost_model)
    if hasattr(model, "for_config"):
        return model.for_config(config)
    given = [name for name in ("cost_table", "cost_options") if getattr(config, name)]
    if given:
        raise ConfigError(f"search.{given[0]}: cost model {config.cost_model!r} takes no settings (it has no for_config)")
    return model


def format_cost(value: float, unit: str) -> str:
    """'300.77M MAdds', '3.21 ms': thousands and more with a suffix, smaller values to three significant digits."""
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:.2f}{suffix} {unit}"
    return f"{value:.3g} {unit}"
