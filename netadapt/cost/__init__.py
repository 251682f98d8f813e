"""Cost models (``register_cost_models``): what a network costs, per module.

A cost model is a :class:`netadapt.contracts.CostModel` (``name``, ``unit``,
``measure(module, inputs) -> Cost``); its optional members (``for_config``, ``cache_key``,
``measures``, ``describe``), which the search uses (:mod:`netadapt.search.cost_table`), are
:class:`netadapt.contracts.CostModelOptions`. Built in: ``madds`` (multiply-adds counted with
fvcore) and ``params`` (parameters counted with fvcore). A latency model fits the same interface.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from netadapt.contracts import CostModel, optional
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


def format_cost(value: float, unit: str) -> str:
    """'300.77M MAdds', '3.21 ms': thousands and more with a suffix, smaller values to three significant digits."""
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:.2f}{suffix} {unit}"
    return f"{value:.3g} {unit}"


_MULTIPLIERS = {None: 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9}
_COST = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKMGB](?![a-z]))?\s*([A-Za-z]+)?\s*$")


def parse_cost(value: str | float | int, *, where: str = "search.target") -> float:
    """A cost in a cost model's unit: a plain number (``30000000``; ``20`` for 20 ms), or a number with
    a multiplier ``K``, ``M``, ``G`` or ``B`` (``250M``, ``0.25B``), optionally followed by a unit name
    that is not interpreted (``250M MAdds``, ``20ms``: the ``m`` of ``ms`` is no multiplier)."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a cost such as 250M, 0.25B, 20 (the cost model's unit) or 0.7x (of the base network), got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        match = _COST.match(str(value))
        if match is None:
            raise ConfigError(f"{where}: expected a cost such as 250M, 0.25B, 20 (the cost model's unit) or 0.7x (of the base network), got {value!r}")
        number = float(match.group(1)) * _MULTIPLIERS[match.group(2)]
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{where}: a cost budget must be a positive finite number, got {value!r}")
    return number


_RELATIVE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*x\s*$")


def parse_target(value: str | float | int, *, where: str = "search.target") -> tuple[float, bool]:
    """A search budget: ``(value, relative)``. ``0.7x`` is relative, 0.7 times the base network's searched
    layers in the same cost table; anything else is a cost in the model's unit (:func:`parse_cost`)."""
    match = _RELATIVE.match(value) if isinstance(value, str) else None
    if match is None:
        return parse_cost(value, where=where), False
    factor = float(match.group(1))
    if factor <= 0:
        raise ConfigError(f"{where}: a relative budget must be positive, got {value!r}")
    return factor, True
