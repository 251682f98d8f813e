"""``netadapt.testing``, the kit for plugin authors: the guide's test file runs as written (pytester), and each
assertion fails where it should."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torchvision

from netadapt import plugins
from netadapt.bases.mobilenet import DepthwiseConv2d
from netadapt.bases.mobilenetv2 import MobileNetV2Base
from netadapt.errors import WeightsError
from netadapt.remap.rules import remap_depthwise_conv
from netadapt.testing import assert_costs, assert_detector_works, assert_remaps, assert_same_network, registered

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]
PLAINNET = ROOT / "tests" / "plugins" / "plainnet" / "plainnet.py"


def guide_test_file() -> str:
    """The one complete test file of docs/writing-a-plugin.md's "Testing a plugin"."""
    section = (ROOT / "docs" / "writing-a-plugin.md").read_text().split("## Testing a plugin", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    return code


def test_the_guides_test_file_passes_as_written(pytester: pytest.Pytester) -> None:
    code = guide_test_file()
    assert len([line for line in code.splitlines() if line.strip() and not line.startswith(("import", "from"))]) <= 16
    shutil.copy(PLAINNET, pytester.path / "plainnet.py")
    pytester.makepyfile(test_plainnet=code)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")  # its slow test too: a search in-process, 2 s here
    result.assert_outcomes(passed=2)


def test_registered_works_whether_or_not_the_plugin_is_registered_already() -> None:
    import netadapt.bases.mobilenetv2 as builtin  # registered by netadapt itself, as an installed package's entry point is

    manager = plugins.get_plugin_manager()
    with registered(builtin) as name:
        assert name == "netadapt.bases.mobilenetv2"
    assert manager.is_registered(builtin)  # still there: it was not registered by the block
    fake = type("FakePlugin", (), {})()
    with registered(fake, "fake") as name:
        assert name == "fake" and manager.get_plugin("fake") is fake
    assert manager.get_plugin("fake") is None


def test_assert_same_network_names_the_first_difference() -> None:
    base = plugins.bases().get("mobilenetv2")
    assert_same_network(base.build(base.base_genotype()), torchvision.models.mobilenet_v2())
    with pytest.raises(AssertionError, match=r"classifier\.1\.weight: \(10, 1280\) vs \(1000, 1280\)"):
        assert_same_network(base.build(base.base_genotype(), num_classes=10), torchvision.models.mobilenet_v2())
    other = base.build(base.base_genotype())
    other.forward = lambda x: torch.zeros(x.shape[0], 1000)  # same weights, another function
    with pytest.raises(AssertionError, match="outputs: logits differs"):
        assert_same_network(other, torchvision.models.mobilenet_v2())


def test_assert_remaps_and_assert_costs_on_the_built_in_base() -> None:
    genotype = plugins.bases().get("mobilenetv2").base_genotype()
    deeper = genotype.with_ops([[*stage.ops, replace(stage.ops[-1], kernel=7)] for stage in genotype.stages])
    assert_remaps("mobilenetv2", deeper)
    breakdown = assert_costs(deeper, input_size=96)
    assert breakdown.stages[1].c_in == 16 and breakdown.stages[1].c_out == 24


def test_assert_costs_fails_on_a_part_counted_as_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    build = MobileNetV2Base.build

    def misplaced(self, genotype, **kwargs):
        network = build(self, genotype, **kwargs)
        network.part_paths["stem"] = "classifier.0"  # a dropout: no parameters, no MAdds; the real stem is counted nowhere
        return network

    monkeypatch.setattr(MobileNetV2Base, "build", misplaced)
    with pytest.raises(AssertionError, match="stem counts nothing"):
        assert_costs(MobileNetV2Base().base_genotype(), input_size=64)


def test_kernels_that_do_not_grow_exactly_fail_assert_remaps(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = plugins.remap_rules()

    def noisy_border(source, target):  # the built-in rule, then noise around a grown kernel's centre
        remap_depthwise_conv(source, target)
        if target.weight.shape[-1] > source.weight.shape[-1]:
            with torch.no_grad():
                target.weight[..., 0, :].normal_()

    registry.add(DepthwiseConv2d, noisy_border, plugin="test", override=True)
    monkeypatch.setattr(plugins, "remap_rules", lambda: registry)
    with pytest.raises(AssertionError, match="kernels grown by 2"):
        assert_remaps("mobilenetv2", MobileNetV2Base().base_genotype())


def test_assert_detector_works_on_ssdlite_and_offline_hub(offline_hub: list[str]) -> None:
    base = plugins.bases().get("mobilenetv2")
    torch.manual_seed(0)
    model = plugins.detectors().get("ssdlite").build(base.build(base.base_genotype()), num_classes=3, input_size=96)
    losses, detections = assert_detector_works(model, num_classes=3)
    assert set(losses) == {"bbox_regression", "classification"} and len(detections) == 2
    with pytest.raises(WeightsError, match="pass it with --weights PATH"):
        base.imagenet_state_dict()
    assert len(offline_hub) == 1
