"""Hostile and mistaken inputs (issue 15): no data loss, no code execution, one line for every bad input.

The CLI runs as users run it, in a subprocess of the installed script; data loading runs with
workers (``train.workers=2``), where errors come back from another process. Runs are tiny: a
one-op-per-stage genotype at 64×64 on 9 demo images, two iterations per epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
import yaml

from netadapt import plugins
from netadapt.bases.imagenet import torchvision_weights
from netadapt.config import SearchConfig, TrainConfig, apply_overrides, read_config_file, section_config
from netadapt.data.demo import generate_demo_dataset
from netadapt.detectors.model import DetectorSpec, build_detector, save_detector
from netadapt.engine.evaluate import evaluate_coco
from netadapt.engine.predict import output_names
from netadapt.engine.resume import check_finite_loss
from netadapt.engine.rundir import LOCK_NAME, run_directory
from netadapt.engine.runlog import RunLog
from netadapt.engine.sampling import ResumableBatchSampler
from netadapt.errors import ConfigError, DataError, NetadaptWarning, RunError, WeightsError
from netadapt.files import load_torch_file, record_output
from netadapt.genotype import genotype_from_data
from tests.conftest import STAGES

NETADAPT = shutil.which("netadapt")
pytestmark = pytest.mark.skipif(NETADAPT is None, reason="the netadapt script is not installed")

# 9 training images with batch 4: 4 + 4 + a last batch of one, which is dropped (item 6).
TRAIN = ["--weights", "none", "--batch-size", "4", "--set", "train.input_size=64", "--set", "train.workers=2",
         "--set", "train.warmup_iterations=1", "--set", "train.log_every=1", "--set", "train.eval_batch_size=4", "--quiet"]


def netadapt(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([NETADAPT, *args], capture_output=True, text=True, timeout=300, **kwargs)


def one_error_line(result: subprocess.CompletedProcess, *fragments: str, code: int = 2) -> str:
    """The command failed with ``code`` and said so in exactly one stderr line holding every fragment."""
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("data") / "demo", num_train=9, num_val=2, image_size=64, seed=2)


@pytest.fixture(scope="module")
def genotype_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("genotype") / "tiny.yaml"
    path.write_text(yaml.safe_dump({"base": "mobilenetv2", "input_size": 64, "stages": STAGES}))
    return path


@pytest.fixture(scope="module")
def finished_run(data: Path, genotype_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of training (two iterations: the last batch of one is dropped), with workers."""
    run = tmp_path_factory.mktemp("runs") / "done"
    result = netadapt("train", str(genotype_file), "--data", str(data), *TRAIN, "--epochs", "1", "--out", str(run))
    assert result.returncode == 0, result.stderr
    return run


def _copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


# 1. Data loss: --overwrite replaces only a netadapt demo dataset.
@pytest.mark.slow  # 13 s (renders the demo twice)
def test_demo_overwrite_replaces_only_a_demo_dataset(tmp_path: Path) -> None:
    thesis = tmp_path / "mine" / "chapter" / "thesis.tex"
    thesis.parent.mkdir(parents=True)
    thesis.write_text("years of work")
    args = ["data", "demo", "--out", str(tmp_path / "mine"), "--train", "1", "--val", "1", "--image-size", "64"]
    line = one_error_line(netadapt(*args), "exists and is not empty", "--overwrite")
    assert "overwrite=True" not in line
    one_error_line(netadapt(*args, "--overwrite"), "no netadapt demo dataset")
    assert thesis.read_text() == "years of work"

    demo = ["data", "demo", "--out", str(tmp_path / "demo"), "--train", "1", "--val", "1", "--image-size", "64"]
    assert netadapt(*demo).returncode == 0
    assert netadapt(*demo, "--seed", "1", "--overwrite").returncode == 0
    assert json.loads((tmp_path / "demo" / "train.json").read_text())["info"]["seed"] == 1


