"""Parameter remapping (Section 2.1) on ResNets, rule by rule, and whether the remapped network
computes what the source does (BN in eval mode):

| change                                  | rule                                   | output equal? |
|-----------------------------------------|----------------------------------------|---------------|
| none (base → base)                      | copy                                   | yes, bit for bit |
| kernel 3 → 5 / 7 (Eq. 2)                | centred kernel, zeros around           | yes           |
| kernel 5 → 3                            | centre crop                            | no            |
| inner width wider (e1 → e2, e1 → e1.5)  | Net2Net: copies, input weights ÷ count | yes           |
| stage width wider (c_out 64 → 96, …)    | Net2Net, shortcut and downsample too   | yes           |
| inner width narrower (e1 → e0.5)        | first channels                         | no            |
| depth deeper (Eq. 1)                    | extra blocks copy the stage's last     | no (a copied residual adds again) |
| depth shallower                         | the first blocks                       | no            |
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from netadapt import plugins
from netadapt.genotype import Genotype, genotype_from_data, parse_op
from netadapt.remap import remap_network
from netadapt.remap.rules import remap_conv, remap_linear
from netadapt.search.space import default_space_name, load_search_space
from netadapt.testing import assert_remap_fills, assert_remaps, assert_supernet_is_source, randomize_batchnorm
from netadapt_resnet.network import Conv2d, Linear

IMAGES = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))
NAMES = ["resnet18", "resnet50"]


@pytest.fixture(scope="module", params=NAMES)
def source(request) -> torch.nn.Module:
    torch.manual_seed(0)
    base = plugins.bases().get(request.param)
    return randomize_batchnorm(base.build(base.base_genotype())).eval()


def remapped(source: torch.nn.Module, genotype: Genotype) -> torch.nn.Module:
    target = plugins.bases().get(genotype.base).build(genotype).eval()
    assert not assert_remap_fills(source, target).ignored  # every layer by a rule
    return target


def with_ops(genotype: Genotype, change) -> Genotype:
    return genotype.with_ops([[change(op) for op in stage.ops] for stage in genotype.stages])


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / a.abs().max()).item()


def difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Largest difference of the logits and of the stride-16 tap, relative to the source's largest value
    (random BN statistics make ResNet-50's logits reach ~100, float32 rounding ~1e-4 of them)."""
    with torch.no_grad():
        return max(relative(a(IMAGES), b(IMAGES)), relative(a.forward_taps(IMAGES)["stride16"], b.forward_taps(IMAGES)["stride16"]))


def test_identity_copies_every_tensor(source) -> None:
    target = remapped(source, source.genotype)
    assert all(torch.equal(value, source.state_dict()[key]) for key, value in target.state_dict().items())
    assert difference(source, target) == 0


def test_larger_kernels_keep_the_outputs(source) -> None:
    target = assert_remaps(source.genotype.base, with_ops(source.genotype, lambda op: replace(op, kernel=7)), source=source)  # and k5
    assert target.layer4[0].conv2.kernel_size == (7, 7)
    assert difference(source, target) < 1e-5


def test_smaller_kernels_take_the_centre_and_change_the_outputs(source) -> None:
    larger = remapped(source, with_ops(source.genotype, lambda op: replace(op, kernel=5)))
    with torch.no_grad():
        larger.layer2[1].conv2.weight[..., 0, 0] += 1.0  # a 5×5 kernel with weight outside its centre
    smaller = remapped(larger, source.genotype)  # 5×5 → 3×3: the centre crop, here the source's own kernel
    assert torch.equal(smaller.layer2[1].conv2.weight, source.layer2[1].conv2.weight)
    assert difference(larger, smaller) > 1e-2


