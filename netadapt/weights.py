"""Reading weights and writing netadapt model checkpoints.

``--weights`` accepts:

- ``imagenet`` — the base's ImageNet weights through torchvision's weights API;
- a file in torchvision's key format (what ``torchvision.models.mobilenet_v2().state_dict()``
  holds; a ``{"model": state_dict}`` wrapper as torchvision's reference scripts save is accepted);
- a netadapt model checkpoint (written by ``netadapt remap``), which also carries its genotype.

A netadapt model checkpoint (``netadapt remap --out``) is a plain dict, loadable with
``torch.load(..., weights_only=True)``; :func:`load_network` rebuilds its network::

    {"format": "netadapt-model",   # always this string
     "version": 1,                 # CHECKPOINT_VERSION: a newer file is refused, never misread
     "base": str,                  # the registered base network that builds it
     "genotype": dict,             # Genotype.to_dict(): nominal channels, width_mult, extra fields
     "num_classes": int,           # rows of the classifier
     "state_dict": {key: tensor}}  # in the key layout of base.build(genotype)

A detector checkpoint (``netadapt train``, ``model.pth``) is another format: ``netadapt.detectors.model.load_detector``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from netadapt import plugins
from netadapt.errors import WeightsError
from netadapt.files import load_torch_file, save_torch_atomic
from netadapt.genotype import Genotype, genotype_from_data

CHECKPOINT_FORMAT = "netadapt-model"
CHECKPOINT_VERSION = 1


@dataclass
class Weights:
    """A state dict, the genotype it belongs to (``None``: the base genotype) and where it came from."""

    state_dict: dict[str, torch.Tensor]
    genotype: Genotype | None
    source: str


def read_weights(source: str | Path, *, base_name: str) -> Weights:
    """Read ``imagenet``, a torchvision-format file or a netadapt checkpoint."""
    if str(source) == "imagenet":
        return Weights(plugins.bases().get(base_name).imagenet_state_dict(), None, f"{base_name} ImageNet weights")
    path = Path(source)
    data = load_torch_file(path, what="PyTorch weights file (pass a .pth file, a netadapt checkpoint, or 'imagenet')")
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        _check_version(data, path)
        if data.get("base") != base_name:
            raise WeightsError(f"{path}: checkpoint is for base {data.get('base')!r}, not {base_name!r}")
        try:
            genotype = genotype_from_data(data["genotype"], source=f"{path} (genotype)")
        except KeyError:
            raise WeightsError(f"{path}: netadapt checkpoint has no 'genotype'") from None
        return Weights(_tensor_dict(data.get("state_dict"), path), genotype, str(path))
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    return Weights(_tensor_dict(data, path), None, str(path))


def load_network(checkpoint: str | Path) -> tuple[nn.Module, Genotype]:
    """The network a netadapt model checkpoint holds (``netadapt remap --out``), built by its base network from its
    genotype and loaded strictly, in eval mode; and that genotype."""
    path = Path(checkpoint)
    data = load_torch_file(path, what="netadapt model checkpoint (written by netadapt remap --out)")
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path}: not a netadapt model checkpoint (no format: {CHECKPOINT_FORMAT!r}); a detector's model.pth "
                           "is read by netadapt.detectors.model.load_detector")
    _check_version(data, path)
    network, genotype = build_with_weights(read_weights(path, base_name=str(data.get("base"))), base_name=str(data.get("base")))
    return network.eval(), genotype


def _check_version(data: dict, path: Path) -> None:
    version = data.get("version")
    if not isinstance(version, int) or not 1 <= version <= CHECKPOINT_VERSION:
        raise WeightsError(f"{path}: netadapt model checkpoint version {version!r}; this netadapt reads versions 1..{CHECKPOINT_VERSION}")


def build_with_weights(weights: Weights, *, base_name: str) -> tuple[nn.Module, Genotype]:
    """Build the network the weights belong to and load them strictly."""
    base = plugins.bases().get(base_name)
    genotype = weights.genotype or base.base_genotype()
    classifier = weights.state_dict.get(base.classifier_key)
    num_classes = classifier.shape[0] if classifier is not None else 1000
    network = base.build(genotype, num_classes=num_classes)
    load_state_dict_strict(network, weights.state_dict, source=weights.source)
    return network, genotype


def load_state_dict_strict(network: nn.Module, state_dict: dict[str, torch.Tensor], *, source: str) -> None:
    """``load_state_dict(strict=True)`` with one readable line instead of torch's paragraph."""
    expected = network.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[0]!r})")
        raise WeightsError(f"{source}: weights do not fit the network: {', '.join(parts)}")
    for key, tensor in state_dict.items():
        if tensor.shape != expected[key].shape:
            raise WeightsError(
                f"{source}: {key!r} has shape {tuple(tensor.shape)}, the network expects {tuple(expected[key].shape)}"
            )
    network.load_state_dict(state_dict)


def save_model_checkpoint(path: str | Path, *, base_name: str, genotype: Genotype, network: nn.Module, num_classes: int) -> None:
    """Write a netadapt model checkpoint atomically (temporary file + rename)."""
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "base": base_name,
        "genotype": genotype.to_dict(),
        "num_classes": num_classes,
        "state_dict": {key: value.detach().cpu() for key, value in network.state_dict().items()},
    }
    save_torch_atomic(checkpoint, path)


def _tensor_dict(data: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{path}: expected a state dict (names → tensors) in torchvision's key format")
    return data
