"""The ``latency`` cost model: milliseconds per forward pass of an op, on the device it lives on.

``measure(op, inputs)`` looks the op up in the look-up table of its device
(:mod:`netadapt_latency.table`) and times it only when the table lacks it
(:func:`netadapt_latency.timing.time_module`), so a second search measures nothing and a changed
input size measures anew, as do other timing settings (``warmup``, ``repeats``; ``threads`` picks
another table) or another version of this plugin. Given a table measured elsewhere (``search.cost_table``,
``netadapt search --cost-table FILE``), it measures nothing at all and an op missing from the
table is an error naming the op and the file.

The search uses its optional members (:mod:`netadapt.cost`): ``for_config`` reads
``search.cost_table`` and ``search.cost_options`` (``threads``, ``warmup``, ``repeats``);
``cache_key()`` is ``None`` because the look-up table, keyed by device, is the cache; ``measures``
is ``False`` with a table from elsewhere; ``describe()`` says where the numbers come from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from netadapt.cost import Cost
from netadapt.errors import ConfigError
from torch import nn

from netadapt_latency import __version__
from netadapt_latency.fingerprint import describe, entry_key, input_key
from netadapt_latency.table import LatencyTable
from netadapt_latency.timing import device_name, device_of, time_module

# Settings (search.cost_options) and their defaults: CPU threads, untimed runs, timed runs.
OPTIONS = {"threads": 1, "warmup": 5, "repeats": 20}


class LatencyModel:
    name = "latency"
    unit = "ms"
    options = OPTIONS  # search.cost_options: name → default (netadapt config lists them)

    def __init__(
        self, *, threads: int = 1, warmup: int = 5, repeats: int = 20, table: str | Path | None = None, cache_dir: str | Path | None = None
    ) -> None:
        self.threads, self.warmup, self.repeats = threads, warmup, repeats
        self.given = LatencyTable.read(table) if table is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None  # None: <netadapt cache>/latency
        self.measured = 0  # ops this object timed (the rest came from a table)
        self._local: dict[str, LatencyTable] = {}

    @property
    def measures(self) -> bool:
        return self.given is None

    def for_config(self, config: Any) -> LatencyModel:
        """This model with ``search.cost_options`` and ``search.cost_table`` of ``config``."""
        options = dict(config.cost_options)
        for name, value in options.items():
            if name not in OPTIONS:
                raise ConfigError(f"search.cost_options.{name}: not a setting of cost model 'latency' (known: {', '.join(OPTIONS)})")
            lowest = 0 if name == "warmup" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                raise ConfigError(f"search.cost_options.{name} must be an integer ≥ {lowest}, got {value!r}")
        return LatencyModel(**(OPTIONS | options), table=config.cost_table, cache_dir=self.cache_dir)

    def cache_key(self) -> None:
        """The search keeps no table of its own: the look-up table, keyed by device and torch version, is the cache."""
        return None

    def describe(self) -> str:
        if self.given is not None:
            return f"latency from {self.given.path}, measured on {self.given.device}, torch {self.given.torch}"
        devices = "; ".join(table.device for table in self._local.values()) or "no device yet"
        return f"latency on {devices}, torch {torch.__version__}, median of {self.repeats} runs after {self.warmup} warm-up runs"

    def measure(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Cost:
        device = device_of(module, inputs)
        inputs = tuple(x.to(device) for x in inputs)
        key = entry_key(module, inputs)
        table = self.given if self.given is not None else self._table(device)
        settings = {"warmup": self.warmup, "repeats": self.repeats, "plugin_version": __version__}
        ms = table.get(key) if self.given is not None else table.get(key, **settings)
        if ms is None:
            if self.given is not None:
                raise ConfigError(
                    f"{self.given.path}: no latency for op {describe(module)} on input {input_key(inputs)} (key {key!r}); "
                    f"the table holds {len(self.given.entries)} ops measured on {self.given.device}"
                )
            ms = time_module(module, inputs, warmup=self.warmup, repeats=self.repeats, threads=self.threads)
            self.measured += 1
            table.add(key, ms, op=describe(module), **settings)
        return Cost(total=ms, by_module={"": ms})

    def _table(self, device: torch.device) -> LatencyTable:
        name = device_name(device, threads=self.threads)
        if name not in self._local:
            from netadapt.data.demo import cache_root

            folder = self.cache_dir or cache_root() / "latency"
            self._local[name] = LatencyTable.local(folder, device=name, torch_version=torch.__version__)
        return self._local[name]
