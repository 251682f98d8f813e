"""``netadapt export``: ONNX and TorchScript exports of a detector checkpoint, run and post-processed."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from netadapt import export, plugins
from netadapt.cli.main import app
from netadapt.data.demo import GENERATOR_VERSION, generate_demo_dataset
from netadapt.data.images import read_rgb
from netadapt.detectors.cost import CoreForward
from netadapt.detectors.model import DetectorSpec, build_detector, load_detector, save_detector
from netadapt.detectors.ssdlite import SSDExportRule, SSDLiteDetector
from netadapt.engine.batchnorm import reestimate_batchnorm
from netadapt.engine.predict import detect
from netadapt.errors import ExportError
from netadapt.genotype import genotype_from_data
from netadapt.hookspecs import hookimpl

SIZE = 96
# One op per stage: the smallest genotype of the MobileNetV2 family, so that export stays quick.
TINY_STAGES = [
    [[32, 16], ["k3_e1"], 1],
    [[16, 24], ["k5_e3"], 2],
    [[24, 32], ["k3_e3"], 2],
    [[32, 64], ["k7_e3"], 2],
    [[64, 96], ["k3_e3"], 1],
    [[96, 160], ["k5_e6"], 2],
    [[160, 320], ["k3_e3"], 1],
]
# 20 detections of the candidates scoring above 0.3: their scores lie far enough apart (checked:
# > 1e-6) that float noise between runtimes (~1e-7) cannot reorder them.
OPTIONS = {"anchors": "fna", "score_thresh": 0.3, "detections_per_img": 20}


def netadapt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netadapt.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A detector checkpoint as ``netadapt train`` writes it, of a random detector whose outputs vary
    with the image: its BN statistics are those of one batch of noise images (with the initial
    statistics the activations saturate, and many anchors tie)."""
    spec = DetectorSpec(
        "ssdlite", "mobilenetv2", genotype_from_data(TINY_STAGES), ["background", "circle", "square"], SIZE, OPTIONS
    )
    torch.manual_seed(0)
    model = build_detector(spec)
    reestimate_batchnorm(CoreForward(model), [torch.randn(8, 3, SIZE, SIZE)])
    path = tmp_path_factory.mktemp("export") / "model.pth"
    save_detector(path, spec, model)
    return path


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A netadapt cache whose demo dataset is two 128-px images: the default check image comes from it."""
    cache = tmp_path_factory.mktemp("cache")
    generate_demo_dataset(cache / f"demo-v{GENERATOR_VERSION}-seed0", num_train=1, num_val=1, image_size=128)
    return cache


def _run_onnx(path: Path, images: torch.Tensor) -> dict[str, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {"images": images.numpy()})))


def _torch_outputs(model: torch.nn.Module, info: dict, images: torch.Tensor) -> dict[str, torch.Tensor]:
    module = export.ExportedCore(model, export.detector_anchors(model, SIZE)).eval()
    with torch.no_grad():
        return dict(zip(info["outputs"], module(images)))


def _assert_same_detections(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert len(want["labels"]) > 3, "the reference detector must detect something for the test to mean anything"
    gaps = want["scores"].sort().values.diff()
    assert gaps.min() > 1e-6, "scores that tie to float noise may swap places between runtimes"
    assert torch.equal(got["labels"], want["labels"])
    torch.testing.assert_close(got["scores"], want["scores"], atol=1e-5, rtol=0)
    torch.testing.assert_close(got["boxes"], want["boxes"], atol=1e-3, rtol=0)


def test_onnx_export_matches_pytorch_and_postprocesses_to_its_detections(
    checkpoint: Path, demo_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.onnx"
    result = netadapt("export", str(checkpoint), "--format", "onnx", "--out", str(out), env=os.environ | {"NETADAPT_CACHE": str(demo_cache)})
    assert result.returncode == 0, result.stderr
    assert "max abs difference to PyTorch" in result.stdout and "demo-v" in result.stdout  # the default image
    assert sorted(p.name for p in tmp_path.iterdir()) == [".netadapt-manifest", "model.onnx"]  # no temporary file left

    model, spec = load_detector(checkpoint)
    model.eval()
    info = export.read_info(out)
    assert info == export.export_info(model, spec)
    assert info["outputs"] == ["bbox_regression", "cls_logits", "anchors"] and info["class_names"] == spec.class_names

    image = read_rgb(demo_cache / f"demo-v{GENERATOR_VERSION}-seed0" / "images" / "val" / "000001.jpg")
    images = export.preprocess(image, info)
    got = _run_onnx(out, images)
    want = _torch_outputs(model, info, images)
    for name in info["outputs"]:
        assert got[name].shape == tuple(want[name].shape)
        assert np.abs(got[name] - want[name].numpy()).max() <= 1e-4, name
    assert want["anchors"].shape == (want["cls_logits"].shape[1], 4)

    (detections,) = export.postprocess(got, info, image_sizes=[tuple(image.shape[-2:])])
    _assert_same_detections(detections, detect(model, image, input_size=SIZE))


@pytest.mark.slow  # the symbolic batch makes torch.export ~10 s slower
def test_onnx_export_with_a_dynamic_batch_runs_any_batch(checkpoint: Path, demo_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    image_path = demo_cache / f"demo-v{GENERATOR_VERSION}-seed0" / "images" / "val" / "000001.jpg"
    result = CliRunner().invoke(app, ["export", str(checkpoint), "--dynamic-batch", "--out", str(out), "--image", str(image_path)])
    assert result.exit_code == 0, result.output
    model, _ = load_detector(checkpoint)
    info = export.read_info(out)
    images = export.preprocess(read_rgb(image_path), info)
    batch = torch.cat([images, images.flip(-1), images.flip(-2)])
    got, want = _run_onnx(out, batch), _torch_outputs(model.eval(), info, batch)
    for name in info["outputs"]:
        assert got[name].shape == tuple(want[name].shape)
        assert np.abs(got[name] - want[name].numpy()).max() <= 1e-4, name


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_matches_pytorch_and_postprocesses_to_its_detections(
    checkpoint: Path, demo_cache: Path, tmp_path: Path
) -> None:
    image_path = demo_cache / f"demo-v{GENERATOR_VERSION}-seed0" / "images" / "train" / "000001.jpg"
    out = tmp_path / "model.pt"
    result = CliRunner().invoke(app, ["export", str(checkpoint), "--format", "torchscript", "--out", str(out), "--image", str(image_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["image"] == str(image_path) and report["max_abs_diff_all"] <= 1e-4
    assert set(report["max_abs_diff"]) == {"bbox_regression", "cls_logits", "anchors"}

    model, spec = load_detector(checkpoint)
    model.eval()
    info = export.read_info(out)
    assert info == export.export_info(model, spec)
    image = read_rgb(image_path)
    images = export.preprocess(image, info)
    with torch.no_grad():
        got = dict(zip(info["outputs"], torch.jit.load(str(out))(torch.cat([images, images]))))
    want = _torch_outputs(model, info, images)
    for name in ("bbox_regression", "cls_logits"):
        torch.testing.assert_close(got[name], torch.cat([want[name], want[name]]), atol=1e-4, rtol=0)
    torch.testing.assert_close(got["anchors"], want["anchors"], atol=0, rtol=0)

    (detections,) = export.postprocess({name: value[:1] if name != "anchors" else value for name, value in got.items()}, info, image_sizes=[tuple(image.shape[-2:])])
    _assert_same_detections(detections, detect(model, image, input_size=SIZE))


def test_corrupt_checkpoint_is_one_error_line_and_writes_nothing(checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "model.pth"
    bad.write_bytes(checkpoint.read_bytes()[:5000])  # cut short, as by a full disk
    result = CliRunner().invoke(app, ["export", str(bad), "--format", "onnx", "--out", str(tmp_path / "model.onnx")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: not a readable detector checkpoint"), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]

    missing = CliRunner().invoke(app, ["export", str(tmp_path / "nothing.pth"), "--format", "torchscript"])
    assert missing.exit_code == 2 and missing.output == f"error: {tmp_path / 'nothing.pth'}: no such detector checkpoint\n"


def test_without_onnxruntime_onnx_export_says_what_to_install(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an environment without it gives: ImportError
    result = CliRunner().invoke(app, ["export", str(checkpoint), "--out", str(tmp_path / "model.onnx")])
    assert result.exit_code == 2, result.output
    assert result.output == "error: ONNX export needs the package 'onnxruntime': pip install 'netadapt[export]'\n"
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_does_not_reproduce_pytorch_is_not_written(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write, run = export._WRITERS["torchscript"]

    def drifting(path: Path, images: torch.Tensor) -> list[torch.Tensor]:
        bbox_regression, cls_logits, anchors = run(path, images)
        return [bbox_regression, cls_logits + 1e-3, anchors]

    monkeypatch.setitem(export._WRITERS, "torchscript", (write, drifting))
    model, spec = load_detector(checkpoint)
    image = torch.randint(0, 256, (3, 80, 120), dtype=torch.uint8)
    with pytest.raises(ExportError, match=r"differs from PyTorch by 0\.001 in 'cls_logits' on the check image \(allowed 0\.0001\d*: tolerance 0\.0001 \+ 2 × float32 rounding .*\); nothing written"):
        export.export_detector(model, spec, tmp_path / "model.pt", format="torchscript", image=image)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("format", "exporter"), [("onnx", "torch.onnx.export"), ("torchscript", "torch.jit.trace")])
def test_a_failing_exporter_is_one_error_line_naming_the_checkpoint_and_format(
    checkpoint: Path, demo_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, format: str, exporter: str
) -> None:
    def failing(*args, **kwargs):
        raise RuntimeError("Cannot export op aten::foo\n\nTraceback of the exporter's own:\n  frame 1\n  frame 2")

    monkeypatch.setattr(exporter, failing)
    probe, probes = export._probe, []
    monkeypatch.setattr(export, "_probe", lambda *args: probes.append(args) or probe(*args))
    image = demo_cache / f"demo-v{GENERATOR_VERSION}-seed0" / "images" / "val" / "000001.jpg"
    result = CliRunner().invoke(app, ["export", str(checkpoint), "--format", format, "--out", str(tmp_path / "model"), "--image", str(image)])
    assert result.exit_code == 2, result.output
    assert result.output == f"error: {checkpoint}: {format} export failed: RuntimeError: Cannot export op aten::foo\n"
    assert list(tmp_path.iterdir()) == [] and len(probes) == 1  # output names and anchors from one probe


@pytest.mark.filterwarnings(r"ignore:.*torch\.jit\..* is deprecated:FutureWarning")
def test_read_info_of_a_file_that_is_not_a_netadapt_export_is_one_error_line(tmp_path: Path) -> None:
    import onnx

    plain_onnx = tmp_path / "plain.onnx"
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "plain",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])], [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph), plain_onnx)
    plain_torchscript = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(plain_torchscript))
    (tmp_path / "garbage.onnx").write_bytes(b"\x00not a model" * 10)
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a model" * 10)
    for path in (plain_onnx, plain_torchscript, tmp_path / "garbage.onnx", tmp_path / "garbage.pt", tmp_path / "missing.onnx"):
        with pytest.raises(ExportError) as error:
            export.read_info(path)
        message = str(error.value)
        assert message.startswith(f"{path}: ") and "not a netadapt export" in message and "\n" not in message, message


def test_the_check_runs_another_input_than_the_one_the_export_was_traced_on(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write, run = export._WRITERS["torchscript"]

    class Baked(torch.nn.Module):  # a trace that froze its input: right on that input only
        def __init__(self, core: torch.nn.Module, sample: torch.Tensor) -> None:
            super().__init__()
            self.core, self.sample = core, sample

        def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return self.core(self.sample + 0 * images)

    def baked(module, sample, path, info, *, dynamic_batch):
        write(Baked(module, sample.clone()), sample, path, info, dynamic_batch=dynamic_batch)

    monkeypatch.setitem(export._WRITERS, "torchscript", (baked, run))
    model, spec = load_detector(checkpoint)
    image = torch.randint(0, 256, (3, 80, 120), dtype=torch.uint8)
    with pytest.raises(ExportError, match=r"differs from PyTorch by .* on the mirrored check image .*; nothing written"):
        export.export_detector(model, spec, tmp_path / "model.pt", format="torchscript", image=image)
    assert list(tmp_path.iterdir()) == []


def test_postprocess_of_pytorchs_own_outputs_is_the_detectors_output_bit_for_bit(checkpoint: Path, demo_cache: Path) -> None:
    """The export rule's post-processing (public torchvision ops) against torchvision's SSD itself, on a real image."""
    model, spec = load_detector(checkpoint)
    model.eval()
    info = export.export_info(model, spec)
    image = read_rgb(demo_cache / f"demo-v{GENERATOR_VERSION}-seed0" / "images" / "val" / "000001.jpg")
    (detections,) = export.postprocess(_torch_outputs(model, info, export.preprocess(image, info)), info, image_sizes=[tuple(image.shape[-2:])])
    want = detect(model, image, input_size=SIZE)  # model(images) in eval mode, boxes scaled to the image
    assert len(want["labels"]) > 3
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(detections[key], want[key]), key


class _BareSSD:
    """A detector plugin's detector (SSDLite under another name) that brings no export rule."""

    name = "bare-ssd"

    def build(self, backbone: torch.nn.Module, *, num_classes: int, input_size: int = 320, **options) -> torch.nn.Module:
        return SSDLiteDetector().build(backbone, num_classes=num_classes, input_size=input_size, **options)


