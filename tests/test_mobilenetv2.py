"""Our MobileNetV2 is torchvision's when built from the base genotype, and exposes detector taps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from netadapt import plugins
from netadapt.errors import GenotypeError, WeightsError
from netadapt.genotype import load_genotype, parse_op
from netadapt.testing import randomize_batchnorm


@pytest.mark.parametrize("width_mult", [1.0, 0.5])
def test_torchvision_equivalence(mobilenetv2_yaml: Path, width_mult: float) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v2(width_mult=width_mult).eval()
    randomize_batchnorm(reference)
    base = plugins.bases().get("mobilenetv2")
    genotype = load_genotype(mobilenetv2_yaml)
    if width_mult != 1.0:
        genotype = base.base_genotype(width_mult=width_mult)
    ours = base.build(genotype).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert (ours.features(images) - reference.features(images)).abs().max() < 1e-5
        assert (ours(images) - reference(images)).abs().max() < 1e-5


def test_taps_follow_the_architecture(mobilenetv2_yaml: Path, paper_yaml: Path, tmp_path: Path) -> None:
    base = plugins.bases().get("mobilenetv2")
    network = base.build(load_genotype(mobilenetv2_yaml)).eval()
    reference = torchvision.models.mobilenet_v2().eval()
    network.load_state_dict(reference.state_dict())
    images = torch.randn(1, 3, 320, 320)
    with torch.no_grad():
        taps = network.forward_taps(images)
        # torchvision's SSDLite tap: the expansion output of features[14] (first block of the 160 stage).
        expected = reference.features[14].conv[0](reference.features[:14](images))
    assert list(taps) == ["stride16", "stride32"]
    assert taps["stride16"].shape == (1, 576, 20, 20) and taps["stride32"].shape == (1, 1280, 10, 10)
    assert torch.equal(taps["stride16"], expected)
    assert network.tap_channels == {"stride16": 576, "stride32": 1280}

    narrow = tmp_path / "narrow.yaml"
    narrow.write_text(paper_yaml.read_text().replace("[[96, 160], [k5_e6,", "[[96, 160], [k5_e3,"))
    assert base.build(load_genotype(narrow)).tap_channels["stride16"] == 288


def test_imagenet_weights_offline_say_to_pass_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache: a download must be attempted

    attempts = []

    def offline(url, *args, **kwargs):  # what torch.hub's download gives on a machine without network
        attempts.append(url)
        raise OSError("Network is unreachable")

    # torch.hub.load_state_dict_from_url looks the download function up when it runs (torchvision holds
    # its own reference to load_state_dict_from_url, so patching that would not reach it).
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError, match="pass it with --weights PATH"):
        plugins.bases().get("mobilenetv2").imagenet_state_dict()
    assert len(attempts) == 1 and attempts[0].startswith("https://download.pytorch.org/models/")


@pytest.mark.parametrize(("op", "reason"), [("k3_e6_se", "squeeze-excitation"), ("k5_e6_hs", "Hardswish"), ("k3_e2.5", "fractional expansion")])
def test_ops_outside_the_family_are_refused_naming_the_layer(op: str, reason: str) -> None:
    base = plugins.bases().get("mobilenetv2")
    genotype = base.base_genotype()
    ops = [list(stage.ops) for stage in genotype.stages]
    ops[3][2] = parse_op(op)
    with pytest.raises(GenotypeError, match=rf"^base mobilenetv2 cannot build stage 4, op 3 \({op}\): .*{reason}[^\n]*$"):
        base.build(genotype.with_ops(ops))
