"""Export an adapted detector's core — backbone and head — to ONNX or TorchScript (``netadapt export``).

The exported graph is the part of a torchvision detector that is one fixed computation: the
backbone (base network and extra layers or FPN) and the head, i.e.
:class:`netadapt.detectors.cost.CoreForward`, the same forward the cost model counts. What
torchvision's ``SSD`` or ``RetinaNet`` does around it — resizing and normalisation before, box
decoding, scoring and NMS after — is data-dependent, so it is left to the runtime and written down
here; the reference functions :func:`preprocess` and :func:`postprocess` reproduce it and are
tested against the PyTorch detector. The post-processing is the detector's own: each detector
brings an export rule (:class:`netadapt.contracts.ExportRule`, registered under the detector's
name with the ``register_export_rules`` hook) that writes its numbers into the metadata and runs
it. Built in: ``ssdlite`` (:class:`netadapt.detectors.ssdlite.SSDExportRule`); the
``retinanet`` plugin brings its own. A detector without a rule is not exported (one
:class:`~netadapt.errors.ExportError` line naming it and the hook).

ONNX is written by torch's torch.export-based exporter (``dynamo=True``: torch's default since
2.9; it needs onnxscript); the TorchScript-based one (``dynamo=False``) is deprecated. TorchScript
is a trace (``torch.jit.trace``): the core has no data-dependent control flow, so the trace is
the whole computation. Before the file is renamed into place, it is run (onnxruntime /
``torch.jit.load``) on a real image and on its mirror image, which the exporter never saw, and
compared with PyTorch (:func:`export_detector`): a trace that froze a value of its sample input
fails there. Each output may differ by the tolerance plus twice PyTorch's own float32 rounding
error, measured against a float64 run (:func:`float32_rounding`).

**Input** ``images``: float32 ``[N, 3, S, S]``, ``S`` the checkpoint's input size. ONNX fixes
``N = 1`` unless exported with ``dynamic_batch`` (``--dynamic-batch``; the export then takes
longer: torch.export traces the batch symbolically); the traced TorchScript takes any ``N``.
Preprocessing (:func:`preprocess`), as ``netadapt predict``/``eval`` do it:

1. decode the image as RGB and resize it to ``S × S`` (bilinear, antialiased — torchvision's
   ``transforms.v2.Resize``); the aspect ratio is not kept;
2. scale to [0, 1] (uint8 / 255);
3. normalise per channel: ``(x - mean) / std``, ``mean``/``std`` from the metadata
   (``image_mean``/``image_std``; SSDLite: 0.5 and 0.5, i.e. [-1, 1]).

The detector's own ``GeneralizedRCNNTransform`` does it in another order — it normalises first and
then resizes to ``S × S`` (bilinear, not antialiased) — and agrees with these steps only because
netadapt hands it images already resized to ``S × S``, on which its resize changes nothing. On an
image of another size its result would differ from :func:`preprocess`.

**Outputs**, in the head's order, the ``anchors`` last (ONNX output names; TorchScript returns
the tuple; the metadata's ``outputs`` lists them — SSD: ``bbox_regression``, ``cls_logits``,
``anchors``; RetinaNet: ``cls_logits``, ``bbox_regression``, ``anchors``):

- ``bbox_regression`` ``[N, A, 4]`` — box deltas (dx, dy, dw, dh) per anchor;
- ``cls_logits`` ``[N, A, C]`` — class logits per anchor, ``C`` classes with the background
  at index 0 (netadapt's label convention, for every detector);
- ``anchors`` ``[A, 4]`` — the default boxes (x1, y1, x2, y2) in pixels of the ``S × S``
  input. They depend only on ``S``, which is fixed, so they are a constant output of the graph:
  the model file is self-contained and cannot be paired with the anchors of another input size.

**Post-processing**, per image: the detector's export rule gives its detections in pixels of the
``S × S`` input (SSD: softmax scores, per class the best above ``score_thresh``, NMS per class;
the rule's docstring has the steps, :mod:`netadapt.detectors.postprocess` the box decoding);
then the boxes are scaled back to the original image: x by ``width/S``, y by ``height/S``.

The numbers (``detector``, ``input_size``, ``image_mean``, ``image_std``, ``class_names``, the
output names, and under ``postprocess`` those of the export rule: box weights, thresholds, ...)
travel inside the model file as JSON (:func:`export_info`): ONNX metadata property ``netadapt``,
TorchScript extra file ``netadapt.json``.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList
from torchvision.transforms.v2 import functional as F

from netadapt import contracts, plugins
from netadapt.detectors.cost import CoreForward
from netadapt.errors import ExportError, describe
from netadapt.files import atomic_path

if TYPE_CHECKING:
    from netadapt.detectors.model import DetectorSpec

FORMATS = ("onnx", "torchscript")
EXPORT_FORMAT = "netadapt-export"
EXPORT_VERSION = 1
DEFAULT_TOLERANCE = 1e-4
ONNX_METADATA_KEY = "netadapt"
TORCHSCRIPT_METADATA_FILE = "netadapt.json"
INSTALL_HINT = "pip install 'netadapt[export]'"


class ExportedCore(nn.Module):
    """The detector's :class:`CoreForward` plus its (constant) anchors as the last output."""

    def __init__(self, model: nn.Module, anchors: torch.Tensor) -> None:
        super().__init__()
        self.core = CoreForward(model)
        self.register_buffer("anchors", anchors)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (*self.core(images), self.anchors)


