"""What a plugin registers, member by member: one Protocol per ``register_*`` hook (docs/writing-a-plugin.md).

A Protocol's members are required: registration (:mod:`netadapt.plugins`) checks that the
object has each of them (methods callable) and fails with one :class:`~netadapt.errors.PluginError`
line naming the plugin and the member. The members a core function reads only when present
are declared in the ``*Options`` Protocols next to it and read through :func:`optional`, which
refuses a name no contract declares. The network a base builds (:class:`Network`) is checked
where the core first reads it (:func:`check_network`), since registration has no network yet.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from netadapt.errors import PluginError

if TYPE_CHECKING:  # annotations only: importing the contracts (hookspecs does) imports no torch; nothing above the floor
    import torch
    from torch import nn

    from netadapt.genotype import Genotype, Op

GUIDE = "docs/writing-a-plugin.md"
T = TypeVar("T")


@dataclass
class Cost:
    """A measurement: ``total`` and the share of every module path (``""`` is the whole network).

    ``left_out`` names what the model saw but did not count (operator → occurrences or amount),
    so that a report can say so.
    """

    total: float
    by_module: dict[str, float]
    left_out: dict[str, str] = field(default_factory=dict)

    def of(self, path: str) -> float:
        return self.by_module.get(path, 0.0)

# What the contracts read of objects that higher floors make (docs/architecture.md: the contracts import nothing
# above the ground floor, not even for type checking): netadapt.data.sources.DataSplit, netadapt.export.Probe and
# netadapt.search.supernet.ArchitectureParameters satisfy these.
class SplitFiles(Protocol):
    """One COCO-format split: its image folder and its annotation file (``netadapt.data.sources.DataSplit``)."""

    images: Path
    annotations: Path


class DetectorProbe(Protocol):
    """What one forward pass shows of a detector (``netadapt.export.Probe``)."""

    output_names: list[str]  # the head's, in CoreForward's order
    anchors: torch.Tensor  # [A, 4]
    anchors_per_level: list[int]  # per feature map: its locations × anchors per location


class OpWeights(Protocol):
    """α of a search, one vector per searched layer (``netadapt.search.supernet.ArchitectureParameters``)."""

    candidate_names: list[list[str]]

    def probabilities(self, *, temperature: float = 1.0) -> list[torch.Tensor]:
        """softmax(α / T) per layer."""
        ...


# A layer of a genotype in its network: a module path, several paths when the layer is several
# modules in the network's layout (torchvision's MNASNet: conv, BN, ReLU, ... side by side), or
# None for a ``skip`` layer.
LayerPath = str | tuple[str, ...] | None


def module_paths(path: LayerPath) -> tuple[str, ...]:
    """The module paths of one layer or part (none for ``skip``)."""
    if path is None:
        return ()
    return (path,) if isinstance(path, str) else tuple(path)


@runtime_checkable
class Backbone(Protocol):
    """What a detector reads of the network it is built on (a :class:`Network` or a super network)."""

    # Channels of each detector tap, smallest stride first (two taps: strides 16 and 32); {} if none.
    tap_channels: dict[str, int]

    def forward_taps(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """The detector taps of ``x``, keyed and ordered as ``tap_channels``."""
        ...


@runtime_checkable
class Network(Backbone, Protocol):
    """What ``BaseNetwork.build`` returns: an ``nn.Module`` classifier (``network(x)`` gives logits) with
    these and :class:`Backbone`'s members."""

    # Per genotype stage, per op: the layer's module path(s) (LayerPath), for remapping and cost rows.
    layer_paths: list[list[LayerPath]]
    # Label → module path(s) of every part outside the stages (stem, head, ...); "classifier" is required.
    part_paths: dict[str, str | tuple[str, ...]]


