"""``netadapt export`` of a RetinaNet checkpoint: ONNX and TorchScript files that run, reproduce
PyTorch, and post-process (per pyramid level, sigmoid scores) to the detector's own detections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from netadapt import export, plugins
from netadapt.data.images import read_rgb
from netadapt.detectors.cost import CoreForward
from netadapt.detectors.model import DetectorSpec, build_detector, load_detector, save_detector
from netadapt.engine.batchnorm import reestimate_batchnorm
from netadapt.engine.predict import detect
from netadapt.testing import run_netadapt

SIZE = 96  # P4..P7: 6², 3², 2² and 1² locations, 9 anchors each
OPTIONS = {"fpn_channels": 32, "score_thresh": 0.5, "detections_per_img": 20}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RetinaNet checkpoint whose scores vary with the image and lie apart (BN statistics of a batch
    of noise; head convs He-initialised instead of torchvision's 0.01 std, which keeps every score at
    the 0.01 prior) and whose background logit is high everywhere: torchvision's own post-processing
    would then detect class 0."""
    base = plugins.bases().get("mobilenetv2")
    spec = DetectorSpec("retinanet", "mobilenetv2", base.base_genotype(), ["background", "circle", "square"], SIZE, OPTIONS)
    torch.manual_seed(0)
    model = build_detector(spec)
    reestimate_batchnorm(CoreForward(model), [torch.randn(8, 3, SIZE, SIZE)])
    with torch.no_grad():
        for layer in model.head.modules():
            if isinstance(layer, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(layer.weight)
                torch.nn.init.zeros_(layer.bias)
        head = model.head.classification_head
        head.cls_logits.bias[0 :: head.num_classes] = 10.0  # channel a·K + k is anchor a, class k
    path = tmp_path_factory.mktemp("export") / "model.pth"
    save_detector(path, spec, model)
    return path


@pytest.fixture(scope="module")
def image_path(tiny_data: Path) -> Path:
    return next((tiny_data / "images" / "val").iterdir())


def _assert_same_detections(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert len(want["labels"]) > 3, "the reference detector must detect something for the test to mean anything"
    assert (want["labels"] >= 1).all()
    gaps = want["scores"].sort().values.diff()
    assert gaps.min() > 1e-6, "scores that tie to float noise may swap places between runtimes"
    assert torch.equal(got["labels"], want["labels"])
    torch.testing.assert_close(got["scores"], want["scores"], atol=1e-5, rtol=0)
    torch.testing.assert_close(got["boxes"], want["boxes"], atol=1e-3, rtol=0)


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_onnx_export_postprocesses_to_the_detectors_detections(checkpoint: Path, image_path: Path, tmp_path: Path) -> None:
    import onnxruntime

    out = tmp_path / "model.onnx"
    result = run_netadapt("export", str(checkpoint), "--format", "onnx", "--out", str(out), "--image", str(image_path))
    assert result.returncode == 0, result.stderr
    assert "max abs difference to PyTorch" in result.stdout

    model, spec = load_detector(checkpoint)
    model.eval()
    info = export.read_info(out)
    assert info == export.export_info(model, spec)
    assert info["outputs"] == ["cls_logits", "bbox_regression", "anchors"]
    settings = info["postprocess"]
    assert settings["scores"] == "sigmoid" and settings["box_weights"] == [1.0, 1.0, 1.0, 1.0]
    assert settings["anchors_per_level"] == [9 * 36, 9 * 9, 9 * 4, 9 * 1]

    image = read_rgb(image_path)
    images = export.preprocess(image, info)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = dict(zip([output.name for output in session.get_outputs()], session.run(None, {"images": images.numpy()})))
    with torch.no_grad():
        want = dict(zip(info["outputs"], export.ExportedCore(model, export.detector_anchors(model, SIZE)).eval()(images)))
    for name in info["outputs"]:
        assert np.abs(got[name] - want[name].numpy()).max() <= 1e-4, name
    assert want["anchors"].shape == (sum(settings["anchors_per_level"]), 4)

    (detections,) = export.postprocess(got, info, image_sizes=[tuple(image.shape[-2:])])
    _assert_same_detections(detections, detect(model, image, input_size=SIZE))


def test_postprocess_of_pytorchs_own_outputs_is_the_detectors_output_bit_for_bit(checkpoint: Path, image_path: Path) -> None:
    """The plugin's export rule (public torchvision ops, the background masked) against its RetinaNet itself, on a real image."""
    model, spec = load_detector(checkpoint)
    model.eval()
    assert plugins.export_rules().owner("retinanet") == "retinanet"
    info = export.export_info(model, spec)
    image = read_rgb(image_path)
    with torch.no_grad():
        outputs = dict(zip(info["outputs"], export.ExportedCore(model, export.detector_anchors(model, SIZE)).eval()(export.preprocess(image, info))))
    (detections,) = export.postprocess(outputs, info, image_sizes=[tuple(image.shape[-2:])])
    want = detect(model, image, input_size=SIZE)  # model(images) in eval mode, boxes scaled to the image
    assert len(want["labels"]) > 3 and (want["labels"] >= 1).all()
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(detections[key], want[key]), key


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_postprocesses_to_the_detectors_detections(checkpoint: Path, image_path: Path, tmp_path: Path) -> None:
    model, spec = load_detector(checkpoint)
    image = read_rgb(image_path)
    out = tmp_path / "model.torchscript.pt"
    report = export.export_detector(model, spec, out, format="torchscript", image=image)
    assert report["max_abs_diff_all"] <= 1e-4 and list(report["outputs"]) == ["cls_logits", "bbox_regression", "anchors"]

    info = export.read_info(out)
    with torch.no_grad():
        got = dict(zip(info["outputs"], torch.jit.load(str(out))(export.preprocess(image, info))))
    (detections,) = export.postprocess(got, info, image_sizes=[tuple(image.shape[-2:])])
    _assert_same_detections(detections, detect(model, image, input_size=SIZE))