def export_info(model: nn.Module, spec: DetectorSpec) -> dict[str, Any]:
    """What a runtime needs besides the graph (module docstring), read from the built detector.

    ``spec`` is the checkpoint's :class:`~netadapt.detectors.model.DetectorSpec`; its detector
    needs an export rule (:func:`export_rule`).
    """
    rule = export_rule(spec.detector, model)
    return _info(model, spec, _probe(model, spec.input_size), rule)


def export_rule(detector: str, model: nn.Module | None = None) -> contracts.ExportRule:
    """The export rule registered for ``detector`` (a detector's registry name); without one, an
    :class:`ExportError` line naming the detector (and ``model``'s class) and the hook that adds one."""
    rules = plugins.export_rules()
    if detector not in rules:
        model_class = f" ({type(model).__name__})" if model is not None else ""
        known = ", ".join(sorted(map(str, rules.names()))) or "none"
        raise ExportError(
            f"detector {detector!r}{model_class} has no export rule (rules exist for: {known}); the plugin of the detector adds "
            f"one with the register_export_rules hook, register({detector!r}, rule) (see {contracts.GUIDE})"
        )
    return rules.get(detector)


def _info(model: nn.Module, spec: DetectorSpec, probe: Probe, rule: contracts.ExportRule) -> dict[str, Any]:
    """:func:`export_info` with the model already probed and its rule found."""
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "detector": spec.detector,
        "base": spec.base,
        "class_names": list(spec.class_names),
        "input_size": spec.input_size,
        "image_mean": [float(value) for value in model.transform.image_mean],
        "image_std": [float(value) for value in model.transform.image_std],
        "outputs": [*probe.output_names, "anchors"],
        "postprocess": rule.postprocess_settings(model, probe),
    }


class Probe(NamedTuple):
    """What one forward pass on an ``S × S`` input shows of a detector (an export rule reads it)."""

    output_names: list[str]  # the head's, in CoreForward's order
    anchors: torch.Tensor  # [A, 4]
    anchors_per_level: list[int]  # per feature map: its locations × anchors per location


@torch.no_grad()
def _probe(model: nn.Module, size: int) -> Probe:
    """What one forward pass on a ``size × size`` input shows of the detector, in eval mode (the
    model's mode is restored)."""
    training = model.training
    model.eval()
    try:
        images = torch.zeros(1, 3, size, size)
        features = model.backbone(images)
        features = [features] if isinstance(features, torch.Tensor) else list(features.values())
        names = list(model.head(features))
        anchors = model.anchor_generator(ImageList(images, [(size, size)]), features)[0]
    finally:
        model.train(training)
    locations = [feature.shape[-2] * feature.shape[-1] for feature in features]
    per_location = len(anchors) // sum(locations)  # as torchvision's RetinaNet.forward recovers it
    return Probe(names, anchors, [count * per_location for count in locations])


