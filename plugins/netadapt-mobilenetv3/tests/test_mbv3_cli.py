"""The commands as users run them on MobileNetV3: real subprocesses of the installed ``netadapt`` script."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torchvision

from netadapt import plugins
from netadapt.genotype import load_genotype
from netadapt.testing import config_flags, randomize_batchnorm, run_netadapt
from netadapt.weights import load_network
from netadapt_mobilenetv3 import GENOTYPES

LARGE = GENOTYPES / "mobilenetv3_large.yaml"
# MobileNetV3-Large in the paper (Howard et al. 2019, Table 3): 219M MAdds; torchvision: 5,483,032 parameters.
PAPER_MADDS = 219e6
TORCHVISION_PARAMS = 5_483_032


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_show_and_cost_of_the_example_genotype() -> None:
    shown = run_netadapt("show", str(LARGE))
    assert shown.returncode == 0, shown.stderr
    assert "k3_e2.3_hs" in shown.stdout and "k5_e6_se_hs" in shown.stdout
    cost = run_netadapt("cost", str(LARGE), "--json")
    assert cost.returncode == 0, cost.stderr
    counted = json.loads(cost.stdout)
    assert counted["params"] == TORCHVISION_PARAMS
    assert abs(counted["madds"] - PAPER_MADDS) < 0.02 * PAPER_MADDS, counted["madds"]  # fvcore: 216.6M


@pytest.mark.slow  # a CLI remap and two forward passes (5 s); kernel growth's exactness is tested in tests/test_remap.py
def test_remap_of_torchvision_weights_into_larger_kernels_keeps_the_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = randomize_batchnorm(torchvision.models.mobilenet_v3_large(weights=None)).eval()
    torch.save(reference.state_dict(), tmp_path / "torchvision.pth")
    larger = tmp_path / "larger.yaml"  # k3 → k5 and k5 → k7 everywhere (Eq. 2)
    larger.write_text(re.sub(r"\bk([35])_", lambda m: f"k{int(m[1]) + 2}_", LARGE.read_text()))
    result = run_netadapt("remap", str(larger), "--weights", str(tmp_path / "torchvision.pth"), "--out", str(tmp_path / "larger.pth"), "--json")
    assert result.returncode == 0, result.stderr
    network, genotype = load_network(tmp_path / "larger.pth")
    layers = sum(1 for module in network.modules() if any(True for _ in module.parameters(recurse=False)))
    assert json.loads(result.stdout)["layers_remapped"] == layers  # every conv, BN and linear layer
    assert genotype == load_genotype(larger) and network.features[4].block[1][0].kernel_size == (7, 7)
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert (network(images) - reference(images)).abs().max() < 1e-5


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_search_without_a_space_uses_the_bases_own(tiny_data: Path, tiny_search_config, tmp_path: Path) -> None:
    run = tmp_path / "search"
    result = run_netadapt("search", "--base", "mobilenetv3", "--detector", "ssdlite", "--data", str(tiny_data), "--weights", "none",
                          "--out", str(run), "--quiet", "--json", *config_flags(tiny_search_config))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["iterations"] == 1
    genotype = load_genotype(run / "genotype.yaml")
    assert genotype.base == "mobilenetv3" and genotype.extra["search_space"] == "fna-mobilenetv3"
    assert genotype.extra["super_depths"] == [1, 4, 4, 4, 4, 4]
    styles = [{(op.se, op.hswish) for op in stage.ops} for stage in genotype.stages[1:]]
    assert styles == [{(False, False)}, {(True, False)}, {(False, True)}, {(True, True)}, {(True, True)}]
    plugins.bases().get("mobilenetv3").build(genotype)


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_train_and_eval_of_a_tiny_mobilenetv3_ssdlite(tiny_data: Path, tiny_train_config, tmp_path: Path) -> None:
    run = tmp_path / "train"
    trained = run_netadapt("train", "--base", "mobilenetv3", "--data", str(tiny_data), "--weights", "none", "--out", str(run), "--json",
                           *config_flags(tiny_train_config))
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["iterations"] == 2
    checkpoint = torch.load(run / "model.pth", weights_only=True)
    assert checkpoint["spec"]["base"] == "mobilenetv3" and "backbone.body.features.13.block.2.fc1.weight" in checkpoint["state_dict"]
    evaluated = run_netadapt("eval", str(run / "model.pth"), "--data", str(tiny_data), "--out", str(tmp_path / "eval"), "--json", "--workers", "0")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == summary["metrics"]
