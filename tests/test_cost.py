"""Cost models: fvcore MAdds and parameters, per stage and in total; cost models are plugins."""

from __future__ import annotations

from pathlib import Path

import torch

from netadapt import plugins
from netadapt.cost import Cost
from netadapt.cost.breakdown import genotype_cost
from netadapt.genotype import load_genotype
from netadapt.hookspecs import hookimpl


def test_stages_and_parts_add_up_to_the_total(paper_yaml: Path) -> None:
    breakdown = genotype_cost(load_genotype(paper_yaml), input_size=320)
    parts = breakdown.stages + breakdown.others
    assert abs(sum(part.params for part in parts) - breakdown.total_params) < 1
    assert abs(sum(part.madds for part in parts) - breakdown.total_madds) < 1
    assert sum(layer.madds for layer in breakdown.layers) == sum(stage.madds for stage in breakdown.stages)
    # Bigger kernels and more layers than MobileNetV2 cost more.
    assert breakdown.total_madds > genotype_cost(plugins.bases().get("mobilenetv2").base_genotype(), input_size=320).total_madds


def test_madds_scale_with_the_input_area(mobilenetv2_yaml: Path) -> None:
    genotype = load_genotype(mobilenetv2_yaml)
    small, large = genotype_cost(genotype, input_size=224), genotype_cost(genotype, input_size=448)
    conv_small = small.total_madds - small.others[-1].madds  # the classifier does not scale
    conv_large = large.total_madds - large.others[-1].madds
    assert abs(conv_large / conv_small - 4.0) < 0.01
    assert small.total_params == large.total_params


class _HalfMAdds:
    name, unit = "madds", "MAdds"

    def measure(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> Cost:
        counted = plugins.cost_models().get("params").measure(module, inputs)
        return Cost(total=counted.total / 2, by_module={k: v / 2 for k, v in counted.by_module.items()})


class _CostPlugin:
    @staticmethod
    @hookimpl
    def register_cost_models(register) -> None:
        register("madds", _HalfMAdds(), override=True)


def test_a_plugin_cost_model_replaces_the_builtin(mobilenetv2_yaml: Path) -> None:
    manager = plugins.get_plugin_manager()
    manager.register(_CostPlugin, name="cost-plugin")
    try:
        breakdown = genotype_cost(load_genotype(mobilenetv2_yaml))
    finally:
        manager.unregister(name="cost-plugin")
    assert breakdown.total_madds == breakdown.total_params / 2
