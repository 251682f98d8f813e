"""A detector as data (:class:`DetectorSpec`), built from plugins, and its checkpoint file.

A detector checkpoint (``netadapt train`` writes ``model.pth``) is a plain dict, loadable with
``torch.load(..., weights_only=True)``::

    {"format": "netadapt-detector", "version": 1, "spec": DetectorSpec.to_dict(),
     "state_dict": {key: tensor}}   # keys: backbone.body.<base key>, backbone.<other layers>.*, head.*
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from netadapt import plugins
from netadapt.cost.footprint import check_memory, genotype_footprint
from netadapt.errors import ConfigError, WeightsError
from netadapt.files import load_torch_file, save_torch_atomic
from netadapt.genotype import Genotype, genotype_from_data
from netadapt.weights import load_state_dict_strict

DETECTOR_FORMAT = "netadapt-detector"
DETECTOR_VERSION = 1


@dataclass
class DetectorSpec:
    """Everything needed to rebuild a detector: plugins, architecture, classes, options."""

    detector: str
    base: str
    genotype: Genotype
    class_names: list[str]  # index = contiguous label; 0 is the background
    input_size: int = 320
    options: dict[str, Any] = field(default_factory=dict)  # the detector plugin's build options

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["genotype"] = self.genotype.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str) -> DetectorSpec:
        try:
            return cls(**(data | {"genotype": genotype_from_data(data["genotype"], source=f"{source} (genotype)")}))
        except (KeyError, TypeError) as error:
            raise WeightsError(f"{source}: not a netadapt detector spec ({error})") from None


def options_from_config(detector: str, config: Any) -> dict[str, Any]:
    """The build options a run config (``TrainConfig`` or ``SearchConfig``) gives detector plugin ``detector``:
    its ``detector_options`` as given (``--set train.detector_options={anchors: torchvision}``). The core config
    knows no detector's fields; the plugin's ``build`` checks them."""
    plugins.detectors().get(detector)  # an unknown detector: the registry's error, naming the installed ones
    return dict(config.detector_options)


def build_detector_on(body: nn.Module, detector: str, *, num_classes: int, input_size: int, options: dict[str, Any]) -> nn.Module:
    """Detector plugin ``detector`` on ``body`` (a base or super network); a bad option is a ConfigError naming it
    (a plugin's ``ValueError``, or a ``TypeError``: an option of the wrong type, one its ``build`` does not take)."""
    try:
        return plugins.detectors().get(detector).build(body, num_classes=num_classes, input_size=input_size, **options)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"detector {detector!r}: {error}") from None


def check_detector_memory(
    genotype: Genotype, *, input_size: int, num_classes: int, where: str, batch: int = 1, training: bool = False,
) -> None:
    """Refuse a detector that would not fit this machine's memory, before anything is built
    (:mod:`netadapt.cost.footprint`); ``where`` names the file or options at fault."""
    footprint = genotype_footprint(genotype, input_size=input_size, num_classes=num_classes, detector=True)
    check_memory(
        footprint.bytes(batch=batch, training=training),
        what=f"{where}: a detector of {num_classes} classes at input {input_size}×{input_size}"
        + (f", batch {batch}, training" if training else "") + f" ({footprint.parameters:,} parameters)",
    )


def check_training_memory(genotype: Genotype, config: Any, *, section: str) -> None:
    """Refuse, before anything is built (the demo base's pretraining included), a training or search whose input size
    and batch would not fit this machine's memory (``section``: the config section named in the message)."""
    check_detector_memory(
        genotype, input_size=config.input_size, num_classes=2, batch=config.batch_size, training=True,
        where=f"{section}.input_size={config.input_size}, {section}.batch_size={config.batch_size}",
    )


def build_detector(spec: DetectorSpec, *, where: str = "detector") -> nn.Module:
    """A randomly initialised detector of ``spec`` (base network, then the detector on its taps); one that would
    not fit in memory is refused before anything is built."""
    check_detector_memory(spec.genotype, input_size=spec.input_size, num_classes=spec.num_classes, where=where)
    body = plugins.bases().get(spec.base).build(spec.genotype)
    return build_detector_on(body, spec.detector, num_classes=spec.num_classes, input_size=spec.input_size, options=spec.options)


def detector_checkpoint(spec: DetectorSpec, model: nn.Module) -> dict[str, Any]:
    return {
        "format": DETECTOR_FORMAT,
        "version": DETECTOR_VERSION,
        "spec": spec.to_dict(),
        "state_dict": {key: value.detach().cpu() for key, value in unwrap(model).state_dict().items()},
    }


def save_detector(path: str | Path, spec: DetectorSpec, model: nn.Module) -> None:
    save_torch_atomic(detector_checkpoint(spec, model), path)


def load_detector(path: str | Path) -> tuple[nn.Module, DetectorSpec]:
    """Rebuild a detector from a checkpoint written by ``netadapt train`` (``model.pth`` or ``last.pth``)."""
    path = Path(path)
    data = load_torch_file(path, what="detector checkpoint")
    if not isinstance(data, dict) or "spec" not in data or data.get("format") not in (DETECTOR_FORMAT, "netadapt-train"):
        raise WeightsError(f"{path}: not a netadapt detector checkpoint (write one with `netadapt train`)")
    state = data["state_dict"] if "state_dict" in data else data.get("model")
    if not isinstance(state, Mapping):  # checked before the detector is built
        raise WeightsError(f"{path}: a detector checkpoint without weights (no 'state_dict' or 'model' mapping of tensors)")
    spec = DetectorSpec.from_dict(data["spec"], source=str(path))
    model = build_detector(spec, where=f"{path}: its spec")
    load_state_dict_strict(model, state, source=str(path))
    return model, spec


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
