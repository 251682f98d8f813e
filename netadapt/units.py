"""Costs and budgets as a user writes them (``250M``, ``20 ms``, ``0.7x``) and as netadapt prints them.

The ground floor (docs/architecture.md): the config validates a target with these before any cost model exists.
"""

from __future__ import annotations

import math
import re

from netadapt.errors import ConfigError


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
