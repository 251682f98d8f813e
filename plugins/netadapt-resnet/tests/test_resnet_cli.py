"""The commands as users run them on ResNets: real subprocesses of the installed ``netadapt`` script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision

from netadapt import plugins
from netadapt.config import SearchConfig, TrainConfig
from netadapt.genotype import load_genotype
from netadapt.testing import TINY_SEARCH, TINY_TRAIN, config_flags, run_netadapt
from netadapt_resnet import GENOTYPES

# Two searched stages over two widths and skip: the CLI path of fna-resnet (fractional candidates
# included) at a fraction of its size; fna-resnet itself runs in the slow test below.
TINY_SPACE = "name: tiny-resnet\ndepths: [2, 2, 2, 2]\ncandidates: [k3_e0.5, k3_e1]\nskip: true\nsearched_stages: [3, 4]\n"


def search(base: str, detector: str, data: Path, out: Path, *extra: str):
    return run_netadapt("search", "--base", base, "--detector", detector, "--data", str(data), "--weights", "none", "--out", str(out),
                        "--quiet", "--json", *config_flags(SearchConfig(**TINY_SEARCH)), *extra)


def test_cost_of_resnet50_retinanet_is_torchvisions_without_the_p3_level() -> None:
    pytest.importorskip("netadapt_retinanet", reason="the netadapt-retinanet plugin is not installed")
    result = run_netadapt("cost", str(GENOTYPES / "resnet50.yaml"), "--detector", "retinanet", "--num-classes", "81", "--input-size", "320", "--json")
    assert result.returncode == 0, result.stderr
    reference = torchvision.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=81)
    p3_convs = [reference.backbone.fpn.inner_blocks[0], reference.backbone.fpn.layer_blocks[0]]  # the FPN reads C4 and C5 only
    expected = sum(p.numel() for p in reference.parameters()) - sum(p.numel() for m in p3_convs for p in m.parameters())
    assert json.loads(result.stdout)["params"] == expected  # 33,139,261 (torchvision: 33,860,669)


@pytest.fixture(scope="module")
def searched(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("search")
    (run / "space.yaml").write_text(TINY_SPACE)
    result = search("resnet18", "ssdlite", tiny_data, run / "out", "--space", str(run / "space.yaml"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["iterations"] == 1  # 8 images: 4 for the weights, 4 for α
    return run / "out" / "genotype.yaml"


@pytest.mark.slow  # the plugin's CLI search → train → export chain: about 19 s; the default run must stay under 10 min
def test_search_writes_a_resnet18_genotype(searched: Path) -> None:
    genotype = load_genotype(searched)
    assert genotype.base == "resnet18" and genotype.extra["search_space"] == "tiny-resnet"
    assert {op.name for stage in genotype.stages[2:] for op in stage.ops} <= {"k3_e0.5", "k3_e1", "skip"}
    assert genotype.stages[:2] == plugins.bases().get("resnet18").base_genotype().stages[:2]


@pytest.fixture(scope="module")
def trained(searched: Path, tiny_data: Path) -> tuple[Path, dict]:
    run = searched.parent.parent / "train"
    result = run_netadapt("train", str(searched), "--data", str(tiny_data), "--weights", "none", "--out", str(run), "--json",
                          *config_flags(TrainConfig(**TINY_TRAIN)))
    assert result.returncode == 0, result.stderr
    return run / "model.pth", json.loads(result.stdout)


@pytest.mark.slow  # the plugin's CLI search → train → export chain: about 19 s; the default run must stay under 10 min
def test_the_searched_genotype_trains(trained: tuple[Path, dict]) -> None:
    model, summary = trained
    assert summary["iterations"] == 2
    checkpoint = torch.load(model, weights_only=True)
    assert checkpoint["spec"]["base"] == "resnet18" and "backbone.body.layer4.0.downsample.0.weight" in checkpoint["state_dict"]
    assert not any(key.startswith("backbone.body.fc.") for key in checkpoint["state_dict"])  # the classifier is dropped


@pytest.mark.slow  # the plugin's CLI search → train → export chain: about 19 s; the default run must stay under 10 min
def test_the_trained_detector_exports_and_passes_the_check(trained: tuple[Path, dict], tiny_data: Path, tmp_path: Path) -> None:
    image = next((tiny_data / "images" / "val").iterdir())
    # TorchScript: half the time of ONNX here; the package README shows the ONNX export of a demo search.
    result = run_netadapt("export", str(trained[0]), "--format", "torchscript", "--out", str(tmp_path / "model.pt"), "--image", str(image))
    assert result.returncode == 0, result.stderr
    assert "max abs difference to PyTorch" in result.stdout and (tmp_path / "model.pt").is_file()


@pytest.mark.slow  # the fna-resnet super network of ResNet-50 (160M parameters) under RetinaNet: 155 s on 2 shared CPU cores
def test_resnet50_retinanet_search_in_fna_resnet(tiny_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("netadapt_retinanet", reason="the netadapt-retinanet plugin is not installed")
    result = search("resnet50", "retinanet", tiny_data, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    genotype = load_genotype(tmp_path / "out" / "genotype.yaml")
    assert genotype.base == "resnet50" and genotype.extra["search_space"] == "fna-resnet"
    assert genotype.extra["super_depths"] == [3, 4, 6, 3]
    plugins.bases().get("resnet50").build(genotype)