def detector_anchors(model: nn.Module, size: int) -> torch.Tensor:
    """The detector's default boxes ``[A, 4]`` (x1, y1, x2, y2 pixels) for a ``size × size`` input."""
    return _probe(model, size).anchors


def preprocess(image: torch.Tensor, info: Mapping[str, Any]) -> torch.Tensor:
    """A uint8 RGB image ``[3, H, W]`` as the exported graph's input ``[1, 3, S, S]`` (module docstring)."""
    size = info["input_size"]
    resized = F.to_dtype(F.resize(image, [size, size], antialias=True), torch.float32, scale=True)
    return F.normalize(resized, mean=info["image_mean"], std=info["image_std"])[None]


def postprocess(
    outputs: Mapping[str, Any], info: Mapping[str, Any], *, image_sizes: Sequence[tuple[int, int]] | None = None
) -> list[dict[str, torch.Tensor]]:
    """Detections from the exported graph's raw ``outputs`` (name → array), as the torchvision detector gives them.

    ``info`` is the model's metadata (:func:`export_info`); ``image_sizes`` the original
    ``(height, width)`` of each image, to scale the boxes back to (default: the ``S × S`` input).
    Returns per image ``{"boxes": [K, 4] (x1, y1, x2, y2), "scores": [K], "labels": [K]}``,
    best first, from the export rule of ``info["detector"]`` (:func:`export_rule`). On PyTorch's
    own raw outputs the result equals the detector's bit for bit; on another runtime's, whose
    outputs differ by float noise (~1e-7), detections whose scores tie to that precision may swap places.
    """
    rule = export_rule(info["detector"])
    detections = rule.postprocess({name: torch.as_tensor(value) for name, value in outputs.items()}, info)
    if image_sizes is not None:
        size = info["input_size"]
        for detection, (height, width) in zip(detections, image_sizes, strict=True):
            boxes = detection["boxes"]
            detection["boxes"] = boxes * torch.tensor([width / size, height / size] * 2, dtype=boxes.dtype)
    return detections


def require_format(format: str) -> None:
    """Check that ``format`` is known and its packages are installed (before any work is done)."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
    if format == "onnx":
        for package in ("onnx", "onnxruntime", "onnxscript"):
            try:
                importlib.import_module(package)
            except ImportError:
                raise ExportError(f"ONNX export needs the package {package!r}: {INSTALL_HINT}") from None


class _AnchorsOutputNotice(logging.Filter):
    """Drops onnx_ir's warning that the ``anchors`` initializer is not deduplicated: it is a graph output by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is a graph input or output" not in record.getMessage()


def _write_onnx(module: ExportedCore, sample: torch.Tensor, path: Path, info: dict[str, Any], *, dynamic_batch: bool) -> None:
    # The torch.export-based exporter (dynamo=True, which needs onnxscript) is torch's default since 2.9;
    # the TorchScript-based one (dynamo=False) is deprecated and warns so.
    notice = _AnchorsOutputNotice()
    deduplication = logging.getLogger("onnx_ir.passes.common.initializer_deduplication")
    deduplication.addFilter(notice)
    try:
        program = torch.onnx.export(
            module,
            (sample,),
            dynamo=True,
            input_names=["images"],
            output_names=info["outputs"],
            dynamic_shapes={"images": {0: torch.export.Dim("batch")}} if dynamic_batch else None,
            verbose=False,
        )
    finally:
        deduplication.removeFilter(notice)
    program.model.metadata_props[ONNX_METADATA_KEY] = json.dumps(info)
    program.save(path, external_data=False)


def _run_onnx(path: Path, images: torch.Tensor) -> list[torch.Tensor]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(array) for array in session.run(None, {"images": images.numpy()})]


