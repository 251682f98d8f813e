"""Cost models (``register_cost_models``): what a network costs, per module.

A cost model is a :class:`netadapt.contracts.CostModel` (``name``, ``unit``,
``measure(module, inputs) -> Cost``); its optional members (``for_config``, ``cache_key``,
``measures``, ``describe``), which the search uses (:mod:`netadapt.search.cost_table`), are
:class:`netadapt.contracts.CostModelOptions`. Built in: ``madds`` (multiply-adds counted with
fvcore) and ``params`` (parameters counted with fvcore). A latency model fits the same interface.
"""

from __future__ import annotations

from typing import Any

from netadapt.contracts import Cost, CostModel, optional
from netadapt.errors import ConfigError
from netadapt.units import format_cost, parse_cost, parse_target

__all__ = ["Cost", "cost_model_for", "format_cost", "parse_cost", "parse_target"]


def cost_model_for(config: Any) -> CostModel:
    """The cost model ``config.cost_model`` names, configured by its ``for_config`` (see the module docstring)."""
    from netadapt import plugins

    model = plugins.cost_models().get(config.cost_model)
    for_config = optional(model, "for_config", None)
    if for_config is not None:
        return for_config(config)
    given = [name for name in ("cost_table", "cost_options") if getattr(config, name)]
    if given:
        raise ConfigError(f"search.{given[0]}: cost model {config.cost_model!r} takes no settings (it has no for_config)")
    return model


