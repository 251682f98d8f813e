"""A remap-aware score of every candidate op (DESIGN §1.6, "Selection that wins").

The super network scores an op by what its weights became after the search's epochs; a network that trains alone
starts from weights *remapped from the base*. This score measures the latter: for each searched layer and each
candidate op, the base network with that one change, its weights remapped from the base (``remap.mode``), its
BatchNorm statistics re-estimated on training images (EagleEye, Li et al. 2020: scores after BN re-estimation track
fine-tuned accuracy where raw ones do not), is run on held-out training images, and its detector taps are compared
with the base network's (same re-estimation): the distortion of an op is the mean over taps of
‖f(x) − f_base(x)‖² / ‖f_base(x)‖² (taps whose shape the change kept). The base's own op scores 0; everything else less. A network's score is the sum
over its layers (the additive approximation that the exact constrained choice needs: NetAdapt's per-layer
proposals, scored one change at a time).

Scores are cached (``$NETADAPT_CACHE/remap_scores``), keyed by the base weights, the space, the mode and the images.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from netadapt.engine.batchnorm import reestimate_batchnorm
from netadapt.files import write_json_atomic
from netadapt.remap.base import remap_base
from netadapt.search.budget import base_ops
from netadapt.search.derive import derive_genotype
from netadapt.weights import Weights

SCORE_VERSION = 1
# The SSD transform's normalisation (torchvision's SSDLite: mean 0.5, std 0.5), what the backbone sees in a detector.
IMAGE_MEAN, IMAGE_STD = 0.5, 0.5


@dataclass
class ScoreTable:
    """Per searched layer, the distortion of every candidate op against the base (0 for the base's op)."""

    distortion: list[dict[str, float]]
    mode: str
    key: str

    def scores(self, names: Sequence[Sequence[str]]) -> list[list[float]]:
        """−distortion per layer and op, in the order of ``names`` (higher is better)."""
        return [[-layer[name] for name in row] for layer, row in zip(self.distortion, names, strict=True)]

    def score_of(self, ops: Sequence[str]) -> float:
        return -math.fsum(layer[op] for layer, op in zip(self.distortion, ops, strict=True))

    def to_dict(self) -> dict:
        return {"version": SCORE_VERSION, "mode": self.mode, "key": self.key, "distortion": self.distortion}


def tap_distortion(features: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """Mean over taps of ‖f − f_ref‖² / ‖f_ref‖² (module docstring), over the taps whose shape the change kept (an
    expansion tap of a narrower layer has other channels; the last tap, the head conv's, always keeps its shape)."""
    ratios = [
        float((features[name] - ref).pow(2).sum() / ref.pow(2).sum().clamp_min(1e-12))
        for name, ref in reference.items() if features[name].shape == ref.shape
    ]
    return math.fsum(ratios) / len(ratios)


def score_key(weights: Weights, *, fingerprint: str, mode: str, images: Sequence[str]) -> str:
    """What a score depends on: the base's tensors, the space (its fingerprint), the mode and the images."""
    digest = hashlib.sha256()
    for name, tensor in sorted(weights.state_dict.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(json.dumps({"v": SCORE_VERSION, "space": fingerprint, "mode": mode, "images": list(images)}).encode())
    return digest.hexdigest()[:24]


@torch.no_grad()
def remap_aware_scores(
    *,
    base_name: str,
    weights: Weights,
    base_genotype,
    skeleton,
    layers: Sequence,
    space_name: str,
    mode: str,
    bn_images: torch.Tensor,
    eval_images: torch.Tensor,
    key: str,
    cache_dir: Path | None = None,
    batch_size: int = 32,
) -> ScoreTable:
    """The :class:`ScoreTable` of every op of ``layers`` (read from ``cache_dir`` when it holds ``key``).

    A one-change network computes what the base computes up to its changed layer. Where the network runs its taps
    as a sequence of ``features`` (the MobileNet family: ``forward_taps(x, start=k)``), the base's inputs of every
    feature layer are kept — under BatchNorm re-estimation (train mode: batch statistics) and in eval mode — and each
    one-change network runs, re-estimates and is compared from its first changed layer on; elsewhere it runs whole.
    """
    cached = cache_dir / f"{key}.json" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        data = json.loads(cached.read_text())
        if data.get("version") == SCORE_VERSION and data.get("key") == key:
            return ScoreTable(data["distortion"], data["mode"], key)
    keep = base_ops(base_genotype, layers)
    if keep is None:
        raise ValueError(f"base {base_name!r} has ops the search space lacks: no one-change networks to score")
    bn_batches = [_normalise(b) for b in bn_images.split(batch_size)]
    eval_batches = [_normalise(b) for b in eval_images.split(batch_size)]

    def network_of(ops: list[str]):
        genotype = derive_genotype(skeleton, list(layers), ops, space_name=space_name)
        return genotype, remap_base(genotype, base_name=base_name, weights=weights, mode=mode).network

    base_genotype_, base_network = network_of(keep)
    prefix = _PrefixInputs.of(base_network, bn_batches, eval_batches)
    reference = prefix.reference if prefix is not None else _taps_of(base_network, bn_batches, eval_batches, start=0)
    distortion: list[dict[str, float]] = []
    for index, layer in enumerate(layers):
        row: dict[str, float] = {}
        for op in layer.candidates:
            if op.name == keep[index]:
                row[op.name] = 0.0
                continue
            ops = list(keep)
            ops[index] = op.name
            genotype, network = network_of(ops)
            if prefix is not None:
                start = 1 + _common_prefix(_flat(base_genotype_), _flat(genotype))  # features[0] is the stem
                # A tap before the first changed layer is the base's own (distortion 0).
                suffix = _taps_of(network, prefix.bn_inputs[start], prefix.eval_inputs[start], start=start)
                features = [ref | taps for ref, taps in zip(reference, suffix)]
            else:
                features = _taps_of(network, bn_batches, eval_batches, start=0)
            row[op.name] = math.fsum(tap_distortion(f, r) for f, r in zip(features, reference)) / len(reference)
        distortion.append(row)
    table = ScoreTable(distortion, mode, key)
    if cached is not None:
        write_json_atomic(cached, table.to_dict())
    return table


def _flat(genotype) -> list[tuple[int, str]]:
    return [(s, op.name) for s, stage in enumerate(genotype.stages) for op in stage.ops if not op.is_skip]


def _common_prefix(a: list, b: list) -> int:
    length = 0
    while length < min(len(a), len(b)) and a[length] == b[length]:
        length += 1
    return length


def _taps_of(network: nn.Module, bn_batches: list[torch.Tensor], eval_batches: list[torch.Tensor], *, start: int) -> list[dict[str, torch.Tensor]]:
    """``network``'s BatchNorm statistics re-estimated on ``bn_batches``, then its taps on ``eval_batches`` (both the
    inputs of ``features[start]`` when ``start > 0``)."""
    taps = Taps(network, start)
    reestimate_batchnorm(taps, bn_batches)
    network.eval()
    return [taps(batch) for batch in eval_batches]


@dataclass
class _PrefixInputs:
    """The base network's input of every ``features`` layer, per batch, under BatchNorm re-estimation and in eval mode
    (after it), and its taps: what a one-change network starts from at its first changed layer."""

    bn_inputs: list[list[torch.Tensor]]
    eval_inputs: list[list[torch.Tensor]]
    reference: list[dict[str, torch.Tensor]]

    @classmethod
    def of(cls, network: nn.Module, bn_batches: list[torch.Tensor], eval_batches: list[torch.Tensor]) -> _PrefixInputs | None:
        features = getattr(network, "features", None)
        if not isinstance(features, nn.Sequential) or "before" not in inspect.signature(network.forward_taps).parameters:
            return None
        seen: list[list[torch.Tensor]] = [[] for _ in features]

        def keep(index: int, x: torch.Tensor) -> None:
            seen[index].append(x)

        reestimate_batchnorm(Taps(network, 0, before=keep), bn_batches)
        bn_inputs = [list(inputs) for inputs in seen]
        for inputs in seen:
            inputs.clear()
        network.eval()
        reference = [network.forward_taps(batch, before=keep) for batch in eval_batches]
        return cls(bn_inputs, [list(inputs) for inputs in seen], reference)


def _normalise(images: torch.Tensor) -> torch.Tensor:
    return (images - IMAGE_MEAN) / IMAGE_STD


class Taps(nn.Module):
    """A network whose forward is its detector taps from ``features[start]`` on (what BatchNorm re-estimation runs)."""

    def __init__(self, network: nn.Module, start: int, before=None) -> None:
        super().__init__()
        self.network, self.start, self.before = network, start, before

    def forward(self, x: torch.Tensor):
        if not self.start and self.before is None:
            return self.network.forward_taps(x)  # any network with taps
        return self.network.forward_taps(x, start=self.start, before=self.before)
