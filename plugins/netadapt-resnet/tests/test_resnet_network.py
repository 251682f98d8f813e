"""Our ResNets are torchvision's resnet18 / resnet50 when built from the base genotypes; taps; refusals; weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from netadapt import plugins
from netadapt.errors import GenotypeError, WeightsError
from netadapt.genotype import genotype_from_data, load_genotype, parse_op
from netadapt.testing import assert_costs, assert_same_network
from netadapt_resnet import GENOTYPES

IMAGES = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_equivalence_key_for_key(name: str) -> None:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None)
    base = plugins.bases().get(name)
    genotype = load_genotype(GENOTYPES / f"{name}.yaml")
    assert genotype == base.base_genotype()
    ours = base.build(genotype)
    assert_same_network(ours, reference)  # bit for bit, reference's weights now in ours
    assert_costs(genotype, input_size=96)
    with torch.no_grad():
        taps = ours.forward_taps(IMAGES)
        # C4 and C5, what torchvision's retinanet_resnet50_fpn reads from layer3 and layer4
        trunk = torch.nn.Sequential(reference.conv1, reference.bn1, reference.relu, reference.maxpool, reference.layer1, reference.layer2)
        c4 = reference.layer3(trunk(IMAGES))
        assert list(taps) == ["stride16", "stride32"]
        assert torch.equal(taps["stride16"], c4) and torch.equal(taps["stride32"], reference.layer4(c4))
    assert ours.tap_channels == {"stride16": c4.shape[1], "stride32": taps["stride32"].shape[1]}
    assert taps["stride16"].shape[-1] == 6 and taps["stride32"].shape[-1] == 3  # strides 16 and 32 of 96


def test_wide_resnet50_2_is_the_e2_genotype() -> None:
    base = plugins.bases().get("resnet50")
    genotype = base.base_genotype()
    wide = base.build(genotype.with_ops([[parse_op("k3_e2")] * len(stage.ops) for stage in genotype.stages]))
    assert_same_network(wide, torchvision.models.wide_resnet50_2(weights=None))


def test_any_genotype_of_the_family_builds_and_runs(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(
        "base: resnet18\nstages:\n"
        "  - [[32, 48], [k5_e0.5, skip, k3_e2], 1]\n"
        "  - [[48, 96], [k7_e1], 2]\n"
        "  - [[96, 128], [k3_e1.5, k1_e1], 2]\n"
        "  - [[128, 160], [k3_e0.25], 2]\n"
    )
    network = plugins.bases().get("resnet18").build(load_genotype(other), num_classes=7).eval()
    assert network.layer_paths[0] == ["layer1.0", None, "layer1.2"] and network.layer1[0].downsample is not None
    assert network.layer1[0].conv1.out_channels == 24 and network.layer1[2].conv1.out_channels == 96
    assert network.layer2[0].conv2.kernel_size == (7, 7) and network.layer3[0].conv1.out_channels == 192
    assert network.tap_channels == {"stride16": 128, "stride32": 160}
    with torch.no_grad():
        assert network(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_what_a_resnet_cannot_build_is_refused_naming_the_layer() -> None:
    base = plugins.bases().get("resnet50")
    genotype = base.base_genotype()
    ops_per_stage = [list(stage.ops) for stage in genotype.stages]
    ops_per_stage[1][0] = parse_op("k3_e1_se")
    with pytest.raises(GenotypeError, match=r"base resnet50 cannot build stage 2, op 1 \(k3_e1_se\): squeeze-excitation"):
        base.build(genotype.with_ops(ops_per_stage))
    with pytest.raises(GenotypeError, match="base resnet50 has no width_mult"):
        base.build(base.base_genotype(width_mult=0.5))
    thin = genotype_from_data({"base": "resnet18", "stages": [[[8, 16], ["k3_e1"], 2], [[16, 32], ["k3_e1", "k3_e0.01"], 2]]})
    with pytest.raises(GenotypeError, match=r"base resnet18 cannot build stage 2, op 2 \(k3_e0.01\): its inner width rounds to 0"):
        plugins.bases().get("resnet18").build(thin)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_imagenet_weights_go_through_torchvision_and_offline_say_to_pass_a_file(name: str, offline_hub: list[str]) -> None:
    with pytest.raises(WeightsError, match=f"ImageNet weights for {name} .* pass it with --weights PATH"):
        plugins.bases().get(name).imagenet_state_dict()
    assert offline_hub == [getattr(torchvision.models, f"ResNet{name[6:]}_Weights").IMAGENET1K_V1.url]


def test_the_plugin_registers_bases_rules_and_space() -> None:
    from netadapt_resnet.network import Conv2d, Linear
    from netadapt_resnet.remap import remap_net2net

    for name in ("resnet18", "resnet50"):
        assert plugins.bases().owner(name) == "resnet" and plugins.bases().get(name).default_search_space == "fna-resnet"
    assert plugins.remap_rules().get(Conv2d) is remap_net2net and plugins.remap_rules().get(Linear) is remap_net2net
    assert plugins.search_spaces().owner("fna-resnet") == "resnet"