def _write_torchscript(module: ExportedCore, sample: torch.Tensor, path: Path, info: dict[str, Any], *, dynamic_batch: bool) -> None:
    # The trace reads the batch size from the tensors' shapes, so the module takes any batch: nothing to do
    # for ``dynamic_batch``.
    with warnings.catch_warnings():  # recent torch marks TorchScript deprecated; C++ and mobile runtimes still load it
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=FutureWarning)
        traced = torch.jit.trace(module, (sample,))
        torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_METADATA_FILE: json.dumps(info)})


def _run_torchscript(path: Path, images: torch.Tensor) -> list[torch.Tensor]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=FutureWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return list(loaded(images))


_WRITERS = {"onnx": (_write_onnx, _run_onnx), "torchscript": (_write_torchscript, _run_torchscript)}


def read_info(path: str | Path) -> dict[str, Any]:
    """The metadata (:func:`export_info`) stored in an exported ONNX (``.onnx``) or TorchScript file.

    A file that is missing, unreadable, or holds no netadapt metadata is one :class:`ExportError`
    line naming it.
    """
    path = Path(path)
    kind = "ONNX" if path.suffix == ".onnx" else "TorchScript"
    if not path.is_file():
        raise ExportError(f"{path}: not a netadapt export: no such file")
    try:
        if kind == "ONNX":
            import onnx

            props = {prop.key: prop.value for prop in onnx.load(str(path), load_external_data=False).metadata_props}
            text = props.get(ONNX_METADATA_KEY)
        else:
            files = {TORCHSCRIPT_METADATA_FILE: ""}
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=FutureWarning)
                torch.jit.load(str(path), map_location="cpu", _extra_files=files)
            text = files[TORCHSCRIPT_METADATA_FILE] or None
    except Exception as error:  # onnx's DecodeError, torch's RuntimeError, ...: the file is no model of that kind
        raise ExportError(f"{path}: not a netadapt export: not a readable {kind} model ({describe(error)})") from None
    where = f"metadata property {ONNX_METADATA_KEY!r}" if kind == "ONNX" else f"extra file {TORCHSCRIPT_METADATA_FILE!r}"
    if text is None:
        raise ExportError(f"{path}: not a netadapt export: the {kind} model has no {where}")
    try:
        info = json.loads(text)
    except json.JSONDecodeError as error:
        raise ExportError(f"{path}: not a netadapt export: its {where} is not JSON (line {error.lineno})") from None
    if not isinstance(info, dict) or info.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{path}: not a netadapt export: its {where} lacks \"format\": \"{EXPORT_FORMAT}\"")
    return info


