"""A base network written from docs/writing-a-plugin.md alone (``tests/plugins/plainnet``): plain
``nn.Conv2d(groups=C)`` depthwise convs and a layer of five modules count, remap and carry a detector."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest
import torch
from typer.testing import CliRunner

from netadapt import plugins
from netadapt.cli.main import app
from netadapt.genotype import parse_op, save_genotype
from netadapt.remap import remap_network

PLUGIN = Path(__file__).parent / "plugins" / "plainnet" / "plainnet.py"


@pytest.fixture(scope="module")
def plainnet() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("plainnet", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    manager = plugins.get_plugin_manager()
    manager.register(module, name="plainnet")
    try:
        yield module
    finally:
        manager.unregister(name="plainnet")


def test_the_plugin_is_short(plainnet: ModuleType) -> None:
    assert len(PLUGIN.read_text().splitlines()) < 150


def test_every_cost_row_is_counted(plainnet: ModuleType, tmp_path: Path) -> None:
    genotype = tmp_path / "plainnet.yaml"
    save_genotype(plugins.bases().get("plainnet").base_genotype(), genotype)
    result = CliRunner().invoke(app, ["cost", str(genotype), "--json"])
    assert result.exit_code == 0, result.output
    breakdown = json.loads(result.output)
    rows = breakdown["layers"] + breakdown["stages"] + breakdown["others"]
    assert [row["label"] for row in breakdown["others"]] == ["stem", "head", "classifier"]
    assert [row["label"] for row in rows if not (row["params"] > 0 and row["madds"] > 0)] == []
    parts = breakdown["stages"] + breakdown["others"]
    assert sum(row["madds"] for row in parts) == pytest.approx(breakdown["madds"])  # nothing counted twice or missed
    assert sum(row["params"] for row in parts) == pytest.approx(breakdown["params"])
    detector = CliRunner().invoke(app, ["cost", str(genotype), "--detector", "ssdlite", "--json"])
    assert detector.exit_code == 0, detector.output
    assert all(part["params"] > 0 for part in json.loads(detector.output)["parts"].values())


def test_plain_depthwise_convs_remap_by_shape(plainnet: ModuleType) -> None:
    base = plugins.bases().get("plainnet")
    torch.manual_seed(0)
    genotype = base.base_genotype()
    source = base.build(genotype).eval()
    for module in source.modules():  # BN statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1), module.running_var.uniform_(0.5, 2.0)
    larger = genotype.with_ops([[replace(op, kernel=op.kernel + 2) for op in stage.ops] for stage in genotype.stages])
    target = base.build(larger).eval()
    report = remap_network(source, target)
    assert ("layers.3", "layers.3", "remap_conv") in report.copied  # the five-module layer, by module
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(target(images), source(images), atol=1e-5)  # Eq. 2: a centred kernel computes the same
    wider = base.build(genotype.with_ops([[parse_op("k3_e1")]] + [[parse_op("k3_e6")] * 3 for _ in genotype.stages[1:]]))
    remap_network(source, wider)  # a plain depthwise conv of 48 channels into one of 96, deeper stages: no "conv groups differ"
    assert torch.equal(wider.layers[8].conv[3].weight[:48], source.layers[8].conv[3].weight)
