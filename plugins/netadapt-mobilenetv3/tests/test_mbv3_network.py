"""Our MobileNetV3 is torchvision's mobilenet_v3_large when built from the base genotype; taps; weights; plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from netadapt import plugins
from netadapt.errors import WeightsError
from netadapt.genotype import genotype_from_data, load_genotype, make_divisible, parse_op
from netadapt.testing import assert_costs, assert_same_network, randomize_batchnorm
from netadapt_mobilenetv3 import GENOTYPES
from netadapt_mobilenetv3.network import MobileNetV3Base

BASE = plugins.bases().get("mobilenetv3")
LARGE = GENOTYPES / "mobilenetv3_large.yaml"


def test_the_plugin_registers_the_base_and_its_search_space() -> None:
    assert isinstance(BASE, MobileNetV3Base)
    assert plugins.bases().owner("mobilenetv3") == "mobilenetv3"  # the entry point, not a built-in
    assert BASE.default_search_space in plugins.search_spaces()


@pytest.mark.parametrize("width_mult", [1.0, 0.5])
def test_torchvision_equivalence(width_mult: float) -> None:
    torch.manual_seed(0)
    genotype = load_genotype(LARGE) if width_mult == 1.0 else BASE.base_genotype(width_mult=width_mult)
    assert_same_network(BASE.build(genotype), torchvision.models.mobilenet_v3_large(width_mult=width_mult), rtol=1e-5)
    assert_costs(genotype, input_size=96)


def test_the_example_genotype_is_the_base_genotype() -> None:
    genotype = load_genotype(LARGE)
    assert genotype == BASE.base_genotype() and genotype.head_channels == 960
    assert genotype.stages[3].ops[2] == parse_op("k3_e2.3_hs")
    network = BASE.build(genotype)
    assert network.features[9].hidden_channels == 184 and network.features[8].hidden_channels == 200
    assert network.features[4].block[2].fc1.out_channels == 24  # squeeze: make_divisible(72 // 4, 8)


def test_taps_are_the_features_of_torchvisions_ssdlite(tmp_path: Path) -> None:
    reference = randomize_batchnorm(torchvision.models.mobilenet_v3_large(weights=None)).eval()
    network = BASE.build(load_genotype(LARGE)).eval()
    network.load_state_dict(reference.state_dict())
    images = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        taps = network.forward_taps(images)
        # ssdlite320_mobilenet_v3_large's C4: the expansion output of features[13], the first stride-32 block.
        expected16 = reference.features[13].block[0](reference.features[:13](images))
        expected32 = reference.features(images)
    assert list(taps) == ["stride16", "stride32"]
    assert torch.equal(taps["stride16"], expected16) and torch.equal(taps["stride32"], expected32)
    assert taps["stride16"].shape == (1, 672, 8, 8) and taps["stride32"].shape == (1, 960, 4, 4)
    assert network.tap_channels == {"stride16": 672, "stride32": 960}
    narrow = tmp_path / "narrow.yaml"
    narrow.write_text(LARGE.read_text().replace("[[112, 160], [k5_e6_se_hs,", "[[112, 160], [k7_e3_se_hs,"))
    assert BASE.build(load_genotype(narrow)).tap_channels == {"stride16": 336, "stride32": 960}


def test_any_genotype_of_the_family_builds_and_runs(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(
        "base: mobilenetv3\nhead_channels: 640\nstages:\n"
        "  - [[16, 16], [k3_e1_hs], 1]\n"
        "  - [[16, 24], [k7_e6, skip, k5_e3_se], 2]\n"
        "  - [[24, 40], [k3_e2.5_se], 2]\n"
        "  - [[40, 80], [k5_e6_hs, k3_e3_hs, skip], 2]\n"
        "  - [[80, 112], [k7_e6_se_hs], 1]\n"
        "  - [[112, 160], [k3_e4_se_hs, k7_e6_se_hs, k5_e6_se_hs, k5_e3_se_hs, k3_e6_se_hs], 2]\n"
    )
    network = BASE.build(load_genotype(other), num_classes=7).eval()
    assert network.layer_paths[1] == ["features.2", None, "features.4"] and network.last_channels == 640
    assert isinstance(network.features[1].block[0][2], torch.nn.Hardswish)  # k3_e1_hs: no expansion conv
    with torch.no_grad():
        assert network(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    assert_costs(load_genotype(other), input_size=64)


@pytest.mark.parametrize(("op", "in_channels", "width", "hidden"), [("k3_e1.14", 200, 1.0, 232), ("k3_e2.05", 240, 1.0, 496), ("k3_e1.16", 200, 0.5, 120)])
def test_hidden_widths_round_the_exact_exp_size(op: str, in_channels: int, width: float, hidden: int) -> None:
    # 1.14 · 200 is 227.99999999999997 in floating point: the exp size is 228, make_divisible(228) 232.
    assert hidden == make_divisible(round(float(parse_op(op).expansion) * in_channels * width))
    stages = [[[16, in_channels], ["k3_e1"], 2], [[in_channels, in_channels], ["k3_e1", op], 1]]
    network = BASE.build(genotype_from_data({"base": "mobilenetv3", "width_mult": width, "stages": stages}))
    block = network.get_submodule(network.layer_paths[1][1])
    assert block.hidden_channels == hidden == block.block[0][0].out_channels


def test_imagenet_weights_offline_say_to_pass_a_file(offline_hub: list[str]) -> None:
    with pytest.raises(WeightsError, match="ImageNet weights for mobilenetv3 .* pass it with --weights PATH"):
        BASE.imagenet_state_dict()
    assert len(offline_hub) == 1 and offline_hub[0].startswith("https://download.pytorch.org/models/")


@pytest.mark.slow  # the demo's default pretraining: about 2.5 min on 2 CPU cores
def test_default_demo_pretraining_classifies_held_out_crops(tmp_path: Path) -> None:
    """MobileNetV3's BN momentum (0.01) leaves stale running statistics after the demo's 224 steps;
    the pretraining re-estimates them, so that the eval-mode network classifies held-out crops
    (it was at chance, 1/6, before)."""
    from netadapt.jobs.pretrain import pretrain_base_classifier

    result = pretrain_base_classifier("mobilenetv3", out=tmp_path / "mbv3.pth", progress=False)
    assert result.val_accuracy > 0.9, result