def export_detector(
    model: nn.Module,
    spec: DetectorSpec,
    out: str | Path,
    *,
    format: str,
    image: torch.Tensor,
    tolerance: float = DEFAULT_TOLERANCE,
    dynamic_batch: bool = False,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Write ``model``'s core to ``out`` in ``format`` and check it on ``image`` (uint8 RGB ``[3, H, W]``).

    The core is exported with the preprocessed image as its sample input. The exported file is
    run (onnxruntime / ``torch.jit.load``) on that image and on its mirror image (flipped
    horizontally: an input the exporter never saw) and compared with the PyTorch core; if any
    output differs by more than it may (``tolerance`` plus twice
    PyTorch's own float32 rounding error, :func:`float32_rounding`) an :class:`ExportError` is raised and nothing is
    written (the file is renamed into place only after the check). An exporter or runtime that
    fails is one :class:`ExportError` line naming ``checkpoint`` (what ``model`` was loaded from;
    default: ``out``), the format and the first line of the failure. ``dynamic_batch`` gives the
    ONNX graph a dynamic batch axis (module docstring). ``model`` is put in eval mode on the CPU.
    Returns ``{"format", "out", "outputs": {name: shape}, "max_abs_diff": {name: diff},
    "max_abs_diff_all", "float32_rounding": {name: error}, "allowed": {name: bound}, "tolerance",
    "seconds"}`` (differences and rounding errors: the larger of the two images').
    """
    require_format(format)
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ExportError(f"tolerance must be a finite number ≥ 0, got {tolerance!r}")
    started = time.perf_counter()
    model = model.eval().cpu()
    rule = export_rule(spec.detector, model)
    probe = _probe(model, spec.input_size)
    info = _info(model, spec, probe, rule)
    module = ExportedCore(model, probe.anchors).eval()
    images = preprocess(image, info)
    checks = {"check image": images, "mirrored check image": images.flip(-1)}
    with torch.no_grad():
        expected = {name: module(inputs) for name, inputs in checks.items()}
    rounding = float32_rounding(module, checks.values(), info["outputs"])
    unfinite = [name for name, error in rounding.items() if not math.isfinite(error)]
    if unfinite:
        raise ExportError(f"{checkpoint or out}: the model's own {unfinite[0]!r} on the check image is not finite (NaN or inf); nothing to check an export against")
    allowed = {name: tolerance + 2 * error for name, error in rounding.items()}
    write, run = _WRITERS[format]
    out = Path(out)
    source = checkpoint if checkpoint is not None else out
    with atomic_path(out) as temporary:
        try:
            write(module, images, temporary, info, dynamic_batch=dynamic_batch)
        except Exception as error:  # torch.onnx.export / torch.jit.trace: multi-line reports of their own
            raise ExportError(f"{source}: {format} export failed: {describe(error)}") from error
        found = []  # (difference, output name, check image)
        for check, inputs in checks.items():
            try:
                actual = run(temporary, inputs)
            except Exception as error:  # onnxruntime / torch.jit.load cannot run what was written
                raise ExportError(f"{source}: the exported {format} model does not run: {describe(error)}") from error
            for name, got, want in zip(info["outputs"], actual, expected[check], strict=True):
                found.append((_max_abs_difference(got, want), name, check))
        differences = {name: max(d for d, output, _ in found if output == name) for name in info["outputs"]}
        over = [item for item in found if not item[0] <= allowed[item[1]]]
        if over:
            difference, worst, worst_check = max(over, key=lambda item: item[0] - allowed[item[1]])
            raise ExportError(
                f"{out}: the exported {format} model differs from PyTorch by {difference:.3g} in {worst!r} on the "
                f"{worst_check} (allowed {allowed[worst]:.3g}: tolerance {tolerance:g} + 2 × float32 rounding "
                f"{rounding[worst]:.3g}); nothing written"
            )
    return {
        "format": format,
        "out": str(out),
        "outputs": {name: list(tensor.shape) for name, tensor in zip(info["outputs"], expected["check image"])},
        "max_abs_diff": differences,
        "max_abs_diff_all": max(differences.values()),
        "float32_rounding": rounding,
        "allowed": allowed,
        "tolerance": tolerance,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _max_abs_difference(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest absolute difference; infinite for another shape or a NaN."""
    if got.shape != want.shape:
        return math.inf
    difference = float((got.to(want.dtype) - want).abs().max())
    return math.inf if math.isnan(difference) else difference


@torch.no_grad()
def float32_rounding(module: nn.Module, inputs: Iterable[torch.Tensor], names: Sequence[str]) -> dict[str, float]:
    """Per output: how far ``module``'s float32 result lies from the same computation in float64,
    the largest over ``inputs`` — the rounding error of PyTorch's own float32 run.

    An exported model computes in float32 too, with other kernels (onnxruntime's convolutions,
    fused operators) that round differently. Both results scatter around the exact one by about
    this much, so they may differ from each other by up to twice it: the export check allows
    ``tolerance + 2 × rounding`` per output. For a small or well-scaled network the rounding is
    ~1e-7 and the tolerance (1e-4) decides; a deep one with large activations rounds by more
    than the tolerance (measured: a RetinaNet at 320² whose 256-channel head gives logits up to
    ±7 rounds by 1.3e-4, and onnxruntime's result is 1.9e-4 from PyTorch's), and no export can
    do better than that.
    """
    exact = copy.deepcopy(module).double()
    errors = dict.fromkeys(names, 0.0)
    for batch in inputs:
        for name, single, double in zip(names, module(batch), exact(batch.double()), strict=True):
            errors[name] = max(errors[name], _max_abs_difference(single.double(), double))
    return errors
