"""Pretraining the base network as a classifier on demo object crops (DESIGN §2.4)."""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

import torch
from torchvision.models import mobilenet_v2

from netadapt.bases.mobilenetv2 import MobileNetV2Base
from netadapt.data.demo import DEMO_CLASSES
from netadapt.jobs.pretrain import PretrainSettings, pretrain_base_classifier, pretrained_demo_base, pretrained_demo_path
from netadapt.weights import build_with_weights, read_weights

pretrain = importlib.import_module("netadapt.jobs.pretrain")  # the module: ``netadapt.jobs.pretrain`` is the job

# Small enough for seconds on 2 CPU cores; width 0.35 keeps MobileNetV2's layout and key names.
TINY = PretrainSettings(width_mult=0.35, crop_size=32, num_per_class=4, num_val_per_class=2, epochs=2, batch_size=8)


def tiny_pretrain(out: Path) -> pretrain.PretrainResult:
    return pretrain_base_classifier(out=out, progress=False, **asdict(TINY))


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[pretrain.PretrainResult, dict[str, torch.Tensor]]:
    result = tiny_pretrain(tmp_path_factory.mktemp("pretrain") / "tiny.pth")
    return result, torch.load(result.path, map_location="cpu", weights_only=True)


def test_pretraining_writes_a_torchvision_state_dict(tiny_weights) -> None:
    result, state_dict = tiny_weights
    assert result.settings == TINY
    assert 0.0 <= result.train_accuracy <= 1.0 and 0.0 <= result.val_accuracy <= 1.0
    assert result.seconds > 0
    base = MobileNetV2Base()
    network = base.build(base.base_genotype(width_mult=TINY.width_mult), num_classes=len(DEMO_CLASSES))
    network.load_state_dict(state_dict, strict=True)
    reference = mobilenet_v2(num_classes=len(DEMO_CLASSES), width_mult=TINY.width_mult)
    reference.load_state_dict(state_dict, strict=True)
    assert state_dict["classifier.1.weight"].shape[0] == len(DEMO_CLASSES)
    # BN statistics were updated by training in train mode.
    running_mean = state_dict["features.0.1.running_mean"]
    assert not torch.equal(running_mean, torch.zeros_like(running_mean))
    assert sorted(p.name for p in result.path.parent.iterdir()) == [result.path.name]  # no temporary file left


def test_batchnorm_statistics_are_those_of_the_final_network(tiny_weights) -> None:
    """Eval mode sees the final weights' statistics over the training crops, not an exponential
    average that still remembers early steps (MobileNetV3's momentum 0.01 left it at chance)."""
    _, state_dict = tiny_weights
    base = MobileNetV2Base()
    network = base.build(base.base_genotype(width_mult=TINY.width_mult), num_classes=len(DEMO_CLASSES))
    network.load_state_dict(state_dict, strict=True)
    images, _ = pretrain._crops(TINY.num_per_class, size=TINY.crop_size, seed=2 * TINY.seed)  # the training crops
    assert len(images) % TINY.batch_size == 0  # every crop is in one of the full batches
    with torch.no_grad():
        stem = network.features[0][0](pretrain._normalise(images))
    torch.testing.assert_close(state_dict["features.0.1.running_mean"], stem.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-5)
    assert state_dict["features.0.1.num_batches_tracked"] == len(images) // TINY.batch_size


def test_default_width_loads_into_torchvision_mobilenet_v2(tmp_path: Path) -> None:
    settings = replace(TINY, width_mult=1.0, epochs=1, num_per_class=2, num_val_per_class=1)
    result = pretrain_base_classifier(out=tmp_path / "full.pth", progress=False, **asdict(settings))
    state_dict = torch.load(result.path, map_location="cpu", weights_only=True)
    base = MobileNetV2Base()
    base.build(base.base_genotype(), num_classes=len(DEMO_CLASSES)).load_state_dict(state_dict, strict=True)
    mobilenet_v2(num_classes=len(DEMO_CLASSES)).load_state_dict(state_dict, strict=True)
    network, _ = build_with_weights(read_weights(result.path, base_name="mobilenetv2"), base_name="mobilenetv2")
    assert network.classifier[1].out_features == len(DEMO_CLASSES)


def test_pretraining_is_deterministic_under_the_seed(tiny_weights, tmp_path: Path) -> None:
    first_result, first = tiny_weights
    torch.manual_seed(1234)
    caller_state = torch.get_rng_state()
    second_result = tiny_pretrain(tmp_path / "again.pth")
    assert torch.equal(torch.get_rng_state(), caller_state)  # the caller's random state is untouched
    second = torch.load(second_result.path, map_location="cpu", weights_only=True)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert second_result.train_accuracy == first_result.train_accuracy
    assert second_result.val_accuracy == first_result.val_accuracy


