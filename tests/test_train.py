"""Detector training, evaluation and prediction through the CLI, as users run them.

Real subprocesses of the installed script (SIGKILL and resume, torchrun with two processes),
a tiny demo dataset written by the project itself, real pycocotools evaluation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from typer.testing import CliRunner

from netadapt import plugins
from netadapt.cli.main import app
from netadapt.data.demo import generate_demo_dataset
from netadapt.data.sources import DataSplit
from netadapt.hookspecs import hookimpl
from tests.conftest import kill_at_first_checkpoint

NETADAPT = shutil.which("netadapt")
TORCHRUN = shutil.which("torchrun")
pytestmark = pytest.mark.skipif(NETADAPT is None, reason="the netadapt script is not installed")

TINY = ["--weights", "none", "--batch-size", "4", "--set", "train.input_size=160", "--set", "train.workers=0",
        "--set", "train.warmup_iterations=2", "--set", "train.log_every=1", "--set", "train.eval_batch_size=8"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("data") / "demo", num_train=16, num_val=8, image_size=160, seed=3)


def netadapt(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([NETADAPT, *args], capture_output=True, text=True, timeout=600, **kwargs)


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_short_training_lowers_the_loss_and_evaluates(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = netadapt(
        "train", "--data", str(tiny_data), *TINY, "--epochs", "6", "--lr", "0.01", "--set", "train.optimizer=rmsprop", "--out", str(run), "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    losses = [record["loss"] for record in _log(run) if "loss" in record]
    assert len(losses) == summary["iterations"] == 24
    assert sum(losses[-4:]) / 4 < 0.85 * sum(losses[:4]) / 4, losses  # CPU runs are deterministic: 0.77 here
    assert set(summary["metrics"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}
    assert json.loads((run / "metrics.json").read_text()) == summary["metrics"]
    assert _log(run)[-1]["eval"] == summary["metrics"]

    # `netadapt eval` on the trained model reproduces the metrics the run ended with.
    evaluated = netadapt("eval", str(run / "model.pth"), "--data", str(tiny_data), "--out", str(tmp_path / "eval"), "--json", "--workers", "0")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout) == summary["metrics"]
    detections = json.loads((tmp_path / "eval" / "detections.json").read_text())
    assert detections and {"image_id", "category_id", "bbox", "score"} <= set(detections[0])

    # `netadapt predict` draws what the model finds.
    image = next((tiny_data / "images" / "val").iterdir())
    predicted = netadapt("predict", str(image), "--checkpoint", str(run / "model.pth"), "--out", str(tmp_path / "pred"), "--score", "0.05", "--json")
    assert predicted.returncode == 0, predicted.stderr
    (item,) = json.loads(predicted.stdout)
    png = Path(item["out"])
    assert png.read_bytes()[:4] == b"\x89PNG"

    # A file that is not an image: one line naming it, and no drawing of the good one either.
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not a jpeg")
    refused = netadapt("predict", str(image), str(garbage), "--checkpoint", str(run / "model.pth"), "--out", str(tmp_path / "refused"))
    assert refused.returncode != 0 and f"{garbage}: cannot read image" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "refused").exists()


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model.pth", weights_only=True)["state_dict"]


@pytest.mark.slow  # 20 s; test_reliability's signal resume checks the same equality in the default run
def test_resume_after_sigkill_ends_with_the_same_weights(tiny_data: Path, tmp_path: Path) -> None:
    args = ["train", "--data", str(tiny_data), *TINY, "--epochs", "3", "--set", "train.checkpoint_every=2", "--quiet"]
    straight = netadapt(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr

    run = tmp_path / "killed"
    kill_at_first_checkpoint([NETADAPT, *args, "--out", str(run)], run)
    assert not (run / "model.pth").exists()
    killed_at = torch.load(run / "last.pth", weights_only=True)["iteration"]
    assert 2 <= killed_at < 12

    resumed = netadapt(*args, "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    expected, got = _final_weights(tmp_path / "straight"), _final_weights(run)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    assert [r["iteration"] for r in _log(run)] == [r["iteration"] for r in _log(tmp_path / "straight")]


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
def test_torchrun_two_processes_train_and_evaluate(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    result = subprocess.run(
        [TORCHRUN, "--standalone", "--nproc_per_node", "2", "--no-python", NETADAPT, "train", "--data", str(tiny_data),
         *TINY, "--epochs", "1", "--out", str(run), "--quiet", "--device", "cpu"],
        capture_output=True, text=True, timeout=600, env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    iterations = [record["iteration"] for record in _log(run) if "loss" in record]
    assert iterations == [1, 2]  # 16 images over 2 ranks × batch 4; rank 0 alone writes
    metrics = json.loads((run / "metrics.json").read_text())
    detections = json.loads((run / "detections.json").read_text())
    assert {d["image_id"] for d in detections} <= set(range(1, 9)) and len(metrics) == 12
    assert (run / "model.pth").is_file()


def test_eval_of_a_detections_file_equals_pycocotools(tmp_path: Path) -> None:
    gt = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 200, "height": 200} for i in (1, 2, 3)],
        "categories": [{"id": 1, "name": "a"}, {"id": 4, "name": "b"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 40], "area": 2000, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 4, "bbox": [100, 120, 20, 20], "area": 400, "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [5, 5, 150, 150], "area": 22500, "iscrowd": 0},
            {"id": 4, "image_id": 3, "category_id": 4, "bbox": [60, 60, 30, 60], "area": 1800, "iscrowd": 0},
        ],
    }
    gt_file = tmp_path / "gt.json"
    gt_file.write_text(json.dumps(gt))
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9} for a in gt["annotations"]]
    imperfect = [dict(perfect[0], bbox=[14, 12, 50, 40]), dict(perfect[2], score=0.5), perfect[3],
                 {"image_id": 2, "category_id": 4, "bbox": [0, 0, 30, 30], "score": 0.8}]
    runner = CliRunner()
    for name, detections in (("perfect", perfect), ("imperfect", imperfect)):
        detections_file = tmp_path / f"{name}.json"
        detections_file.write_text(json.dumps(detections))
        result = runner.invoke(app, ["eval", "--detections", str(detections_file), "--annotations", str(gt_file), "--json"])
        assert result.exit_code == 0, result.output
        ours = json.loads(result.output)
        coco = COCO(str(gt_file))
        evaluator = COCOeval(coco, coco.loadRes(str(detections_file)), iouType="bbox")
        evaluator.evaluate(), evaluator.accumulate(), evaluator.summarize()
        assert list(ours.values()) == [float(v) for v in evaluator.stats]
        if name == "perfect":
            assert ours["AP"] == 1.0 and ours["AP50"] == 1.0
        else:
            assert 0 < ours["AP"] < 1


class _TinyDataset:
    """A dataset plugin: COCO-format splits from somewhere only it knows."""

    name = "tiny-gt"

    def __init__(self, root: Path) -> None:
        self.root = root

    def splits(self, root=None):
        return {"val": DataSplit(self.root, self.root / "gt.json")}


def test_a_plugin_dataset_is_chosen_by_name(tmp_path: Path) -> None:
    (tmp_path / "gt.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "1.jpg", "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0}],
    }))
    (tmp_path / "det.json").write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "score": 1.0}]))

    class Plugin:
        @staticmethod
        @hookimpl
        def register_datasets(register) -> None:
            register(_TinyDataset.name, _TinyDataset(tmp_path))

    manager = plugins.get_plugin_manager()
    manager.register(Plugin, name="dataset-plugin")
    try:
        result = CliRunner().invoke(app, ["eval", "--dataset", "tiny-gt", "--detections", str(tmp_path / "det.json"), "--json"])
    finally:
        manager.unregister(name="dataset-plugin")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["AP"] == pytest.approx(1.0)


def _corrupt(data: Path, change) -> None:
    annotations = json.loads((data / "train.json").read_text())
    change(annotations)
    (data / "train.json").write_text(json.dumps(annotations))


BAD_DATA = {
    "truncated": (lambda d: (d / "train.json").write_text((d / "train.json").read_text()[:200]), "train.json: malformed JSON"),
    "unknown_image": (lambda d: _corrupt(d, lambda a: a["annotations"][0].update(image_id=999)), "image id 999"),
    "unknown_category": (lambda d: _corrupt(d, lambda a: a["annotations"][0].update(category_id=77)), "category id 77"),
    "missing_image": (lambda d: (d / "images" / "train" / "000002.jpg").unlink(), "000002.jpg"),
    "unreadable_image": (lambda d: (d / "images" / "train" / "000001.jpg").write_bytes(b"garbage"), "000001.jpg: cannot decode image (image id 1)"),
}


@pytest.mark.parametrize("kind", sorted(BAD_DATA))
def test_bad_data_is_one_clear_error_and_writes_nothing(kind: str, tmp_path: Path) -> None:
    data = generate_demo_dataset(tmp_path / "data", num_train=4, num_val=2, image_size=64, seed=1)
    corrupt, message = BAD_DATA[kind]
    corrupt(data)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--data", str(data), *TINY, "--epochs", "1", "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and message in result.output
    assert not out.exists()


def test_learning_rate_warm_up_and_step_decay_at_1_based_epochs() -> None:
    from netadapt.config import TrainConfig
    from netadapt.engine.loop import lr_factor

    config = TrainConfig(lr_schedule="step", lr_milestones=[3], lr_gamma=0.1, warmup_iterations=10, warmup_factor=0.0, epochs=4)
    factor = [lr_factor(it, config=config, total_iterations=40, iterations_per_epoch=10) for it in range(40)]
    assert factor[0] == 0.0 and factor[5] == 0.5 and factor[10] == factor[19] == 1.0
    assert factor[20] == pytest.approx(0.1) and factor[39] == pytest.approx(0.1)  # epoch 3 starts at iteration 20
    cosine = TrainConfig(lr_schedule="cosine", warmup_iterations=0, epochs=4)
    assert lr_factor(20, config=cosine, total_iterations=40, iterations_per_epoch=10) == pytest.approx(0.5)


def test_json_output_is_json_alone_when_the_backbone_is_remapped(tiny_data: Path, tmp_path: Path) -> None:
    """``--json`` keeps stdout machine-readable: the remapping announcement goes to stderr."""
    weights = tmp_path / "mobilenetv2.pth"
    torch.save(plugins.bases().get("mobilenetv2").build(plugins.bases().get("mobilenetv2").base_genotype()).state_dict(), weights)
    flags = [flag if flag != "none" else str(weights) for flag in TINY]
    result = netadapt("train", "--data", str(tiny_data), *flags, "--epochs", "1", "--out", str(tmp_path / "run"), "--json")
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) >= {"iterations", "metrics"}
    assert "layers remapped from" in result.stderr


@pytest.mark.slow  # over 10 s (two trainings): the default run must stay under 10 min on 2 cores
def test_batchnorm_too_slow_for_the_run_is_reestimated_after_training(tiny_data: Path, tmp_path: Path) -> None:
    """A base whose BatchNorm momentum is tiny (3e-4, as some torchvision networks use) would end detection training
    with the statistics it started with; ``train.bn_reestimate: auto`` re-estimates them on training images, and
    says so in the log. With ``off`` they stay where they started, which is what the trainer did before."""
    from netadapt.config import TrainConfig
    from netadapt.detectors.model import DetectorSpec
    from netadapt.engine.batchnorm import BATCH_NORMS, stale_batchnorm
    from netadapt.engine.train import train_detector

    split = DataSplit(tiny_data / "images" / "train", tiny_data / "train.json")
    train_set = split.open(train=True, input_size=96)
    spec = DetectorSpec("ssdlite", "mobilenetv2", plugins.bases().get("mobilenetv2").base_genotype(), train_set.class_names, 96, {})

    def slow_batchnorm(model: torch.nn.Module) -> None:
        for module in model.modules():
            if isinstance(module, BATCH_NORMS):
                module.momentum = 3e-4

    means = {}
    for mode in ("auto", "off"):
        config = TrainConfig(input_size=96, batch_size=4, epochs=2, workers=0, log_every=1, bn_reestimate=mode)
        run = tmp_path / mode
        train_detector(spec, config, train_set=train_set, val_set=None, out_dir=run, init=slow_batchnorm, progress=False)
        state = torch.load(run / "model.pth", weights_only=True)["state_dict"]
        means[mode] = max(float(state[key].abs().max()) for key in state if key.endswith("running_mean"))
        records = [record for record in _log(run) if "bn_reestimated" in record]
        if mode == "auto":
            assert len(records) == 1 and records[0]["bn_reestimated"]["images"] == 16, records
            assert "average over more than 25% of the run's 8 iterations" in records[0]["bn_reestimated"]["why"]
        else:
            assert records == []
    # A fresh network's running means start at 0; 8 steps at momentum 3e-4 move them by at most 0.24% of the
    # batch means (measured: 0.013 where the re-estimated means reach 5.6); re-estimation sets them to the images' means.
    assert means["off"] < 0.01 * means["auto"], means
    network = torch.nn.Sequential(torch.nn.BatchNorm2d(3, momentum=0.03), torch.nn.BatchNorm2d(3, momentum=0.1))
    assert stale_batchnorm(network, iterations=100) == ["0"] and stale_batchnorm(network, iterations=140) == []
