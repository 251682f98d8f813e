"""Cost models: fvcore MAdds and parameters, per stage and in total; cost models are plugins; the search's cost table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from netadapt import plugins
from netadapt.config import SearchConfig, section_config
from netadapt.cost import Cost, cost_model_for, format_cost
from netadapt.cost.breakdown import genotype_cost
from netadapt.errors import ConfigError
from netadapt.genotype import load_genotype
from netadapt.hookspecs import hookimpl
from netadapt.jobs.adapt import AdaptReport
from netadapt.search.cost_table import build_cost_table, derived_cost
from netadapt.search.derive import derive_genotype
from netadapt.search.space import SearchSpace
from netadapt.search.supernet import build_supernet


def test_stages_and_parts_add_up_to_the_total(paper_yaml: Path) -> None:
    breakdown = genotype_cost(load_genotype(paper_yaml), input_size=320)
    parts = breakdown.stages + breakdown.others
    assert abs(sum(part.params for part in parts) - breakdown.total_params) < 1
    assert abs(sum(part.madds for part in parts) - breakdown.total_madds) < 1
    assert sum(layer.madds for layer in breakdown.layers) == sum(stage.madds for stage in breakdown.stages)
    # Bigger kernels and more layers than MobileNetV2 cost more.
    assert breakdown.total_madds > genotype_cost(plugins.bases().get("mobilenetv2").base_genotype(), input_size=320).total_madds


def test_channels_are_shown_as_built_under_width_mult() -> None:
    """Genotype channels are nominal; a width-0.5 MobileNetV2's first stage is built 16 → 8 (stem 32 · 0.5), and the
    cost rows say so, as the network's modules do."""
    genotype = plugins.bases().get("mobilenetv2").base_genotype(width_mult=0.5)
    assert genotype.stages[0].c_in == 32 and genotype.stages[0].c_out == 16  # nominal
    breakdown = genotype_cost(genotype, input_size=64)
    assert [(stage.c_in, stage.c_out) for stage in breakdown.stages][:3] == [(16, 8), (8, 16), (16, 16)]
    assert (breakdown.layers[1].c_in, breakdown.layers[1].c_out) == (8, 16)
    network = plugins.bases().get("mobilenetv2").build(genotype)
    assert network.features[1].conv[-2].out_channels == 8  # the projection conv, before its BatchNorm


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


# The search's cost table and a cost model's optional members (netadapt.cost's docstring).

TINY_SPACE = SearchSpace(name="tiny", depths=(1, 2, 2, 2, 2, 2, 1), candidates=("k3_e3", "k5_e6"))


@pytest.fixture(scope="module")
def tiny_supernet():
    torch.manual_seed(0)
    base = plugins.bases().get("mobilenetv2")
    genotype = base.base_genotype()
    return build_supernet("mobilenetv2", TINY_SPACE, base.build(genotype), genotype).eval()