@pytest.mark.parametrize("expansion", [2, 1.5])
def test_wider_blocks_keep_the_outputs_net2net(source, expansion: float) -> None:
    target = remapped(source, with_ops(source.genotype, lambda op: replace(op, expansion=expansion)))
    conv, source_conv = target.layer3[1].conv1, source.layer3[1].conv1
    assert conv.out_channels == int(expansion * source_conv.out_channels)
    assert difference(source, target) < 1e-5
    # The built-in rule alone (cyclic copies, no division) feeds every copied channel twice.
    rules = plugins.Registry("remap rule for")
    for module_type, rule in plugins.remap_rules().items():
        rules.add(module_type, rule, plugin="test")
    rules.add(Conv2d, remap_conv, plugin="test", override=True)
    rules.add(Linear, remap_linear, plugin="test", override=True)
    repeated = plugins.bases().get(target.genotype.base).build(target.genotype).eval()
    remap_network(source, repeated, rules=rules)
    assert difference(source, repeated) > 1e-2


def test_wider_stages_keep_the_outputs_shortcut_and_downsample_included(source) -> None:
    data = source.genotype.to_dict()
    data["stages"] = [[[c_in * 3 // 2, c_out * 3 // 2], ops, stride] for (c_in, c_out), ops, stride in data["stages"]]
    target = remapped(source, genotype_from_data(data))
    assert target.conv1.out_channels == 96 and target.layer2[0].downsample[0].in_channels == source.layer2[0].downsample[0].in_channels * 3 // 2
    with torch.no_grad():
        assert relative(source(IMAGES), target(IMAGES)) < 1e-5  # the classifier's inputs are divided too
        copies = target.forward_taps(IMAGES)["stride32"]
        width = source.tap_channels["stride32"]
        assert relative(source.forward_taps(IMAGES)["stride32"], copies[:, :width]) < 1e-5  # first channels: the source's
        assert torch.equal(copies[:, width:], copies[:, : copies.shape[1] - width])  # the others: copies of them


def test_narrower_blocks_take_the_first_channels(source) -> None:
    target = remapped(source, with_ops(source.genotype, lambda op: replace(op, expansion=0.5)))
    width = target.layer2[0].conv1.out_channels
    assert width == source.layer2[0].conv1.out_channels // 2
    assert torch.equal(target.layer2[0].conv1.weight, source.layer2[0].conv1.weight[:width])
    assert torch.equal(target.layer2[0].bn1.running_var, source.layer2[0].bn1.running_var[:width])
    last = "conv3" if hasattr(target.layer2[0], "conv3") else "conv2"
    assert torch.equal(getattr(target.layer2[0], last).weight, getattr(source.layer2[0], last).weight[:, :width])
    assert difference(source, target) > 1e-2


def test_deeper_stages_copy_the_last_block_and_shallower_keep_the_first(source) -> None:
    deeper = remapped(source, source.genotype.with_ops([[*stage.ops, stage.ops[-1]] for stage in source.genotype.stages]))
    for s, stage in enumerate(deeper.stages):
        copied, last = stage[-1], source.stages[s][-1]
        assert all(torch.equal(value, last.state_dict()[key]) for key, value in copied.state_dict().items())  # Eq. 1
    assert difference(source, deeper) > 1e-2
    shallower = remapped(source, source.genotype.with_ops([stage.ops[:1] for stage in source.genotype.stages]))
    assert torch.equal(shallower.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    assert difference(source, shallower) > 1e-2


def test_fna_resnet_super_network_with_the_base_path_is_the_base() -> None:
    """Every candidate is remapped from the base; one-hot α on the base's k3_e1 (and skip beyond
    ResNet-18's depth) gives back the base network exactly (resnet18: depths 2 → 3, 4, 6, 3)."""
    assert default_space_name("resnet18") == "fna-resnet"
    space = load_search_space("fna-resnet")
    supernet = assert_supernet_is_source("resnet18", rtol=0)
    assert [layer.candidates for layer in supernet.layers][1] == tuple(map(parse_op, space.candidates)) + (parse_op("skip"),)
    assert "network.layer1.0.candidates.k3_e0-5.conv1.weight" in supernet.state_dict()  # '.' is no module name
    assert supernet.mixed_ops[0].names[0] == "k3_e0.5" and supernet.mixed_ops[0].candidates["k3_e0.5"] is not None
