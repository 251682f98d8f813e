"""RetinaNet on MobileNetV2-family bases and on a super network: losses, detections, pyramid, anchors,
checkpoint keys, remapped base weights, cost, options."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNet

from netadapt import plugins
from netadapt.config import SearchConfig, TrainConfig
from netadapt.detectors import Detector
from netadapt.detectors.cost import CoreForward, detector_cost
from netadapt.detectors.model import DetectorSpec, build_detector, options_from_config
from netadapt.errors import ConfigError
from netadapt.genotype import genotype_from_data, load_genotype
from netadapt.jobs.train import init_backbone
from netadapt.remap.base import remap_base
from netadapt.search.space import load_search_space
from netadapt.search.supernet import ArchitectureParameters, build_supernet
from netadapt.testing import assert_detector_works, random_targets
from netadapt.weights import Weights
from netadapt_retinanet import __version__
from netadapt_retinanet.plugin import RetinaNetDetector
from netadapt_retinanet.retinanet import anchor_sizes, build_retinanet

BASE = plugins.bases().get("mobilenetv2")
SIZE = 96  # pixels: P4..P7 are 6, 3, 2 and 1 pixels square


@pytest.fixture
def detector() -> Detector:
    """The plugin as netadapt finds it: through the ``netadapt`` entry point of the installed package."""
    return plugins.detectors().get("retinanet")


def check_train_and_eval(model: RetinaNet, *, classes: int) -> None:
    """netadapt.testing's checks, with every score kept (an untrained head scores about 0.01, its prior, everywhere,
    under the 0.05 default) and RetinaNet's own: both losses, gradients into the body, the pyramid and the head."""
    model.score_thresh = 0.0
    losses, detections = assert_detector_works(model, num_classes=classes, input_size=SIZE)
    assert set(losses) == {"classification", "bbox_regression"}
    for name in ("backbone.body.features.0.0.weight", "backbone.fpn.inner_blocks.0.0.weight",
                 "backbone.fpn.extra_blocks.p7.weight", "head.classification_head.cls_logits.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    assert all(detection["boxes"].shape == (model.detections_per_img, 4) for detection in detections)


def test_registered_through_the_entry_point(detector: Detector) -> None:
    assert isinstance(detector, RetinaNetDetector) and isinstance(detector, Detector) and detector.name == "retinanet"
    assert plugins.detectors().owner("retinanet") == "retinanet"
    (info,) = [info for info in plugins.plugin_infos() if info.name == "retinanet"]
    assert (info.distribution, info.version, info.builtin) == ("netadapt-retinanet", __version__, False)
    assert info.hooks == ("register_detectors", "register_export_rules")


@pytest.mark.parametrize("genotype", ["mobilenetv2", "paper_ssdlite"])
def test_train_and_eval_on_a_genotype(detector: Detector, genotypes: Path, genotype: str) -> None:
    torch.manual_seed(0)
    model = detector.build(BASE.build(load_genotype(genotypes / f"{genotype}.yaml")), num_classes=7, input_size=SIZE)
    assert isinstance(model, RetinaNet)
    check_train_and_eval(model, classes=7)


def test_train_and_eval_on_a_super_network(detector: Detector) -> None:
    """The search builds the detector on the super network (netadapt.search.supernet); α gets a gradient."""
    torch.manual_seed(0)
    genotype = BASE.base_genotype()
    supernet = build_supernet("mobilenetv2", load_search_space("fna"), BASE.build(genotype), genotype)
    model = detector.build(supernet, num_classes=4, input_size=64, fpn_channels=32)
    assert model.backbone.body is supernet
    arch = ArchitectureParameters(supernet.layers, generator=torch.Generator().manual_seed(0))
    supernet.set_op_weights(arch.probabilities())
    images = [torch.rand(3, 64, 64) for _ in range(2)]
    losses = model(images, random_targets(2, size=64, num_classes=4, seed=1))
    gradients = torch.autograd.grad(sum(losses.values()), list(arch.parameters()))
    assert all(torch.isfinite(g).all() for g in gradients) and sum(g.abs().sum() for g in gradients) > 0
    model.eval()
    model.score_thresh = 0.0
    with torch.no_grad():
        (detection,) = model(images[:1])
    assert detection["boxes"].shape[0] > 0 and (detection["labels"] >= 1).all()


def test_the_background_is_never_detected(detector: Detector) -> None:
    """Class 0 scores far above every class, as a plain RetinaNet would then detect it: still never a label."""
    model = detector.build(BASE.build(BASE.base_genotype()), num_classes=3, input_size=SIZE).eval()
    head = model.head.classification_head
    model.score_thresh = 0.0
    # torchvision's RetinaNet on the same modules: what its own post-processing makes of that.
    plain = RetinaNet(model.backbone, 3, min_size=SIZE, max_size=SIZE, anchor_generator=model.anchor_generator, head=model.head,
                      score_thresh=0.0, detections_per_img=model.detections_per_img).eval()
    image = torch.rand(3, SIZE, SIZE)
    with torch.no_grad():
        head.cls_logits.bias[0 :: head.num_classes] = 10.0  # channel a·K + k is anchor a, class k
        (detection,) = model([image])
        (theirs,) = plain([image])
    assert (theirs["labels"] == 0).all()
    assert detection["labels"].numel() == model.detections_per_img and (detection["labels"] >= 1).all()


def test_pyramid_levels_and_anchors(detector: Detector) -> None:
    model = detector.build(BASE.build(BASE.base_genotype()), num_classes=81).eval()
    images = torch.zeros(1, 3, 320, 320)
    with torch.no_grad():
        features = model.backbone(images)
        outputs = CoreForward(model)(images)
        anchors = model.anchor_generator(ImageList(images, [(320, 320)]), list(features.values()))[0]
    assert list(features) == ["stride16", "stride32", "p6", "p7"]
    assert [tuple(f.shape[1:]) for f in features.values()] == [(256, 20, 20), (256, 10, 10), (256, 5, 5), (256, 3, 3)]
    total = 9 * (20 * 20 + 10 * 10 + 5 * 5 + 3 * 3)
    assert anchors.shape == (total, 4)
    cls_logits, bbox_regression = outputs  # CoreForward: the head's raw outputs, in its order
    assert cls_logits.shape == (1, total, 81) and bbox_regression.shape == (1, total, 4)

    # The 9 anchors of each level's first location: 3 sizes × ratios (h/w) 0.5, 1, 2, scaled to 320 of 800.
    start = 0
    for sizes, cells in zip(anchor_sizes(320), (400, 100, 25, 9)):
        sides = anchors[start : start + 9, 2:] - anchors[start : start + 9, :2]
        expected = [(side / math.sqrt(ratio), side * math.sqrt(ratio)) for ratio in (0.5, 1.0, 2.0) for side in sizes]
        assert torch.allclose(sides, torch.tensor(expected), atol=1.01), sides  # corners are rounded to pixels
        start += 9 * cells
    # At torchvision's 800-pixel input the sizes are torchvision's retinanet sizes of P4..P7 (unrounded).
    torchvision_sizes = [(64, 80, 101), (128, 161, 203), (256, 322, 406), (512, 645, 812)]
    assert all(abs(ours - theirs) < 1 for level, ref in zip(anchor_sizes(800), torchvision_sizes) for ours, theirs in zip(level, ref))


def test_taps_follow_the_genotype(detector: Detector, genotypes: Path, tmp_path: Path) -> None:
    narrow = tmp_path / "narrow.yaml"
    narrow.write_text((genotypes / "paper_ssdlite.yaml").read_text().replace("[[96, 160], [k5_e6,", "[[96, 160], [k5_e3,"))
    model = detector.build(BASE.build(load_genotype(narrow)), num_classes=5, input_size=SIZE)
    assert [block[0].in_channels for block in model.backbone.fpn.inner_blocks] == [288, 1280]
    assert model.head.classification_head.cls_logits.out_channels == 9 * 5


def test_checkpoint_keys_are_the_base_keys_under_backbone_body(detector: Detector) -> None:
    keys = detector.build(BASE.build(BASE.base_genotype()), num_classes=81).state_dict().keys()
    body = {key.removeprefix("backbone.body.") for key in keys if key.startswith("backbone.body.")}
    assert body == {key for key in torchvision.models.mobilenet_v2().state_dict() if not key.startswith("classifier.")}
    assert {key.split(".")[0] for key in keys} == {"backbone", "head"}
    assert {key.split(".")[1] for key in keys if key.startswith("backbone.")} == {"body", "fpn"}


@pytest.mark.parametrize("genotype", ["mobilenetv2", "paper_ssdlite"])
def test_remapped_base_weights_land_in_the_detector(genotypes: Path, genotype: str) -> None:
    """init_backbone (what `netadapt train` calls) fills backbone.body with the remapped base weights."""
    torch.manual_seed(0)
    source = torchvision.models.mobilenet_v2()
    with torch.no_grad():
        for tensor in source.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor))
    weights = Weights(source.state_dict(), None, "random mobilenet_v2")
    spec = DetectorSpec("retinanet", "mobilenetv2", load_genotype(genotypes / f"{genotype}.yaml"), ["__background__", "a", "b"], SIZE)
    model = build_detector(spec)
    assert init_backbone(model, spec, weights) > 0
    body = model.backbone.body.state_dict()
    remapped = remap_base(spec.genotype, base_name="mobilenetv2", weights=weights).network.state_dict()
    assert body.keys() == {key for key in remapped if not key.startswith("classifier.")}
    for key, value in body.items():
        assert torch.equal(value, remapped[key]), key
    if genotype == "mobilenetv2":  # the base itself: its weights, unchanged
        assert all(torch.equal(value, source.state_dict()[key]) for key, value in body.items())
    else:  # Eqs. 1, 2: the 160 stage's first layer is k5_e6 where the base has k3_e6: the 3×3 kernel sits in the centre
        target = BASE.build(spec.genotype).layer_paths[5][0]
        original = BASE.build(BASE.base_genotype()).layer_paths[5][0]
        depthwise = body[f"{target}.conv.1.0.weight"]
        assert depthwise.shape[-1] == 5 and torch.equal(depthwise[..., 1:4, 1:4], source.state_dict()[f"{original}.conv.1.0.weight"])
        assert depthwise[..., 0, :].abs().sum() == 0


