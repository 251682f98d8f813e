"""The plugin module named by the ``netadapt`` entry point: registers the cost model ``latency``."""

from __future__ import annotations

from netadapt.hookspecs import hookimpl

from netadapt_latency.model import LatencyModel


@hookimpl
def register_cost_models(register) -> None:
    register(LatencyModel.name, LatencyModel())