def test_another_seed_gives_other_weights(tiny_weights, tmp_path: Path) -> None:
    _, first = tiny_weights
    other = pretrain_base_classifier(out=tmp_path / "other.pth", progress=False, **asdict(replace(TINY, seed=1)))
    second = torch.load(other.path, map_location="cpu", weights_only=True)
    assert not torch.equal(first["classifier.1.weight"], second["classifier.1.weight"])


@pytest.mark.parametrize("field, value", [("crop_size", 16), ("epochs", 0), ("batch_size", 1), ("seed", -1)])
def test_invalid_settings_are_rejected(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"{field}={value}"):
        PretrainSettings(**{field: value})


def test_demo_base_pretrains_once_announces_once_and_reuses_the_cache(tmp_path: Path, monkeypatch) -> None:
    calls: list[dict] = []
    real = pretrain.pretrain_base_classifier

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain, "pretrain_base_classifier", counting)
    messages: list[str] = []
    path = pretrained_demo_base(cache_dir=tmp_path, announce=messages.append, settings=TINY, progress=False)
    assert path.is_file() and path.parent == tmp_path / "pretrained"
    assert len(calls) == 1 and len(messages) == 1
    assert "pretraining mobilenetv2 as a classifier on demo object crops" in messages[0]
    assert "ImageNet" in messages[0] and str(path) in messages[0]

    record = json.loads(path.with_suffix(".json").read_text())
    assert record["base"] == "mobilenetv2" and record["weights"] == path.name
    assert record["settings"] == asdict(TINY)
    assert 0.0 <= record["val_accuracy"] <= 1.0
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, path.with_suffix(".json").name])

    again = pretrained_demo_base(cache_dir=tmp_path, announce=messages.append, settings=TINY, progress=False)
    assert again == path
    assert len(calls) == 1  # not pretrained again; said so, naming the cached file
    assert len(messages) == 2 and "cached" in messages[1] and str(path) in messages[1]