class _KeyedParams:
    """Parameters, counting its measurements, with a ``cache_key`` the test sets."""

    name, unit = "keyed", "params"

    def __init__(self, key: str | None) -> None:
        self.key, self.measured = key, 0

    def cache_key(self) -> str | None:
        return self.key

    def measure(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> Cost:
        self.measured += 1
        return plugins.cost_models().get("params").measure(module, inputs)


def test_the_cost_table_cache_is_keyed_by_the_models_cache_key(tiny_supernet, tmp_path: Path) -> None:
    candidates = sum(len(layer.candidates) - (layer.layer > 0) for layer in tiny_supernet.layers)  # skip is not measured
    first = _KeyedParams("device A")
    table = build_cost_table(tiny_supernet, input_size=64, cost_model=first, cache_dir=tmp_path)
    again = _KeyedParams("device A")
    assert build_cost_table(tiny_supernet, input_size=64, cost_model=again, cache_dir=tmp_path) == table
    assert (first.measured, again.measured) == (candidates, 0)
    other = _KeyedParams("device B")  # another device or table file: never the cached table
    build_cost_table(tiny_supernet, input_size=64, cost_model=other, cache_dir=tmp_path)
    assert other.measured == candidates and len(list(tmp_path.iterdir())) == 2
    uncached = [_KeyedParams(None), _KeyedParams(None)]  # None: the model keeps its own cache
    for model in uncached:
        build_cost_table(tiny_supernet, input_size=64, cost_model=model, cache_dir=tmp_path)
    assert [model.measured for model in uncached] == [candidates, candidates] and len(list(tmp_path.iterdir())) == 2


class _KeyedPlugin:
    def __init__(self, model: _KeyedParams) -> None:
        self.model = model

    @hookimpl
    def register_cost_models(self, register) -> None:
        register(self.model.name, self.model)


def test_the_cost_table_cache_is_keyed_by_the_plugins_version(tiny_supernet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _KeyedParams("device A")
    manager = plugins.get_plugin_manager()
    manager.register(_KeyedPlugin(model), name="keyed-plugin")
    try:
        measured = []
        for version in ("1.0", "2.0", "1.0"):  # a new release of the plugin may count differently
            monkeypatch.setitem(plugins._State.infos, "keyed-plugin", plugins.PluginInfo("keyed-plugin", version, False, "netadapt-keyed"))
            before = model.measured
            build_cost_table(tiny_supernet, input_size=64, cost_model=model, cache_dir=tmp_path)
            measured.append(model.measured > before)
    finally:
        manager.unregister(name="keyed-plugin")
    assert measured == [True, True, False] and len(list(tmp_path.iterdir())) == 2


def test_predicted_and_measured_madds_of_the_derived_layers_agree(tiny_supernet) -> None:
    table = build_cost_table(tiny_supernet, input_size=64)
    best = [layer.candidates[-1].name for layer in tiny_supernet.layers]  # k5_e6 first in a stage, skip after
    genotype = derive_genotype(tiny_supernet.skeleton, tiny_supernet.layers, best, space_name=TINY_SPACE.name)
    cost = derived_cost(genotype, table, best, space=TINY_SPACE, cost_model=plugins.cost_models().get("madds"))
    assert cost.predicted == table.cost_of(best) > 0
    assert abs(cost.measured - cost.predicted) < 1  # fvcore on the derived network's stages 2-6 counts what the table sums
    assert "stages 2, 3, 4, 5, 6" in cost.scope and cost.to_dict()["measured"] == cost.measured
    unmeasured = derived_cost(genotype, table, best, space=TINY_SPACE, cost_model=plugins.cost_models().get("madds"), measure=False)
    assert unmeasured.measured is None and unmeasured.to_dict()["measured_how"].startswith("not measured")
    # netadapt adapt's report shows both, for whatever cost model the search used (search/cost.json).
    report = AdaptReport("mobilenetv2", "ssdlite", "demo", 64, "cpu", 1, "none", hours=dict.fromkeys(("search", "final training", "total"), 0.0))
    report.search_cost = cost.to_dict()
    markdown = report.to_markdown()
    assert f"predicted **{format_cost(cost.predicted, 'MAdds')}**" in markdown and f"measured **{format_cost(cost.measured, 'MAdds')}**" in markdown
    assert report.to_dict()["search_cost"]["predicted"] == cost.predicted


def test_only_a_model_with_for_config_takes_a_cost_table() -> None:
    assert cost_model_for(SearchConfig(cost_model="params")) is not None
    with pytest.raises(ConfigError, match="search.cost_table: cost model 'madds' takes no settings"):
        cost_model_for(SearchConfig(cost_table="phone.json"))
    assert format_cost(300.77e6, "MAdds") == "300.77M MAdds" and format_cost(3.2149, "ms") == "3.21 ms"


@pytest.mark.parametrize(("values", "message"), [
    ({"cost_table": 5}, "field 'search.cost_table' has the wrong type: 5"),
    ({"cost_table": ["a.json"]}, "field 'search.cost_table' has the wrong type"),
    ({"cost_options": [1, 2]}, "search.cost_options must be a mapping"),
])
def test_cost_settings_of_the_wrong_type_are_one_config_error(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        section_config(SearchConfig, {"search": values}, "search", source="test.yaml")
    with pytest.raises(ConfigError, match="search.cost_"):  # a config made in code is checked the same way
        SearchConfig(**values).validate("code")
