"""`netadapt train / eval / search / cost --detector retinanet` as users run them: real subprocesses of
the installed script, the project's demo data (tiny), real pycocotools evaluation."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from typer.testing import CliRunner

from netadapt import plugins
from netadapt.cli.main import app
from netadapt.genotype import load_genotype
from netadapt.testing import config_flags, run_netadapt


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_train_then_eval(tiny_data: Path, tiny_train_config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # score_thresh 0: two iterations leave every score near the 0.01 prior, under the 0.05 default
    config = dataclasses.replace(tiny_train_config, log_every=1, detector_options={"score_thresh": 0.0, "fpn_channels": 64})
    trained = run_netadapt("train", "--detector", "retinanet", "--data", str(tiny_data), "--weights", "none", "--out", str(run),
                           "--quiet", "--json", *config_flags(config))
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["iterations"] == 2
    losses = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(losses) == 2 and all({"classification", "bbox_regression"} <= set(record) for record in losses)
    checkpoint = torch.load(run / "model.pth", weights_only=True)
    assert checkpoint["spec"]["detector"] == "retinanet"
    assert checkpoint["spec"]["options"] == {"score_thresh": 0.0, "fpn_channels": 64}
    assert any(key.startswith("backbone.fpn.") for key in checkpoint["state_dict"])

    evaluated = run_netadapt("eval", str(run / "model.pth"), "--data", str(tiny_data), "--out", str(tmp_path / "eval"), "--workers", "0")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "AP @ IoU 0.50:0.95" in evaluated.stdout and "AR @ 100 detections" in evaluated.stdout
    detections = json.loads((tmp_path / "eval" / "detections.json").read_text())
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert len(detections) == 4 * 100  # 4 val images, 100 detections each (FNA's max_per_img)
    assert {result["category_id"] for result in detections} <= set(range(1, 7))  # the demo's 6 classes, no background
    # The printed metrics are pycocotools' own on those detections.
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(tiny_data / "val.json"))
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(str(tmp_path / "eval" / "detections.json")), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert list(metrics.values()) == pytest.approx(evaluator.stats.tolist())
    assert f"{metrics['AR100']:.3f}" in evaluated.stdout


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_search(tiny_data: Path, tiny_search_config, tmp_path: Path) -> None:
    # one weight step and one α step on 4 images each (the darts strategy: every candidate runs)
    config = dataclasses.replace(tiny_search_config, detector_options={"fpn_channels": 32})
    run = tmp_path / "search"
    searched = run_netadapt("search", "--detector", "retinanet", "--data", str(tiny_data), "--weights", "none", "--out", str(run),
                            "--quiet", "--json", *config_flags(config))
    assert searched.returncode == 0, searched.stderr
    assert json.loads(searched.stdout)["iterations"] == 1
    genotype = load_genotype(run / "genotype.yaml")
    plugins.bases().get("mobilenetv2").build(genotype)
    assert genotype.input_size == 64
    (record,) = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"alpha_task_loss"' in line]
    assert record["alpha_task_loss"] > 0 and record["loss"] > 0
    supernet = torch.load(run / "supernet.pth", weights_only=True)
    assert supernet["detector"] == "retinanet"
    assert supernet["detector_state"]["backbone.fpn.inner_blocks.0.0.weight"].shape[0] == 32


def test_cost(genotypes: Path) -> None:
    counted = run_netadapt("cost", str(genotypes / "paper_ssdlite.yaml"), "--detector", "retinanet", "--json")
    assert counted.returncode == 0, counted.stderr
    cost = json.loads(counted.stdout)
    assert (cost["detector"], cost["input_size"], cost["num_classes"]) == ("retinanet", 320, 81)
    assert list(cost["parts"]) == ["backbone", "fpn", "head"]
    assert sum(part["params"] for part in cost["parts"].values()) == cost["params"]
    model = plugins.detectors().get("retinanet").build(
        plugins.bases().get("mobilenetv2").build(load_genotype(genotypes / "paper_ssdlite.yaml")), num_classes=81
    )
    assert cost["params"] == sum(p.numel() for p in model.parameters())
    assert cost["parts"]["head"]["madds"] > cost["parts"]["backbone"]["madds"] > 0


def test_netadapt_config_lists_the_options() -> None:
    result = CliRunner().invoke(app, ["config", "--section", "train", "--json"])
    assert result.exit_code == 0, result.output
    options = {row["key"]: row["default"] for row in json.loads(result.output) if row["plugin"] == "detector: retinanet"}
    assert options["detector_options.fpn_channels"] == 256 and options["detector_options.anchor_scale"] == 4.0