def test_demo_base_cache_name_carries_versions_seed_and_non_default_settings(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NETADAPT_CACHE", str(tmp_path))
    written: list[Path] = []

    def fake(base_name, *, out, progress, resume, resume_with, **settings):
        written.append(Path(out))
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_bytes(b"")
        return pretrain.PretrainResult(Path(out), 1.0, 1.0, 0.0, PretrainSettings(**settings))

    monkeypatch.setattr(pretrain, "pretrain_base_classifier", fake)
    default = pretrained_demo_base(announce=None)
    assert default.parent == tmp_path / "pretrained"
    assert default.name == (
        f"mobilenetv2-demo-crops-v{pretrain.GENERATOR_VERSION}-recipe-v{pretrain.RECIPE_VERSION}-seed0.pth"
    )
    other_seed = pretrained_demo_base(announce=None, settings=PretrainSettings(seed=3))
    assert other_seed.name.endswith("-seed3.pth")
    tiny = pretrained_demo_base(announce=None, settings=TINY)
    assert tiny.stem.startswith(default.stem + "-")  # hashed: never mistaken for the demo's weights
    assert written == [default, other_seed, tiny]


class Stopped(Exception):
    pass


def test_default_announcement_gives_the_time(tmp_path: Path, monkeypatch) -> None:
    def stop(*args, **kwargs):
        raise Stopped

    monkeypatch.setattr(pretrain, "pretrain_base_classifier", stop)
    messages: list[str] = []
    with pytest.raises(Stopped):
        pretrained_demo_base(cache_dir=tmp_path, announce=messages.append)
    assert f"about {pretrain.DEFAULT_MINUTES} min" in messages[0]
    assert not (tmp_path / "pretrained").exists() or not any((tmp_path / "pretrained").iterdir())


@pytest.mark.slow
def test_default_pretraining_reaches_high_val_accuracy(tmp_path: Path) -> None:
    result = pretrain_base_classifier(out=tmp_path / "default.pth", progress=False)
    assert result.settings == pretrain.DEFAULT_SETTINGS
    assert result.val_accuracy > 0.9, result


def test_a_damaged_cached_demo_base_is_rebuilt_with_a_warning(tmp_path: Path, monkeypatch) -> None:
    """Issue 24, item 11: a torn cache file is pretrained again, not reported as a --weights file the user never gave."""
    from netadapt.errors import NetadaptWarning

    path = pretrained_demo_path(cache_dir=tmp_path, settings=TINY)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 torn by a full disk")
    calls: list[dict] = []

    def fake(base_name, *, out, **kwargs):
        calls.append(kwargs)
        torch.save({"features.0.0.weight": torch.zeros(1)}, out)
        return pretrain.PretrainResult(out, 1.0, 1.0, 0.0, TINY)

    monkeypatch.setattr(pretrain, "pretrain_base_classifier", fake)
    with pytest.warns(NetadaptWarning, match="cached demo base is damaged"):
        assert pretrained_demo_base(cache_dir=tmp_path, announce=None, settings=TINY, progress=False) == path
    assert len(calls) == 1 and torch.load(path, weights_only=True)


def test_a_stopped_pretraining_resumes_to_the_weights_of_an_uninterrupted_one(tiny_weights, tmp_path: Path, monkeypatch) -> None:
    import os
    import signal

    from netadapt.errors import Interrupted

    step = pretrain.ClassifierStep.__call__

    def stopped_within_the_second_epoch(self, batch, at):  # SIGINT as Ctrl-C sends it, mid-epoch (3 steps an epoch)
        if at.iteration == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return step(self, batch, at)

    out = tmp_path / "tiny.pth"
    monkeypatch.setattr(pretrain.ClassifierStep, "__call__", stopped_within_the_second_epoch)
    with pytest.raises(Interrupted) as stopped:
        tiny_pretrain(out)
    checkpoint = pretrain.run_directory(out) / "last.pth"
    assert str(stopped.value) == f"SIGINT: stopped at iteration 5, checkpoint {checkpoint} written; continue with resume=True"
    assert checkpoint.is_file() and not out.exists()
    monkeypatch.setattr(pretrain.ClassifierStep, "__call__", step)

    resumed = pretrain_base_classifier(out=out, progress=False, resume=True, **asdict(TINY))
    uninterrupted, state_dict = tiny_weights
    assert resumed.train_accuracy == uninterrupted.train_accuracy and resumed.val_accuracy == uninterrupted.val_accuracy
    weights = torch.load(out, map_location="cpu", weights_only=True)
    assert weights.keys() == state_dict.keys() and all(torch.equal(weights[key], state_dict[key]) for key in weights)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pth"]  # the run's folder goes once the weights are written


def test_a_checkpoint_of_other_settings_is_refused(tmp_path: Path, monkeypatch) -> None:
    from netadapt.errors import ConfigError

    out = tmp_path / "tiny.pth"
    run = pretrain.run_directory(out)
    run.mkdir()
    torch.save({"format": pretrain.PRETRAIN_FORMAT, "config": asdict(replace(TINY, lr=0.1)), "iteration": 2}, run / "last.pth")
    with pytest.raises(ConfigError, match="lr"):
        pretrain_base_classifier(out=out, progress=False, resume=True, **asdict(TINY))
    assert not out.exists()


def test_the_demo_base_continues_a_pretraining_that_stopped(tiny_weights, tmp_path: Path, monkeypatch) -> None:
    import os
    import signal

    from netadapt.errors import Interrupted

    step = pretrain.ClassifierStep.__call__

    def stopped(self, batch, at):
        if at.iteration == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, batch, at)

    monkeypatch.setattr(pretrain.ClassifierStep, "__call__", stopped)
    with pytest.raises(Interrupted, match="stopped at iteration 3, checkpoint .* written; continue with the next command that needs the demo base$"):
        pretrained_demo_base(cache_dir=tmp_path, announce=None, settings=TINY, progress=False)
    monkeypatch.setattr(pretrain.ClassifierStep, "__call__", step)
    messages: list[str] = []
    path = pretrained_demo_base(cache_dir=tmp_path, announce=messages.append, settings=TINY, progress=False)
    assert messages[1].startswith("Continuing the demo base's pretraining that stopped")
    weights, (_, state_dict) = torch.load(path, map_location="cpu", weights_only=True), tiny_weights
    assert all(torch.equal(weights[key], state_dict[key]) for key in state_dict)


def test_a_second_process_waits_for_the_pretraining_and_uses_its_weights(tiny_weights, tmp_path: Path, monkeypatch) -> None:
    import fcntl
    import os
    import shutil
    import threading

    calls: list[str] = []
    monkeypatch.setattr(pretrain, "pretrain_base_classifier", lambda *args, **kwargs: calls.append("pretrained"))
    path = pretrained_demo_path(cache_dir=tmp_path, settings=TINY)
    path.parent.mkdir(parents=True)
    holder = os.open(path.parent, os.O_RDONLY)  # another process pretraining: its own hold on the folder
    fcntl.flock(holder, fcntl.LOCK_EX)
    messages: list[str] = []
    announced, returned = threading.Event(), []

    def announce(message: str) -> None:
        messages.append(message)
        announced.set()

    waiting = threading.Thread(target=lambda: returned.append(pretrained_demo_base(cache_dir=tmp_path, announce=announce, settings=TINY)))
    waiting.start()
    assert announced.wait(10) and waiting.is_alive()
    assert messages == [f"Waiting for another process that is pretraining the demo base ({path.parent})."]
    shutil.copyfile(tiny_weights[0].path, path)  # its weights written, then its hold ends
    os.close(holder)
    waiting.join(30)
    assert returned == [path] and messages[1].startswith("No base weights given: using mobilenetv2 pretrained") and not calls
    fcntl.flock(holder := os.open(path.parent, os.O_RDONLY), fcntl.LOCK_EX)  # another pretraining (another base, say)
    assert pretrained_demo_base(cache_dir=tmp_path, announce=messages.append, settings=TINY) == path  # cached: no wait
    os.close(holder)