def test_cost_splits_into_backbone_fpn_and_head(detector: Detector) -> None:
    model = detector.build(BASE.build(BASE.base_genotype()), num_classes=81, input_size=SIZE)
    cost = detector_cost(model, input_size=SIZE)
    parts = cost["parts"]
    assert list(parts) == ["backbone", "fpn", "head"]
    assert cost["params"] == sum(p.numel() for p in model.parameters()) == sum(part["params"] for part in parts.values())
    assert sum(part["madds"] for part in parts.values()) == pytest.approx(cost["madds"])
    assert 2.2e6 < parts["backbone"]["params"] < 2.25e6  # MobileNetV2 without its classifier
    assert parts["head"]["madds"] > parts["backbone"]["madds"]  # RetinaNet's head: 256-channel 3×3 convs


def test_run_configs_give_detector_options() -> None:
    """`--set train.detector_options={...}` reaches the build; retinanet takes nothing else from a config."""
    assert options_from_config("retinanet", TrainConfig()) == {}
    options = options_from_config("retinanet", SearchConfig(detector_options={"fpn_channels": 32, "score_thresh": 0.01}))
    assert options == {"fpn_channels": 32, "score_thresh": 0.01}
    spec = DetectorSpec("retinanet", "mobilenetv2", BASE.base_genotype(), ["__background__", "a"], SIZE, options)
    model = build_detector(spec)
    assert model.backbone.out_channels == 32 and model.score_thresh == 0.01
    with pytest.raises(ConfigError, match="anchors"):
        build_detector(DetectorSpec("retinanet", "mobilenetv2", BASE.base_genotype(), ["__background__", "a"], SIZE, {"anchors": "fna"}))