# 2, 13, 14. A resumable run is not started over, and a resumed one keeps its settings.
@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_a_resumable_run_is_not_overwritten(finished_run: Path, data: Path, genotype_file: Path, tmp_path: Path) -> None:
    run = _copy_run(finished_run, tmp_path / "run")
    before = {name: (run / name).read_bytes() for name in ("last.pth", "log.jsonl")}
    base = ["train", str(genotype_file), "--data", str(data), *TRAIN, "--epochs", "1"]

    one_error_line(netadapt(*base, "--out", str(run)), str(run), "--resume", "--force")
    assert {name: (run / name).read_bytes() for name in before} == before

    # 13: a setting that changes the result is refused, naming it and both values; workers may change.
    one_error_line(netadapt(*base, "--lr", "0.5", "--out", str(run), "--resume"), "train.lr is 0.5", "started with 0.002")
    one_error_line(netadapt(*base[:-1], "2", "--out", str(run), "--resume"), "train.epochs is 2", "started with 1")
    assert netadapt(*base, "--set", "train.workers=0", "--out", str(run), "--resume").returncode == 0

    # 14: --resume of a folder without last.pth (a typo in --out) does not start from scratch.
    one_error_line(netadapt(*base, "--out", str(tmp_path / "typo"), "--resume"), "no run to resume", "typo")
    assert not (tmp_path / "typo").exists()

    assert netadapt(*base, "--out", str(run), "--force").returncode == 0
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]  # one run's: started over
    assert [record["iteration"] for record in records if "loss" in record] == [1, 2] and sum("eval" in record for record in records) == 1


