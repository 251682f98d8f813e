"""SSDLite on MobileNetV2-family bases: training and inference, feature maps, anchors, cost, options."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD
from typer.testing import CliRunner

from netadapt import plugins
from netadapt.bases.mobilenetv2 import MobileNetV2Base
from netadapt.cli.main import app
from netadapt.config import SearchConfig, TrainConfig, section_config
from netadapt.data.demo import generate_demo_dataset
from netadapt.detectors import Detector
from netadapt.detectors import ssdlite
from netadapt.detectors.cost import detector_cost
from netadapt.detectors.model import DetectorSpec, build_detector, options_from_config
from netadapt.errors import ConfigError, NetadaptWarning
from netadapt.genotype import genotype_from_data, load_genotype
from netadapt.hookspecs import hookimpl

GENOTYPES = Path(__file__).resolve().parents[1] / "examples" / "genotypes"
MOBILENETV2 = GENOTYPES / "mobilenetv2.yaml"
PAPER = GENOTYPES / "paper_ssdlite.yaml"

ANCHORS_PER_LOCATION = {"fna": [4, 6, 6, 6, 4, 4], "torchvision": [6] * 6}
MAP_SIZES_AT_320 = [20, 10, 5, 3, 2, 1]


@pytest.fixture
def detector() -> Iterator[Detector]:
    """The ``ssdlite`` plugin, registered here unless the built-ins already hold it."""
    manager = plugins.get_plugin_manager()
    registered_here = not manager.is_registered(ssdlite)
    if registered_here:
        manager.register(ssdlite, name=ssdlite.__name__)
    try:
        yield plugins.detectors().get("ssdlite")
    finally:
        if registered_here:
            manager.unregister(ssdlite)


def base_network(path: Path) -> torch.nn.Module:
    return MobileNetV2Base().build(load_genotype(path))


def targets_of_every_scale(count: int, *, generator: torch.Generator) -> list[dict[str, torch.Tensor]]:
    """Square boxes of 30 to 300 pixels (every anchor scale) around random centres, random labels."""
    targets = []
    for _ in range(count):
        sizes = torch.tensor([30.0, 60.0, 114.0, 168.0, 222.0, 300.0])
        centres = 150 + (torch.rand(len(sizes), 2, generator=generator) - 0.5) * (300 - sizes[:, None])
        boxes = torch.cat([centres - sizes[:, None] / 2, centres + sizes[:, None] / 2], dim=1)
        labels = torch.randint(1, 81, (len(sizes),), generator=generator, dtype=torch.int64)
        targets.append({"boxes": boxes, "labels": labels})
    return targets


def test_register_detectors_gives_ssdlite(detector: Detector) -> None:
    registered: dict[str, object] = {}
    ssdlite.register_detectors(register=registered.__setitem__)
    assert list(registered) == ["ssdlite"] and isinstance(registered["ssdlite"], ssdlite.SSDLiteDetector)
    assert isinstance(detector, Detector) and detector.name == "ssdlite"


@pytest.mark.parametrize("path", [MOBILENETV2, PAPER], ids=["mobilenetv2", "paper"])
def test_train_and_eval(detector: Detector, path: Path) -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = detector.build(base_network(path), num_classes=81)
    assert isinstance(model, SSD)
    images = [torch.rand(3, 320, 320, generator=generator), torch.rand(3, 300, 360, generator=generator)]

    model.train()
    losses = model(images, targets_of_every_scale(2, generator=generator))
    assert set(losses) == {"bbox_regression", "classification"}
    assert all(torch.isfinite(loss) for loss in losses.values()), losses
    sum(losses.values()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    # A map's head (and the extras feeding only it) learns from a batch only where anchors there
    # were matched or mined as negatives; the base, the first extra block and the first maps' heads always do.
    for name in (
        "backbone.body.features.0.0.weight",
        "backbone.extras.0.2.0.weight",
        "head.classification_head.module_list.0.1.weight",
        "head.regression_head.module_list.1.1.weight",
    ):
        assert model.get_parameter(name).grad.abs().sum() > 0, name

    model.eval()
    model.score_thresh = 0.0  # an untrained head scores about 1/81 everywhere, under the 0.02 default
    with torch.no_grad():
        detections = model(images)
    assert isinstance(detections, list) and len(detections) == 2
    for detection, image in zip(detections, images):
        assert set(detection) == {"boxes", "scores", "labels"}
        assert detection["boxes"].shape == (200, 4) and detection["scores"].shape == detection["labels"].shape == (200,)
        assert detection["labels"].dtype == torch.int64 and (detection["labels"] >= 1).all()
        height, width = image.shape[-2:]
        assert (detection["boxes"][:, 2] <= width).all() and (detection["boxes"][:, 3] <= height).all()


@pytest.mark.parametrize("anchors", ["fna", "torchvision"])
def test_feature_maps_and_anchors(detector: Detector, anchors: str) -> None:
    model = detector.build(base_network(MOBILENETV2), num_classes=81, anchors=anchors).eval()
    images = torch.zeros(1, 3, 320, 320)
    with torch.no_grad():
        features = list(model.backbone(images).values())
        outputs = model.head(features)
        boxes = model.anchor_generator(ImageList(images, [(320, 320)]), features)[0]
    assert [f.shape[-1] for f in features] == MAP_SIZES_AT_320
    assert [f.shape[-2] for f in features] == MAP_SIZES_AT_320
    assert [f.shape[1] for f in features] == model.backbone.out_channels == [576, 1280, 512, 256, 256, 128]

    per_location = ANCHORS_PER_LOCATION[anchors]
    assert model.anchor_generator.num_anchors_per_location() == per_location
    total = sum(size * size * count for size, count in zip(MAP_SIZES_AT_320, per_location))
    assert boxes.shape == (total, 4)
    assert outputs["cls_logits"].shape == (1, total, 81) and outputs["bbox_regression"].shape == (1, total, 4)


def test_fna_anchor_sizes() -> None:
    """DESIGN §1.5: min sizes 30/60/114/168/222/276 px, max 60/.../330, at 320×320."""
    generator = ssdlite.anchor_generator("fna")
    features = [torch.zeros(1, 1, size, size) for size in MAP_SIZES_AT_320]
    boxes = generator(ImageList(torch.zeros(1, 3, 320, 320), [(320, 320)]), features)[0]
    sizes = boxes[:, 2:] - boxes[:, :2]
    start = 0
    minimum = [30, 60, 114, 168, 222, 276]
    maximum = [60, 114, 168, 222, 276, 330]
    for k, (size, count) in enumerate(zip(MAP_SIZES_AT_320, ANCHORS_PER_LOCATION["fna"])):
        first = sizes[start : start + count]  # the boxes of the map's first location
        low, high = minimum[k], maximum[k]
        expected = [(low, low), (math.sqrt(low * high),) * 2]
        for ratio in ssdlite.FNA_ASPECT_RATIOS[k]:
            expected += [(low * math.sqrt(ratio), low / math.sqrt(ratio)), (low / math.sqrt(ratio), low * math.sqrt(ratio))]
        assert torch.allclose(first, torch.tensor(expected), atol=1e-3), (k, first)
        start += size * size * count
    assert start == boxes.shape[0]


def test_taps_follow_the_genotype(detector: Detector, tmp_path: Path) -> None:
    narrow = tmp_path / "narrow.yaml"
    narrow.write_text(PAPER.read_text().replace("[[96, 160], [k5_e6,", "[[96, 160], [k5_e3,"))
    model = detector.build(base_network(narrow), num_classes=5)
    assert model.backbone.out_channels[:2] == [288, 1280]
    model.eval()
    with torch.no_grad():
        features = model.backbone(torch.zeros(1, 3, 320, 320))
    assert list(features) == ["stride16", "stride32", "extra1", "extra2", "extra3", "extra4"]
    assert features["stride16"].shape == (1, 288, 20, 20)
    assert model.head.classification_head.module_list[0][1].out_channels == 5 * 4


def test_checkpoint_keys_are_the_base_keys_under_backbone_body(detector: Detector) -> None:
    model = detector.build(base_network(MOBILENETV2), num_classes=81)
    keys = model.state_dict().keys()
    body = {key.removeprefix("backbone.body.") for key in keys if key.startswith("backbone.body.")}
    reference = {key for key in torchvision.models.mobilenet_v2().state_dict() if not key.startswith("classifier.")}
    assert body == reference
    assert {key.split(".")[0] for key in keys} == {"backbone", "head"}
    assert {key.split(".")[1] for key in keys if key.startswith("backbone.")} == {"body", "extras"}


def test_cost_matches_the_mobilenetv2_paper(detector: Detector) -> None:
    """Acceptance (DESIGN §1.4): MobileNetV2 SSDLite at 320², 81 classes: 4.3M params, 0.8B MAdds."""
    cost = detector_cost(detector.build(base_network(MOBILENETV2), num_classes=81), input_size=320)
    assert abs(cost["params"] / 4.3e6 - 1) <= 0.05, cost["params"]
    assert abs(cost["madds"] / 0.8e9 - 1) <= 0.15, cost["madds"]
    parts = cost["parts"]
    assert sum(part["params"] for part in parts.values()) == cost["params"]
    assert sum(part["madds"] for part in parts.values()) == pytest.approx(cost["madds"])
    assert 2.2e6 < parts["backbone"]["params"] < 2.25e6  # MobileNetV2 without its classifier

    other = detector_cost(detector.build(base_network(MOBILENETV2), num_classes=81, anchors="torchvision"), input_size=320)
    assert other["parts"]["head"]["params"] > parts["head"]["params"]
    assert abs(other["params"] - 4.3e6) > abs(cost["params"] - 4.3e6)  # why "fna" is the default


@pytest.mark.parametrize(
    ("options", "value"),
    [
        ({"num_classes": 1}, "1"),
        ({"num_classes": 0}, "0"),
        ({"num_classes": 81, "input_size": 0}, "0"),
        ({"num_classes": 81, "input_size": -320}, "-320"),
        ({"num_classes": 81, "anchors": "retina"}, "retina"),
        ({"num_classes": 81, "nms_thresh": 1.5}, "1.5"),
        ({"num_classes": 81, "detections_per_img": 0}, "0"),
        ({"num_classes": 81, "antlers": "fna"}, "antlers"),
        ({"num_classes": 81, "score_thresh": "high"}, "score_thresh must be a number"),
        ({"num_classes": 81, "nms_thresh": True}, "nms_thresh must be a number"),
        ({"num_classes": 81, "image_mean": [0.5, 0.5]}, "image_mean must be three"),
        ({"num_classes": 81, "image_std": "abc"}, "image_std must be three"),
        ({"num_classes": 81, "image_std": [0.5, "x", 0.5]}, "image_std must be three"),
    ],
)
def test_bad_options(detector: Detector, options: dict, value: str) -> None:
    with pytest.raises(ValueError, match=value):
        detector.build(base_network(MOBILENETV2), **options)


def test_backbone_without_taps() -> None:
    shallow = genotype_from_data({"stages": [[[32, 16], ["k3_e1"], 1], [[16, 24], ["k3_e6"], 2]]})
    network = MobileNetV2Base().build(shallow)
    with pytest.raises(ValueError, match="two taps"):
        ssdlite.build_ssdlite(network, num_classes=3)
    with pytest.raises(ValueError, match="no detector taps"):
        ssdlite.build_ssdlite(torchvision.models.mobilenet_v2(), num_classes=3)


class _PlainDetector:
    """Another detector plugin: ``detector_options`` reach its build."""

    name = "plain-ssdlite"

    def build(self, backbone, *, num_classes, input_size=320, **options):
        return ssdlite.SSDLiteDetector().build(backbone, num_classes=num_classes, input_size=input_size, **options)


class _PlainPlugin:
    @hookimpl
    def register_detectors(self, register) -> None:
        register(_PlainDetector.name, _PlainDetector())


def test_run_configs_give_detector_options(detector: Detector) -> None:
    """The core config knows no detector's fields: SSDLite's anchors are one of its ``detector_options``, checked by its
    build; the old core field ``train.anchors`` still works for one version, moved there with a warning."""
    assert options_from_config("ssdlite", TrainConfig()) == {}
    config = SearchConfig(detector_options={"anchors": "torchvision", "score_thresh": 0.1, "detections_per_img": 50})
    assert options_from_config("ssdlite", config) == {"anchors": "torchvision", "score_thresh": 0.1, "detections_per_img": 50}
    with pytest.warns(NetadaptWarning, match=r"train.anchors is deprecated .* train.detector_options: \{anchors: torchvision\}"):
        old = section_config(TrainConfig, {"train": {"anchors": "torchvision"}}, "train", source="old.yaml")
    assert options_from_config("ssdlite", old) == {"anchors": "torchvision"}
    with pytest.raises(ConfigError, match="train.anchors and train.detector_options.anchors both given"):
        section_config(TrainConfig, {"train": {"anchors": "fna", "detector_options": {"anchors": "fna"}}}, "train", source="old.yaml")
    genotype = load_genotype(MOBILENETV2)
    with pytest.raises(ConfigError, match="unknown anchor scheme 'fnaa'"):
        build_detector(DetectorSpec("ssdlite", "mobilenetv2", genotype, ["__background__", "a"], 96, {"anchors": "fnaa"}))
    manager = plugins.get_plugin_manager()
    plugin = _PlainPlugin()
    manager.register(plugin, name="plain-ssdlite")
    try:
        config = SearchConfig(detector_options={"score_thresh": 0.1, "detections_per_img": 50})
        spec = DetectorSpec("plain-ssdlite", "mobilenetv2", genotype, ["__background__", "a"], 96, options_from_config("plain-ssdlite", config))
        model = build_detector(spec)
        assert (model.score_thresh, model.detections_per_img) == (0.1, 50)
        with pytest.raises(ConfigError, match=r"detector 'plain-ssdlite': unknown ssdlite option\(s\) antlers"):
            build_detector(DetectorSpec("plain-ssdlite", "mobilenetv2", genotype, ["__background__", "a"], 96, {"antlers": 1}))
    finally:
        manager.unregister(plugin)
    with pytest.raises(ConfigError, match="train.detector_options must be a mapping"):
        section_config(TrainConfig, {"train": {"detector_options": 3}}, "train", source="test.yaml")


@pytest.mark.parametrize(
    ("options", "message"),
    [("{score_thresh: high}", "score_thresh must be a number in [0, 1), got 'high'"), ("{image_mean: 3}", "image_mean must be three")],
)
def test_a_detector_option_of_the_wrong_type_is_one_line(options: str, message: str, tmp_path: Path) -> None:
    data = generate_demo_dataset(tmp_path / "data", num_train=4, num_val=2, image_size=64, seed=1)
    result = CliRunner().invoke(app, [
        "train", "--data", str(data), "--weights", "none", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet",
        "--set", "train.input_size=64", "--set", "train.workers=0", "--set", f"train.detector_options={options}",
    ])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: detector 'ssdlite': ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