@pytest.mark.parametrize(
    ("options", "value"),
    [
        ({"num_classes": 1}, "1"),
        ({"num_classes": 81, "input_size": 0}, "0"),
        ({"num_classes": 81, "fpn_channels": 0}, "fpn_channels"),
        ({"num_classes": 81, "anchor_scale": -4}, "-4"),
        ({"num_classes": 81, "anchor_scale": math.inf}, "inf"),
        ({"num_classes": 81, "fg_iou_thresh": 0.3}, "fg_iou_thresh=0.3"),
        ({"num_classes": 81, "score_thresh": 1.0}, "1.0"),
        ({"num_classes": 81, "antlers": 3}, "antlers"),
    ],
)
def test_bad_options(detector: Detector, options: dict, value: str) -> None:
    with pytest.raises(ValueError, match=value):
        detector.build(BASE.build(BASE.base_genotype()), **options)


def test_backbone_without_taps() -> None:
    shallow = genotype_from_data({"stages": [[[32, 16], ["k3_e1"], 1], [[16, 24], ["k3_e6"], 2]]})
    with pytest.raises(ValueError, match="two taps"):
        build_retinanet(BASE.build(shallow), num_classes=3)
    with pytest.raises(ValueError, match="no detector taps"):
        build_retinanet(torchvision.models.mobilenet_v2(), num_classes=3)