# 3, 18. One run per directory; a dead owner's lock and temporary files are cleaned up.
@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_a_run_directory_is_locked_and_a_dead_owners_lock_is_taken_over(data: Path, genotype_file: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    base = ["train", str(genotype_file), "--data", str(data), *TRAIN, "--epochs", "1", "--out", str(run)]
    with run_directory(run, resume=False):  # this test process holds the run directory
        one_error_line(netadapt(*base), "in use by another netadapt run", f"pid {os.getpid()}")
    assert not run.exists()  # the holder wrote nothing and left nothing

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run.mkdir()
    (run / LOCK_NAME).write_text(dead.stdout)
    stale = [run / ".last.pth.k2j4h1x0.tmp", run / ".genotype.yaml.abcd1234.tmp"]
    for path in stale:
        record_output(run / path.name.split(".tmp")[0][1:].rsplit(".", 1)[0])  # the killed run began writing them
        path.write_bytes(b"half a checkpoint")
    result = netadapt(*base)
    assert result.returncode == 0, result.stderr
    assert f"taking over the lock of process {dead.stdout.strip()}" in result.stderr
    assert not any(path.exists() for path in stale) and not (run / LOCK_NAME).exists()


# 4, 8. predict: same stems get distinct names; an unwritable --out is one line before any work.
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = DetectorSpec("ssdlite", "mobilenetv2", genotype_from_data({"base": "mobilenetv2", "stages": STAGES}), ["bg", "a"], 64, {})
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pth"
    save_detector(path, spec, build_detector(spec))
    return path


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_predict_gives_images_of_the_same_name_distinct_outputs(checkpoint: Path, data: Path, tmp_path: Path) -> None:
    images = sorted((data / "images" / "train").iterdir())[:2]
    for folder, image in zip("ab", images):
        (tmp_path / folder).mkdir()
        shutil.copy(image, tmp_path / folder / "x.jpg")
    result = netadapt("predict", str(tmp_path / "a" / "x.jpg"), str(tmp_path / "b" / "x.jpg"), "--checkpoint", str(checkpoint),
                      "--out", str(tmp_path / "P"), "--json")
    assert result.returncode == 0, result.stderr
    outputs = [Path(item["out"]) for item in json.loads(result.stdout)]
    assert [path.name for path in outputs] == ["x.png", "x-2.png"] and all(path.is_file() for path in outputs)
    assert output_names([Path("X.jpg"), Path("x.png"), Path("x-2.jpg")]) == ["X.png", "x-2.png", "x-2-2.png"]

    (tmp_path / "file").write_text("")
    one_error_line(netadapt("predict", str(images[0]), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "file")),
                   str(tmp_path / "file"), "cannot write")


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_outputs_that_cannot_be_written_are_one_line(checkpoint: Path, genotype_file: Path, data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    one_error_line(netadapt("remap", str(genotype_file), "--out", str(folder)), str(folder), "is a directory")
    one_error_line(netadapt("show", str(genotype_file), "--png", str(folder)), str(folder), "is a directory")
    (tmp_path / "file").write_text("")
    one_error_line(netadapt("train", str(genotype_file), "--data", str(data), *TRAIN, "--out", str(tmp_path / "file")),
                   str(tmp_path / "file"), "cannot write")
    # eval fails before it evaluates: no detections are computed for nothing.
    one_error_line(netadapt("eval", str(checkpoint), "--data", str(data), "--out", str(tmp_path / "file" / "eval")),
                   "cannot write")


# 5. --weights imagenet: the cached file must carry the published hash and is read weights-only.
class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _named_by_hash(folder: Path, stem: str, content: bytes) -> Path:
    path = folder / f"{stem}-{hashlib.sha256(content).hexdigest()[:8]}.pth"
    path.write_bytes(content)
    return path


def test_imagenet_weights_are_hash_checked_and_never_unpickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    marker = tmp_path / "executed"
    torch.save({"x": Payload(marker)}, tmp_path / "evil.pth")
    evil = (tmp_path / "evil.pth").read_bytes()

    # The published name of torchvision's MobileNetV2 weights, holding a malicious pickle: the hash differs.
    (cache / "mobilenet_v2-b0353104.pth").write_bytes(evil)
    with pytest.raises(WeightsError, match="not the published mobilenetv2 ImageNet weights .*b0353104"):
        plugins.bases().get("mobilenetv2").imagenet_state_dict()
    # Even a file whose hash matches its name is read with weights_only=True: the code never runs.
    forged = _named_by_hash(cache, "forged", evil)
    with pytest.raises(WeightsError, match="Python objects other than tensors, which are never loaded") as refused:
        torchvision_weights(types.SimpleNamespace(url=f"https://example.org/{forged.name}"), base="mobilenetv2")
    assert "weights_only" not in str(refused.value) and not marker.exists()
    # A genuine state dict under its hash-carrying name loads.
    buffer = tmp_path / "good.pth"
    torch.save({"w": torch.arange(3.0)}, buffer)
    good = _named_by_hash(cache, "good", buffer.read_bytes())
    assert torch.equal(torchvision_weights(types.SimpleNamespace(url=f"https://example.org/{good.name}"), base="x")["w"], torch.arange(3.0))


def test_imagenet_weights_through_the_cli_are_refused_in_one_line(genotype_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    marker = tmp_path / "executed"
    torch.save({"x": Payload(marker)}, cache / "mobilenet_v2-b0353104.pth")
    result = netadapt("remap", str(genotype_file), "--weights", "imagenet", "--out", str(tmp_path / "out.pth"),
                      env=os.environ | {"TORCH_HOME": str(tmp_path)})
    one_error_line(result, "mobilenet_v2-b0353104.pth", "not the published mobilenetv2 ImageNet weights")
    assert not marker.exists() and not (tmp_path / "out.pth").exists()


# 6, 10. A last batch of one is dropped; too few images is one line.
def test_a_last_batch_of_one_is_dropped() -> None:
    sampler = ResumableBatchSampler(9, batch_size=4, seed=0)
    assert sampler.batches_per_epoch == 2 and [len(batch) for batch in sampler] == [4, 4]
    assert [len(b) for b in ResumableBatchSampler(10, batch_size=4, seed=0)] == [4, 4, 2]  # two images still train
    sampler.set_position(0, 1)
    assert [len(batch) for batch in sampler] == [4]  # resumes inside the same epoch
    assert [len(b) for b in ResumableBatchSampler(9, batch_size=4, seed=0, rank=1, world_size=2)] == [4]  # 5 per rank
    with pytest.raises(DataError, match="at least 2 images"):
        ResumableBatchSampler(1, batch_size=4, seed=0)
    with pytest.raises(DataError, match="empty"):
        ResumableBatchSampler(0, batch_size=4, seed=0)


def test_training_with_a_last_batch_of_one_runs(finished_run: Path) -> None:
    records = [json.loads(line) for line in (finished_run / "log.jsonl").read_text().splitlines()]
    assert [record["iteration"] for record in records if "loss" in record] == [1, 2]
    assert (finished_run / "metrics.json").is_file()


# 7, 19. Errors inside DataLoader workers are the one DataError line; warnings are one line too.
def test_an_error_in_a_dataloader_worker_is_one_line(data: Path, genotype_file: Path, tmp_path: Path) -> None:
    broken = shutil.copytree(data, tmp_path / "broken")
    (broken / "images" / "train" / "000003.jpg").write_bytes(b"garbage")
    result = netadapt("train", str(genotype_file), "--data", str(broken), *TRAIN, "--epochs", "1", "--out", str(tmp_path / "run"))
    one_error_line(result, "000003.jpg: cannot decode image (image id 3)")
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_a_data_warning_is_one_line(data: Path, genotype_file: Path, tmp_path: Path) -> None:
    repaired = shutil.copytree(data, tmp_path / "repaired")
    annotations = json.loads((repaired / "train.json").read_text())
    annotations["annotations"][0]["bbox"][2] = 10_000  # a box past the image's edge: clipped, with a warning
    (repaired / "train.json").write_text(json.dumps(annotations))
    result = netadapt("train", str(genotype_file), "--data", str(repaired), *TRAIN, "--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ") and "train.json" in warnings[0], result.stderr


# 9. A torn last line of log.jsonl (a kill mid-write) is dropped with a warning on resume.
def test_a_torn_last_log_line_is_dropped_on_resume(finished_run: Path, data: Path, genotype_file: Path, tmp_path: Path) -> None:
    run = _copy_run(finished_run, tmp_path / "run")
    with (run / "log.jsonl").open("a") as handle:
        handle.write('{"iteration": 2, "lo')
    result = netadapt("train", str(genotype_file), "--data", str(data), *TRAIN, "--epochs", "1", "--out", str(run), "--resume")
    assert result.returncode == 0, result.stderr
    assert "warning: " in result.stderr and "torn" in result.stderr
    assert all(json.loads(line) for line in (run / "log.jsonl").read_text().splitlines())
    assert "final loss " in result.stdout and "final loss nan" not in result.stdout, result.stdout  # issue 24, item 10

    (tmp_path / "mid").mkdir()
    (tmp_path / "mid" / "log.jsonl").write_text('{"iteration": 1}\nnot json\n{"iteration": 2}\n')
    with pytest.raises(RunError, match="line 2 is not JSON"):
        RunLog(tmp_path / "mid", keep_until=2, enabled=True)
    with pytest.warns(NetadaptWarning, match="torn"):
        (tmp_path / "mid" / "log.jsonl").write_text('{"iteration": 1}\n{"iter')
        RunLog(tmp_path / "mid", keep_until=2, enabled=True)
    assert (tmp_path / "mid" / "log.jsonl").read_text() == '{"iteration": 1}\n'


# 10, 16. Values that crashed or trained to NaN are one ConfigError line naming the field.
BAD_VALUES = [
    ("train", {"lr": float("nan")}, "train.lr"),
    ("train", {"lr": float("inf")}, "train.lr"),
    ("train", {"weight_decay": -1.0}, "train.weight_decay"),
    ("train", {"seed": 2**63}, "train.seed"),
    ("train", {"input_size": 7}, "train.input_size must be at least 32"),
    ("train", {"warmup_factor": -0.5}, "train.warmup_factor"),
    ("train", {"lr_gamma": -0.1}, "train.lr_gamma"),
    ("train", {"batch_size": 1}, "train.batch_size"),
    ("search", {"alpha_betas": [2, 3]}, "search.alpha_betas"),
    ("search", {"lr": float("nan")}, "search.lr"),
    ("search", {"seed": -1}, "search.seed"),
    ("search", {"input_size": 7}, "search.input_size"),
]


@pytest.mark.parametrize("section, values, message", BAD_VALUES)
def test_bad_config_values_are_config_errors(section: str, values: dict, message: str) -> None:
    kind = TrainConfig if section == "train" else SearchConfig
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        section_config(kind, {section: values}, section, source="run.yaml")


def test_bad_config_files_and_overrides_are_config_errors(tmp_path: Path) -> None:
    cases = {
        "list.yaml": (b"train: [1, 2]\n", "section 'train' must be a mapping"),
        "latin1.yaml": ("train:\n  lr: 0.01 # caf\xe9\n".encode("latin-1"), "not UTF-8"),
        "deep.yaml": (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ConfigError, match=message):
            read_config_file(tmp_path / name)
    with pytest.raises(ConfigError, match="unknown section 'trian'"):
        apply_overrides({}, ["trian.lr=0.1"])


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_bad_command_line_values_are_one_line(genotype_file: Path, checkpoint: Path, data: Path, tmp_path: Path) -> None:
    one_error_line(netadapt("eval", str(checkpoint), "--data", str(data), "--batch-size", "0"), "--batch-size")
    one_error_line(netadapt("eval", str(checkpoint), "--data", str(data), "--workers", "-1"), "--workers")
    one_error_line(netadapt("show", str(genotype_file), "--input-size", "-5"), "--input-size must be at least 32")
    one_error_line(netadapt("cost", str(genotype_file), "--input-size", "0"), "--input-size must be at least 32")
    one_error_line(netadapt("train", str(genotype_file), "--data", str(data), *TRAIN, "--lr", "inf", "--out", str(tmp_path / "r")),
                   "train.lr must be a finite number")
    one_error_line(netadapt("train", str(genotype_file), "--data", str(data), *TRAIN, "--set", "trian.lr=1", "--out", str(tmp_path / "r")),
                   "unknown section 'trian'")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("train:\n  lr: 0.01 # caf\xe9\n".encode("latin-1"))
    one_error_line(netadapt("train", str(genotype_file), "--data", str(data), *TRAIN, "--config", str(latin), "--out", str(tmp_path / "r")),
                   "not UTF-8")
    assert not (tmp_path / "r").exists()


def test_a_non_finite_loss_stops_the_run_naming_the_iteration(data: Path, genotype_file: Path, tmp_path: Path) -> None:
    with pytest.raises(RunError, match="iteration 7: the loss is nan"):
        check_finite_loss(float("nan"), iteration=7)
    check_finite_loss(3.5, iteration=1)
    # SGD with an enormous (finite) learning rate: the first step sends the weights to inf, the second loss is not finite.
    result = netadapt("train", str(genotype_file), "--data", str(data), *TRAIN, "--epochs", "2", "--lr", "1e30",
                      "--set", "train.optimizer=sgd", "--set", "train.warmup_iterations=0", "--out", str(tmp_path / "run"))
    one_error_line(result, "iteration 2: the loss is", "not finite")
    assert not (tmp_path / "run" / "model.pth").exists()


# 10, 11. Detections files: wrong types and non-finite numbers are errors naming the first entry.
GT = {
    "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 64}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 20], "area": 400, "iscrowd": 0}],
    "categories": [{"id": 1, "name": "a"}],
}
GOOD = {"image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 20], "score": 0.9}


@pytest.mark.parametrize("change, message", [
    ({"bbox": [float("nan")] * 4}, "bbox must be four finite numbers"),
    ({"bbox": ["8", 8, 20, 20]}, "bbox must be four finite numbers"),
    ({"score": None}, "score must be a finite number"),
    ({"score": float("nan")}, "score must be a finite number"),
    ({"score": float("inf")}, "score must be a finite number"),
    ({"image_id": [1]}, "image_id must be an integer"),
])
def test_bad_detections_are_data_errors(change: dict, message: str, tmp_path: Path) -> None:
    (tmp_path / "gt.json").write_text(json.dumps(GT))
    with pytest.raises(DataError, match=f"result #1\\b.*{message}"):
        evaluate_coco(tmp_path / "gt.json", [GOOD, GOOD | change])


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_nan_detections_through_the_cli_are_one_line_not_ap_1(tmp_path: Path) -> None:
    (tmp_path / "gt.json").write_text(json.dumps(GT))
    (tmp_path / "det.json").write_text(json.dumps([GOOD | {"bbox": [float("nan")] * 4}]))
    result = netadapt("eval", "--detections", str(tmp_path / "det.json"), "--annotations", str(tmp_path / "gt.json"))
    one_error_line(result, "det.json: result #0", "finite")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    one_error_line(netadapt("eval", "--detections", str(tmp_path / "deep.json"), "--annotations", str(tmp_path / "gt.json")),
                   "nested too deeply")


# 12, 15. eval CHECKPOINT --annotations is refused; train refuses val classes that differ from train's.
def test_eval_of_a_checkpoint_does_not_ignore_annotations(checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "gt.json").write_text(json.dumps(GT))
    one_error_line(netadapt("eval", str(checkpoint), "--annotations", str(tmp_path / "gt.json")), "--annotations", "--data")


def test_train_refuses_val_classes_other_than_the_training_ones(data: Path, genotype_file: Path, tmp_path: Path) -> None:
    mixed = shutil.copytree(data, tmp_path / "mixed")
    val = json.loads((mixed / "val.json").read_text())
    val["categories"][0]["name"] = "blob"
    (mixed / "val.json").write_text(json.dumps(val))
    result = netadapt("train", str(genotype_file), "--data", str(mixed), *TRAIN, "--epochs", "1", "--out", str(tmp_path / "run"))
    one_error_line(result, "val.json: classes", "differ from those of the training split")
    assert not (tmp_path / "run").exists()


# 10. --resume on a dataset of other classes, and a weights-only-safe last.pth lacking its keys.
@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_resume_refuses_other_classes_and_incomplete_states(finished_run: Path, data: Path, genotype_file: Path, tmp_path: Path) -> None:
    fewer = generate_demo_dataset(tmp_path / "fewer", num_train=9, num_val=2, image_size=64, seed=2, num_classes=3)
    run = _copy_run(finished_run, tmp_path / "run")
    base = ["train", str(genotype_file), *TRAIN, "--epochs", "1", "--out", str(run), "--resume"]
    one_error_line(netadapt(*base, "--data", str(fewer)), "classes", "differ from those the run in")

    torch.save({"format": "netadapt-train", "iteration": 1}, run / "last.pth")
    one_error_line(netadapt(*base, "--data", str(data)), "last.pth: a netadapt-train checkpoint lacking")


# 17. SIGINT/SIGTERM: one line, a checkpoint at the current iteration, exit 130/143; resume stays exact.
def _interrupt_after_first_record(command: list[str], run: Path, number: int) -> subprocess.CompletedProcess:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        log = run / "log.jsonl"
        if log.exists() and log.read_text().strip():
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(number)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.parametrize("number, code", [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)])  # SIGTERM: slow (same path)
def test_a_signal_checkpoints_and_resume_ends_as_an_uninterrupted_run(
    number: int, code: int, finished_run: Path, data: Path, genotype_file: Path, tmp_path: Path
) -> None:
    args = ["train", str(genotype_file), "--data", str(data), *TRAIN, "--epochs", "3", "--set", "train.checkpoint_every=100"]
    straight = netadapt(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr

    run = tmp_path / "run"
    stopped = _interrupt_after_first_record([NETADAPT, *args, "--out", str(run)], run, number)
    line = one_error_line(stopped, signal.Signals(number).name, "continue with --resume", code=code)
    iteration = torch.load(run / "last.pth", weights_only=True)["iteration"]
    assert 1 <= iteration < 6 and f"iteration {iteration}" in line  # no periodic checkpoint: this one is the signal's
    assert not (run / "model.pth").exists()

    resumed = netadapt(*args, "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    expected = torch.load(tmp_path / "straight" / "model.pth", weights_only=True)["state_dict"]
    got = torch.load(run / "model.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(expected[key], got[key]) for key in expected)


# 19. Wording: torch's advice to load with weights_only=False is never repeated.
def test_unreadable_weights_never_suggest_weights_only_false(tmp_path: Path) -> None:
    (tmp_path / "random.pth").write_bytes(bytes(range(256)) * 4)
    torch.save({"x": Payload(tmp_path / "executed")}, tmp_path / "evil.pth")
    for name, message in (("random.pth", "not a PyTorch weights file"), ("evil.pth", "never loaded")):
        with pytest.raises(WeightsError, match=message) as refused:
            load_torch_file(tmp_path / name, what="weights file")
        assert "weights_only" not in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "executed").exists()


# 6, 13, 17 in a search: halves of 3 and 2 images with batch 2 (the weight half's last batch of one is
# dropped), SIGINT checkpoints and stops, a changed lr is refused on resume, the resumed search ends.
SEARCH = ["--weights", "none", "--quiet", *[arg for name, value in {
    "input_size": 64, "batch_size": 2, "epochs": 3, "alpha_start_epoch": 1, "workers": 2, "warmup_iterations": 1,
    "lr_milestones": [], "checkpoint_every": 100, "log_every": 1,
}.items() for arg in ("--set", f"search.{name}={json.dumps(value)}")]]


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_a_search_with_a_batch_of_one_per_half_is_interrupted_and_resumed(tmp_path: Path) -> None:
    data = generate_demo_dataset(tmp_path / "data", num_train=5, num_val=1, image_size=64, seed=4)
    run = tmp_path / "run"
    args = ["search", "--base", "mobilenetv2", "--detector", "ssdlite", "--data", str(data), *SEARCH, "--out", str(run)]
    stopped = _interrupt_after_first_record([NETADAPT, *args], run, signal.SIGINT)
    line = one_error_line(stopped, "SIGINT", "continue with --resume", code=130)
    iteration = torch.load(run / "last.pth", weights_only=True)["iteration"]
    assert f"iteration {iteration}" in line

    one_error_line(netadapt(*args, "--resume", "--set", "search.lr=0.5"), "search.lr is 0.5 but the search started with 0.03")
    one_error_line(netadapt(*args), "--resume")
    resumed = netadapt(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [record["iteration"] for record in records if "loss" in record] == [1, 2, 3]  # one weight step per epoch: 3 images, batch 2
    assert (run / "genotype.yaml").is_file()


# 10. A genotype that is not UTF-8 or nests too deeply is one line.
def test_unreadable_genotypes_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "latin.yaml").write_bytes("base: mobilenetv2 # caf\xe9\nstages: []\n".encode("latin-1"))
    one_error_line(netadapt("show", str(tmp_path / "latin.yaml")), "latin.yaml: not UTF-8")
    (tmp_path / "deep.yaml").write_bytes(b"stages: " + b"[" * 5000 + b"]" * 5000 + b"\n")
    one_error_line(netadapt("cost", str(tmp_path / "deep.yaml")), "deep.yaml: YAML nested too deeply")


# 19. A very large annotation file is announced, with its size, before it is read.
def test_a_large_annotation_file_is_announced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netadapt.data import coco

    (tmp_path / "big.json").write_text(json.dumps(GT))
    monkeypatch.setattr(coco, "LARGE_JSON_BYTES", 100)
    with pytest.warns(NetadaptWarning, match=r"big.json: reading 0.0 GiB of JSON"):
        assert coco.read_json(tmp_path / "big.json") == GT


def test_numbers_with_an_exponent_and_no_dot_are_numbers_in_set() -> None:
    """YAML 1.1 reads ``1e-5`` as a string; ``--set train.lr=1e-5`` means a number."""
    from netadapt.config import load_run_config

    config = load_run_config(TrainConfig, "train", config_file=None, overrides=["train.lr=1e-5", "train.weight_decay=4E+0"], demo=False)
    assert (config.lr, config.weight_decay) == (1e-5, 4.0)
    with pytest.raises(ConfigError, match="train.lr' must be float, got '1e-5x'"):
        load_run_config(TrainConfig, "train", config_file=None, overrides=["train.lr=1e-5x"], demo=False)