class _BareSSDPlugin:
    @staticmethod
    @hookimpl
    def register_detectors(register) -> None:
        register("bare-ssd", _BareSSD())


class _BareSSDExportPlugin:
    @staticmethod
    @hookimpl
    def register_export_rules(register) -> None:
        register("bare-ssd", SSDExportRule())


@pytest.fixture
def bare_ssd(tmp_path: Path) -> Path:
    """A checkpoint of the ``bare-ssd`` detector, whose plugin is registered for the test."""
    manager = plugins.get_plugin_manager()
    manager.register(_BareSSDPlugin, name="bare-ssd-plugin")
    try:
        spec = DetectorSpec("bare-ssd", "mobilenetv2", genotype_from_data(TINY_STAGES), ["background", "circle", "square"], SIZE, OPTIONS)
        torch.manual_seed(0)
        path = tmp_path / "model.pth"
        save_detector(path, spec, build_detector(spec))
        yield path
    finally:
        manager.unregister(name="bare-ssd-plugin")


def test_a_detector_without_an_export_rule_is_one_error_line_naming_it_and_the_hook(bare_ssd: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    result = CliRunner().invoke(app, ["export", str(bare_ssd), "--format", "torchscript", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert re.fullmatch(
        r"error: detector 'bare-ssd' \(SSD\) has no export rule \(rules exist for: [^)]*ssdlite[^)]*\); the plugin of the "
        r"detector adds one with the register_export_rules hook, register\('bare-ssd', rule\) \(see docs/writing-a-plugin\.md\)\n",
        result.output,
    ), result.output
    assert not out.exists()


def test_a_detector_plugin_brings_its_export_rule(bare_ssd: Path) -> None:
    manager = plugins.get_plugin_manager()
    manager.register(_BareSSDExportPlugin, name="bare-ssd-export")
    try:
        assert plugins.export_rules().owner("bare-ssd") == "bare-ssd-export"
        model, spec = load_detector(bare_ssd)
        info = export.export_info(model, spec)
        images = torch.rand(2, 3, SIZE, SIZE)
        got = export.postprocess(_torch_outputs(model.eval(), info, (images - 0.5) / 0.5), info)
    finally:
        manager.unregister(name="bare-ssd-export")
    assert info["detector"] == "bare-ssd" and info["postprocess"]["scores"] == "softmax"
    with torch.no_grad():
        want = model(list(images))
    assert min(len(expected["labels"]) for expected in want) > 3
    for detection, expected in zip(got, want, strict=True):
        assert all(torch.equal(detection[key], expected[key]) for key in ("boxes", "scores", "labels"))


def test_the_check_allows_twice_pytorchs_own_float32_rounding(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, spec = load_detector(checkpoint)
    model.eval()
    image = torch.randint(0, 256, (3, 80, 120), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images = export.preprocess(image, export.export_info(model, spec))
    core = export.ExportedCore(model, export.detector_anchors(model, SIZE)).eval()
    names = ["bbox_regression", "cls_logits", "anchors"]
    rounding = export.float32_rounding(core, [images, images.flip(-1)], names)
    with torch.no_grad():
        exact = copy.deepcopy(core).double()(images.double())[1]
        assert rounding["cls_logits"] >= float((core(images)[1].double() - exact).abs().max()) > 0
    assert rounding["anchors"] == 0

    write, run = export._WRITERS["torchscript"]
    drift = 8 * rounding["cls_logits"]  # well above float32's spacing near the logits

    def drifting(path: Path, images: torch.Tensor) -> list[torch.Tensor]:
        bbox_regression, cls_logits, anchors = run(path, images)
        return [bbox_regression, cls_logits + drift, anchors]

    monkeypatch.setitem(export._WRITERS, "torchscript", (write, drifting))
    # Within tolerance + 2 × rounding: written; beyond it: refused.
    report = export.export_detector(model, spec, tmp_path / "ok.pt", format="torchscript", image=image, tolerance=7 * rounding["cls_logits"])
    assert report["float32_rounding"] == pytest.approx(rounding) and report["max_abs_diff"]["cls_logits"] == pytest.approx(drift, rel=0.1)
    assert report["allowed"]["cls_logits"] == pytest.approx(9 * rounding["cls_logits"]) and (tmp_path / "ok.pt").is_file()
    with pytest.raises(ExportError, match=r"in 'cls_logits' on the (mirrored )?check image \(allowed .*: tolerance .* \+ 2 × float32 rounding .*\); nothing written"):
        export.export_detector(model, spec, tmp_path / "refused.pt", format="torchscript", image=image, tolerance=5 * rounding["cls_logits"])
    assert not (tmp_path / "refused.pt").exists()


def test_a_model_whose_own_outputs_are_not_finite_is_not_exported(checkpoint: Path, tmp_path: Path) -> None:
    model, spec = load_detector(checkpoint)
    with torch.no_grad():
        model.head.classification_head.module_list[0][-1].bias.fill_(math.nan)  # a diverged training run
    image = torch.randint(0, 256, (3, 80, 120), dtype=torch.uint8)
    with pytest.raises(ExportError, match=r"the model's own 'cls_logits' on the check image is not finite"):
        export.export_detector(model, spec, tmp_path / "model.pt", format="torchscript", image=image, checkpoint=checkpoint)
    assert list(tmp_path.iterdir()) == []