@runtime_checkable
class TapBlock(Protocol):
    """Optional: a block whose expansion output is a tap (``forward_taps`` calls these on the layer). The base
    plugin's block class provides them (``netadapt.bases.mobilenet.InvertedResidualBlock`` has them); the core's
    mixed op provides them for itself, by calling every candidate's, when the layer is searched."""

    hidden_channels: int

    def forward_with_expansion(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output and its expansion output."""
        ...


@runtime_checkable
class BaseNetwork(Protocol):
    """Registered with ``register_bases``: a family of networks built from genotypes."""

    name: str
    classifier_key: str  # state-dict key of the classifier's weight (its rows are the classes)

    def base_genotype(self, *, width_mult: float = 1.0) -> Genotype:
        """The hand-designed architecture the family starts from."""
        ...

    def build(self, genotype: Genotype, *, num_classes: int = 1000) -> nn.Module:
        """A randomly initialised :class:`Network` of ``genotype``; refuses an op it cannot build (``GenotypeError``)."""
        ...

    def imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        """ImageNet weights in the key layout of ``build``; ``WeightsError`` when there are none."""
        ...


class BaseNetworkOptions(Protocol):
    default_search_space: str  # the registered space a search of this base uses by default (else "fna")
    # True: re-estimate the detector's BatchNorm statistics after every detection training (train.bn_reestimate
    # "auto" does it anyway when a BatchNorm's momentum is too small for the run: netadapt.engine.batchnorm).
    reestimate_batchnorm: bool


@runtime_checkable
class CostModel(Protocol):
    """Registered with ``register_cost_models``."""

    name: str
    unit: str  # "MAdds", "ms", ...

    def measure(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Cost:
        """The module's cost on ``inputs``, in total and per module path."""
        ...


class CostModelOptions(Protocol):
    measures: bool  # False: the model only reads a table given to it (no measured cost is reported)
    options: Mapping[str, Any]  # search.cost_options it accepts → its default (netadapt config lists them)

    def for_config(self, config: Any) -> CostModel:
        """The model configured from ``search.cost_table`` and ``search.cost_options``."""
        ...

    def cache_key(self) -> str | None:
        """What a measurement depends on beyond network and input (a device); None: no on-disk table."""
        ...

    def describe(self) -> str:
        """Where the costs come from, for reports (default: the name)."""
        ...


@runtime_checkable
class Detector(Protocol):
    """Registered with ``register_detectors``."""

    name: str

    def build(self, backbone: nn.Module, *, num_classes: int, input_size: int = 320, **options: Any) -> nn.Module:
        """A torchvision-style detection model on ``backbone`` (a :class:`Network`, kept as ``backbone.body``);
        ``num_classes`` counts the background; a bad option is a ``ValueError`` naming it."""
        ...


class DetectorOptions(Protocol):
    options: Mapping[str, Any]  # detector_options it accepts → its default (netadapt config lists them)


@runtime_checkable
class ExportRule(Protocol):
    """Registered with ``register_export_rules`` under the name of the detector whose models it exports
    (``netadapt export``, :mod:`netadapt.export`): what the detector does after its head, for a runtime
    that has only the exported graph's outputs."""

    def postprocess_settings(self, model: nn.Module, probe: DetectorProbe) -> dict[str, Any]:
        """The numbers of ``model``'s post-processing, JSON-able: the export's metadata holds them as
        ``postprocess``. ``probe`` is what a forward pass shows of the model (output names, anchors per level)."""
        ...

    def postprocess(self, outputs: Mapping[str, torch.Tensor], info: Mapping[str, Any]) -> list[dict[str, torch.Tensor]]:
        """Per image ``{"boxes", "scores", "labels"}``, best first, boxes (x1, y1, x2, y2) in pixels of the
        ``input_size``² input, from the graph's outputs by name (batch first; ``anchors`` ``[A, 4]``) and the
        export's metadata; on PyTorch's own outputs, the detector's ``model(images)`` in eval mode."""
        ...


@runtime_checkable
class SearchSpace(Protocol):
    """Registered with ``register_search_spaces`` (``netadapt.search.space.SearchSpace`` is one)."""

    name: str
    depths: tuple[int, ...]  # layers per stage in the super network

    def is_searched(self, stage_index: int) -> bool:
        """Whether the stage (0-based) is searched."""
        ...

    def layer_candidates(self, stage_index: int, layer_index: int) -> tuple[Op, ...]:
        """The candidate ops of one searched layer (0-based)."""
        ...

    def fingerprint(self) -> str:
        """A short hash of the definition (cache keys)."""
        ...

    def check_against(self, base: Genotype, *, source: str) -> None:
        """Raise ``ConfigError`` when the space does not fit the base genotype."""
        ...


@runtime_checkable
class Strategy(Protocol):
    """Registered with ``register_strategies``: the op weights of the two steps of a search."""

    name: str

    def weight_step_weights(self, arch: OpWeights, *, temperature: float, generator: torch.Generator) -> list[torch.Tensor]:
        """One weight vector per searched layer, no gradient to α."""
        ...

    def alpha_step_weights(self, arch: OpWeights, *, temperature: float, generator: torch.Generator) -> list[torch.Tensor]:
        """One weight vector per searched layer, differentiable in α."""
        ...


class StrategyOptions(Protocol):
    uses_all_parameters: bool  # every candidate runs every step (DDP without find_unused_parameters); default False
    weight_steps_per_alpha_step: int  # default 1
    options: Mapping[str, Any]  # search.strategy_options it accepts → its default (netadapt config lists them)

    def for_config(self, config: Any) -> Strategy:
        """The strategy configured for one run's ``SearchConfig``."""
        ...


@runtime_checkable
class Dataset(Protocol):
    """Registered with ``register_datasets``."""

    name: str

    def splits(self, root: str | Path | None = None) -> dict[str, SplitFiles]:
        """COCO-format splits by name (``train``, ``val``); ``DataError`` when ``root`` holds none."""
        ...


# Registered with ``register_remap_rules(register)`` as ``register(module_type, rule)``.
RemapRule = Callable[["nn.Module", "nn.Module"], None]


class Ignore:
    """Register a module type with this rule to leave its tensors alone on purpose."""

    def __repr__(self) -> str:
        return "netadapt.remap.IGNORE"


IGNORE = Ignore()

_OPTIONAL = (BaseNetworkOptions, CostModelOptions, DetectorOptions, StrategyOptions)


def members(protocol: type) -> tuple[str, ...]:
    """The members a Protocol class declares: its annotated attributes and its methods."""
    methods = [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]
    return tuple(dict.fromkeys([*vars(protocol).get("__annotations__", {}), *methods]))


def missing_members(thing: object, protocol: type) -> list[str]:
    """The members of ``protocol`` that ``thing`` lacks (a method that is not callable counts as missing)."""
    methods = {name for name, value in vars(protocol).items() if callable(value)}
    return [
        name
        for name in members(protocol)
        if not hasattr(thing, name) or (name in methods and not callable(getattr(thing, name)))
    ]


_OPTIONAL_MEMBERS = frozenset(name for protocol in _OPTIONAL for name in members(protocol))


def optional(thing: object, member: str, default: T) -> T:
    """An optional member of a plugin object (declared in a ``*Options`` Protocol above), else ``default``."""
    if member not in _OPTIONAL_MEMBERS:
        raise AttributeError(f"{member!r} is no optional member of a netadapt plugin contract")
    return getattr(thing, member, default)


def check_network(network: nn.Module, *, needs: tuple[str, ...] = ("layer_paths", "part_paths")) -> None:
    """Raise one PluginError line naming what ``network`` (built by a base plugin) lacks of :class:`Network`."""
    missing = [name for name in needs if not hasattr(network, name)]
    if "part_paths" in needs and "part_paths" not in missing and "classifier" not in network.part_paths:
        missing.append("part_paths['classifier']")
    if missing:
        raise PluginError(
            f"network {type(network).__module__}.{type(network).__qualname__} built by a base network plugin has no "
            f"{', '.join(map(repr, missing))} (a required member of netadapt.contracts.Network; see {GUIDE})"
        )
