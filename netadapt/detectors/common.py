"""What every detector on a netadapt base network shares: the body's taps and the common options.

- :func:`take_over_body` checks that a base network has the two detector taps (strides 16 and
  32, see :mod:`netadapt.bases`) and drops its classifier, so that the detector can keep it as
  ``backbone.body``;
- :func:`check_detection_options` checks the options torchvision's single-stage detection
  models share (classes, input size, test-time thresholds, input normalisation), types included,
  and raises ``ValueError`` naming a bad value, as a builder with keyword-only arguments should.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any

from torch import nn

from netadapt.contracts import Backbone, Network


def take_over_body(body: nn.Module, *, classifier: str | None = "classifier") -> list[str]:
    """The names of ``body``'s two detector taps (stride 16 first); its classifier dropped.

    ``body`` needs ``forward_taps(x) -> OrderedDict[str, Tensor]`` and ``tap_channels: dict[str,
    int]`` with two taps. Detection does not use the body's classification head: the module at
    ``classifier`` — a label of the body's ``part_paths`` (a base network's ``"classifier"`` is
    ``classifier`` in a MobileNet, ``fc`` in a ResNet), else an attribute name; ``None`` keeps it —
    is replaced by ``nn.Identity`` (if the body has it) — in place, the detector takes the body
    over — so that its parameters are neither trained, counted nor saved.
    """
    if not isinstance(body, Backbone) or not isinstance(body.tap_channels, dict):
        raise ValueError(
            f"backbone {type(body).__name__} has no detector taps: it needs forward_taps(x) and a tap_channels dict"
        )
    if len(body.tap_channels) != 2:
        raise ValueError(
            f"backbone {type(body).__name__} must expose two taps (strides 16 and 32), got tap_channels={body.tap_channels}"
        )
    if classifier is not None:
        path = (body.part_paths if isinstance(body, Network) else {}).get(classifier, classifier)
        try:
            body.get_submodule(path)
        except AttributeError:
            return list(body.tap_channels)
        body.set_submodule(path, nn.Identity())
    return list(body.tap_channels)


def build_options(build: Callable[..., Any]) -> dict[str, Any]:
    """A detector builder's options and their defaults: its keyword-only parameters but ``num_classes`` and
    ``input_size``. A detector plugin's ``options`` (``netadapt config`` lists them under ``detector_options``)."""
    return {
        name: parameter.default
        for name, parameter in inspect.signature(build).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("num_classes", "input_size")
    }


def check_detection_options(
    *,
    num_classes: int,
    input_size: int,
    score_thresh: float,
    nms_thresh: float,
    detections_per_img: int,
    topk_candidates: int,
    image_mean: Sequence[float],
    image_std: Sequence[float],
) -> None:
    """Raise ``ValueError`` naming the first bad value among the shared detector options."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer ≥ 2 (the background counts), got {num_classes!r}")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size <= 0:
        raise ValueError(f"input_size must be a positive integer, got {input_size!r}")
    if not _is_number(score_thresh) or not 0.0 <= score_thresh < 1.0:
        raise ValueError(f"score_thresh must be a number in [0, 1), got {score_thresh!r}")
    if not _is_number(nms_thresh) or not 0.0 < nms_thresh <= 1.0:
        raise ValueError(f"nms_thresh must be a number in (0, 1], got {nms_thresh!r}")
    for name, value in (("detections_per_img", detections_per_img), ("topk_candidates", topk_candidates)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("image_mean", image_mean), ("image_std", image_std)):
        three = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3 and all(map(_is_number, value))
        if not three or not all(map(math.isfinite, value)) or (name == "image_std" and min(value) <= 0):
            raise ValueError(f"{name} must be three finite numbers (std positive), got {value!r}")


def _is_number(value: object) -> bool:
    """A real number that is not a bool (YAML's ``true`` is no threshold)."""
    return isinstance(value, Real) and not isinstance(value, bool)
