"""Architectures as data: genotypes of the MobileNet (inverted-residual) family (DESIGN §1.1).

A genotype is a list of stages, each written as the paper writes it::

    [[c_in, c_out], [op, op, ...], stride]

The first op of a stage changes the channels and applies the stride; the others keep both and
carry a residual connection. Op strings follow the grammar documented in :func:`parse_op`.

A genotype file is YAML with the stage list under ``stages:`` and optional metadata
(``base:``, ``input_size:``, ``width_mult:``, ``head_channels:``); a file whose top level is the
bare stage list is accepted too. A file without ``base:`` is built by :data:`DEFAULT_BASE`
(MobileNetV2, the paper's family), with a warning line that says so. :func:`load_genotype` validates everything before any network
is built, and every problem is one :class:`~netadapt.errors.GenotypeError` line naming the file
and the stage/op position.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from netadapt.errors import GenotypeError, NetadaptWarning
from netadapt.yamlio import safe_load

# Bounds that keep a typo (a channel count of 10^9) from allocating anything.
MAX_CHANNELS = 8192
MAX_KERNEL = 15
MAX_EXPANSION = 16
MAX_LAYERS_PER_STAGE = 64
MAX_STAGES = 32
MAX_INPUT_SIZE = 4096
ALLOWED_STRIDES = (1, 2)
DEFAULT_BASE = "mobilenetv2"  # the base network of a genotype that names none

# The fields of a genotype file, with the core's checks (``netadapt config --section genotype``, docs/config.md);
# defaults are the Genotype dataclass's.
FIELDS = {
    "base": "the registered base network that builds it (netadapt plugins --all); a file without it is built by "
    f"{DEFAULT_BASE}, with a warning",
    "input_size": f"the input side its cost is counted at (netadapt cost, show), in 1..{MAX_INPUT_SIZE}; runs take theirs from the config",
    "width_mult": "width multiplier, in (0, 4]: channels in stages are nominal (width 1) and the base builds "
    "scaled_channels(c, width_mult) = c · width_mult rounded to a multiple of 8, never below 90 % (MobileNetV2's rule); "
    "a base without widths refuses anything but 1",
    "head_channels": f"nominal output channels of the head (the 1×1 conv after the stages), in 1..{MAX_CHANNELS}; scaled as "
    "the stages' (mobilenetv2, as torchvision's, never narrows it: width max(1, width_mult))",
    "stages": "the list of stages, each [[c_in, c_out], [op, ...], stride] (ops: netadapt.genotype.parse_op's grammar): "
    f"c_in and c_out nominal, in 1..{MAX_CHANNELS}, each c_in the previous c_out (the first is the stem's output, "
    f"Genotype.stem_channels); stride 1 or 2; 1..{MAX_LAYERS_PER_STAGE} ops, the first changing channels and applying "
    f"the stride, never skip; at most {MAX_STAGES} stages. Stages are numbered from 1 in messages and tables",
    "(any other key)": "kept as the genotype's own metadata (Genotype.extra) and written back; a search writes "
    "search_space (the space's name) and super_depths (the super network's depths)",
}

_OP_PATTERN = re.compile(r"k(?P<kernel>\d+)_e(?P<expansion>\d+(?:\.\d{1,2})?)(?P<se>_se)?(?P<hs>_hs)?")


@dataclass(frozen=True)
class Op:
    """One layer's operation: an MBConv block or ``skip`` (see :func:`parse_op` for the fields)."""

    kernel: int | None = None
    expansion: int | float | None = None  # an int when whole (6), a float otherwise (2.5)
    se: bool = False  # squeeze-and-excitation after the depthwise conv
    hswish: bool = False  # Hardswish activations instead of the base's default

    @property
    def is_skip(self) -> bool:
        return self.kernel is None

    @property
    def name(self) -> str:
        if self.is_skip:
            return "skip"
        return f"k{self.kernel}_e{self.expansion:g}" + ("_se" if self.se else "") + ("_hs" if self.hswish else "")

    def __str__(self) -> str:
        return self.name


SKIP = Op()


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never below 90% of ``value`` (MobileNetV2's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def scaled_channels(nominal: int, width_mult: float) -> int:
    """The channels a base builds for a genotype's ``nominal`` channels at ``width_mult``: the one rule for every
    base that supports widths (torchvision's MobileNets: ``_make_divisible(c * width_mult, 8)``); at width 1 a
    multiple of 8 is itself. Genotype channels are always nominal; cost reports show the built (actual) ones."""
    return make_divisible(nominal * width_mult)


def parse_op(text: object) -> Op:
    """Decode one op string.

    Grammar::

        op        := "skip" | "k" KERNEL "_e" EXPANSION [ "_se" ] [ "_hs" ]
        KERNEL    := odd integer, 1 <= KERNEL <= 15     (depthwise kernel size)
        EXPANSION := number with at most two decimals, 0 < EXPANSION <= 16
                     (the block's width ratio; what it multiplies is the base network's: an
                     MBConv's hidden width = EXPANSION * c_in, rounded to channels; a ResNet
                     block's inner width is relative to the plain block's, so below 1 is narrower)
        "_se"     := squeeze-and-excitation on the hidden features after the depthwise conv
        "_hs"     := Hardswish activations in the block instead of the base's default

    Examples: ``k3_e6`` (MobileNetV2's block), ``k5_e3``, ``k3_e1`` (no expansion conv), ``skip``
    (identity); MobileNetV3's blocks ``k5_e3_se``, ``k3_e2.5_hs`` (80 → 200 hidden channels),
    ``k5_e6_se_hs``. The suffixes, when both present, come in this order. ``e6.0`` reads as
    ``e6``: :attr:`Op.name` writes an expansion in its shortest form.
    A base network builds the features its family has and refuses the others
    (MobileNetV2: no ``_se``, no ``_hs``, whole expansions only). Raises ``ValueError`` with the
    reason; callers add the position.
    """
    if not isinstance(text, str):
        raise ValueError(f"op must be a string such as 'k3_e6' or 'skip', got {text!r}")
    if text == "skip":
        return SKIP
    match = _OP_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"unknown op {text!r} (expected 'skip' or 'k<kernel>_e<expansion>[_se][_hs]', e.g. 'k5_e6')")
    kernel, expansion = int(match["kernel"]), float(match["expansion"])
    if kernel % 2 == 0 or not 1 <= kernel <= MAX_KERNEL:
        raise ValueError(f"unknown op {text!r}: kernel must be odd and in 1..{MAX_KERNEL}")
    if not 0 < expansion <= MAX_EXPANSION:
        raise ValueError(f"unknown op {text!r}: expansion must be in (0, {MAX_EXPANSION}]")
    return Op(
        kernel=kernel,
        expansion=int(expansion) if expansion.is_integer() else expansion,
        se=match["se"] is not None,
        hswish=match["hs"] is not None,
    )


@dataclass(frozen=True)
class Stage:
    """A stage of blocks: ``ops[0]`` maps ``c_in`` to ``c_out`` with ``stride``; the rest keep shape."""

    c_in: int
    c_out: int
    ops: tuple[Op, ...]
    stride: int

    @property
    def depth(self) -> int:
        """Number of layers that are not ``skip``."""
        return sum(not op.is_skip for op in self.ops)

    def to_list(self) -> list[Any]:
        return [[self.c_in, self.c_out], [op.name for op in self.ops], self.stride]


@dataclass(frozen=True)
class Genotype:
    """A whole architecture of the MobileNet family (stem → stages → 1×1 head conv); ``base`` names
    the base network that builds it (:data:`DEFAULT_BASE` when a file names none)."""

    stages: tuple[Stage, ...]
    base: str = DEFAULT_BASE
    input_size: int = 224
    width_mult: float = 1.0
    head_channels: int = 1280
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # further metadata, this genotype's own

    def __post_init__(self) -> None:
        # A copy: a genotype made from another (``with_ops``, ``dataclasses.replace``) or from a
        # caller's dict never shares the dict, so adding metadata to one changes no other genotype.
        object.__setattr__(self, "extra", dict(self.extra))

    @property
    def stem_channels(self) -> int:
        return self.stages[0].c_in

    def layers(self) -> list[tuple[int, int, Op]]:
        """``(stage_index, layer_index, op)`` for every layer, 0-based, in order."""
        return [(s, i, op) for s, stage in enumerate(self.stages) for i, op in enumerate(stage.ops)]

    def with_ops(self, ops_per_stage: list[list[Op]]) -> Genotype:
        """The same genotype with other ops (and so possibly other depths) per stage."""
        stages = tuple(replace(stage, ops=tuple(ops)) for stage, ops in zip(self.stages, ops_per_stage, strict=True))
        genotype = replace(self, stages=stages)
        validate(genotype)
        return genotype

    def at_input_size(self, input_size: int) -> Genotype:
        """The same architecture recorded at the input size of the run that trains or searches it (the run's config
        section owns the size; the genotype only records it for ``cost`` and ``show``)."""
        return replace(self, input_size=input_size)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, int, float, lists): YAML- and ``torch.load(weights_only=True)``-safe."""
        data: dict[str, Any] = {
            "base": self.base,
            "input_size": self.input_size,
            "width_mult": self.width_mult,
            "head_channels": self.head_channels,
        }
        data.update(self.extra)
        data["stages"] = [stage.to_list() for stage in self.stages]
        return data

    def to_yaml(self) -> str:
        """YAML with the stage list in the paper's one-line-per-stage form."""
        meta = {key: value for key, value in self.to_dict().items() if key != "stages"}
        # One line per field; lists (e.g. super_depths) in flow style, like the stages below.
        lines = [
            f"{key}: {yaml.safe_dump(value, default_flow_style=True).strip()}"
            if isinstance(value, list)
            else yaml.safe_dump({key: value}, default_flow_style=False).strip()
            for key, value in meta.items()
        ]
        lines.append("stages:")
        for stage in self.stages:
            ops = ", ".join(op.name for op in stage.ops)
            lines.append(f"  - [[{stage.c_in}, {stage.c_out}], [{ops}], {stage.stride}]")
        return "\n".join(lines) + "\n"


def genotype_from_data(data: object, *, source: str = "<genotype>") -> Genotype:
    """Decode plain data (a mapping with ``stages``, or the bare stage list) into a validated Genotype.

    ``source`` names the file in error messages.
    """
    if isinstance(data, list):
        data = {"stages": data}
    if not isinstance(data, dict):
        raise GenotypeError(f"{source}: expected a mapping with 'stages' or a list of stages, got {type(data).__name__}")
    if "stages" not in data:
        raise GenotypeError(f"{source}: missing 'stages' (a list of [[c_in, c_out], [ops], stride])")
    raw_stages = data["stages"]
    if not isinstance(raw_stages, list) or not raw_stages:
        raise GenotypeError(f"{source}: 'stages' must be a non-empty list of [[c_in, c_out], [ops], stride]")
    if len(raw_stages) > MAX_STAGES:  # before decoding anything
        raise GenotypeError(f"{source}: {len(raw_stages)} stages is more than the {MAX_STAGES} allowed")
    stages = tuple(_stage_from_data(raw, source=source, number=n) for n, raw in enumerate(raw_stages, start=1))
    meta = {key: value for key, value in data.items() if key != "stages"}
    known = {"base", "input_size", "width_mult", "head_channels"}
    genotype = Genotype(
        stages=stages,
        base=_field(meta, "base", str, DEFAULT_BASE, source),
        input_size=_field(meta, "input_size", int, 224, source),
        width_mult=float(_field(meta, "width_mult", (int, float), 1.0, source)),
        head_channels=_field(meta, "head_channels", int, 1280, source),
        extra={key: value for key, value in meta.items() if key not in known},
    )
    validate(genotype, source=source)
    return genotype


def validate(genotype: Genotype, *, source: str = "<genotype>") -> None:
    """Check every value rule (sizes, strides, ops, channels chaining). Raises GenotypeError."""
    if not genotype.stages:
        raise GenotypeError(f"{source}: 'stages' must be a non-empty list of [[c_in, c_out], [ops], stride]")
    if len(genotype.stages) > MAX_STAGES:
        raise GenotypeError(f"{source}: {len(genotype.stages)} stages is more than the {MAX_STAGES} allowed")
    previous_out = None
    for number, stage in enumerate(genotype.stages, start=1):
        where = f"{source}: stage {number}"
        for name, value in (("c_in", stage.c_in), ("c_out", stage.c_out)):
            if not 1 <= value <= MAX_CHANNELS:
                raise GenotypeError(f"{where}: {name} {value} is not in 1..{MAX_CHANNELS}")
        if stage.stride not in ALLOWED_STRIDES:
            raise GenotypeError(f"{where}: stride must be 1 or 2, got {stage.stride!r}")
        if not 1 <= len(stage.ops) <= MAX_LAYERS_PER_STAGE:
            raise GenotypeError(f"{where}: a stage needs 1..{MAX_LAYERS_PER_STAGE} ops, got {len(stage.ops)}")
        for position, op in enumerate(stage.ops, start=1):
            try:
                parse_op(op.name)
            except ValueError as error:
                raise GenotypeError(f"{where}, op {position}: {error}") from None
        if stage.ops[0].is_skip:
            raise GenotypeError(f"{where}, op 1: 'skip' cannot be a stage's first op (it changes channels or stride)")
        if previous_out is not None and stage.c_in != previous_out:
            raise GenotypeError(f"{where}: c_in {stage.c_in} does not match the previous stage's c_out {previous_out}")
        previous_out = stage.c_out
    if not 1 <= genotype.input_size <= MAX_INPUT_SIZE:
        raise GenotypeError(f"{source}: input_size {genotype.input_size} is not in 1..{MAX_INPUT_SIZE}")
    if not 0 < genotype.width_mult <= 4 or not math.isfinite(genotype.width_mult):
        raise GenotypeError(f"{source}: width_mult {genotype.width_mult} is not in (0, 4]")
    if not 1 <= genotype.head_channels <= MAX_CHANNELS:
        raise GenotypeError(f"{source}: head_channels {genotype.head_channels} is not in 1..{MAX_CHANNELS}")


def load_genotype(path: str | Path) -> Genotype:
    """Read and validate a genotype YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise GenotypeError(f"{path}: cannot read genotype file: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise GenotypeError(f"{path}: not UTF-8 text (bad byte at offset {error.start})") from None
    try:
        data = safe_load(text)
    except RecursionError:
        raise GenotypeError(f"{path}: YAML nested too deeply for a genotype") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise GenotypeError(f"{path}: malformed YAML{position}: {problem}") from None
    genotype = genotype_from_data(data, source=str(path))
    if not isinstance(data, dict) or "base" not in data:
        warnings.warn(f"{path}: names no base network; built by {DEFAULT_BASE} (write 'base: {DEFAULT_BASE}' to say so)", NetadaptWarning, stacklevel=2)
    return genotype


def save_genotype(genotype: Genotype, path: str | Path) -> None:
    """Write a genotype as YAML atomically."""
    from netadapt.files import write_text_atomic

    write_text_atomic(path, genotype.to_yaml())


def _stage_from_data(raw: object, *, source: str, number: int) -> Stage:
    """Decode one stage's structure and types; :func:`validate` checks the values."""
    where = f"{source}: stage {number}"
    if not isinstance(raw, list) or len(raw) != 3:
        raise GenotypeError(f"{where}: expected [[c_in, c_out], [ops], stride], got {raw!r}")
    channels, raw_ops, stride = raw
    if not (isinstance(channels, list) and len(channels) == 2 and all(_is_int(c) for c in channels)):
        raise GenotypeError(f"{where}: channels must be [c_in, c_out] integers, got {channels!r}")
    if not _is_int(stride):
        raise GenotypeError(f"{where}: stride must be 1 or 2, got {stride!r}")
    if not isinstance(raw_ops, list) or not raw_ops:
        raise GenotypeError(f"{where}: ops must be a non-empty list such as [k3_e6, k5_e3], got {raw_ops!r}")
    if len(raw_ops) > MAX_LAYERS_PER_STAGE:
        raise GenotypeError(f"{where}: {len(raw_ops)} ops is more than the {MAX_LAYERS_PER_STAGE} allowed")
    ops = []
    for position, text in enumerate(raw_ops, start=1):
        try:
            ops.append(parse_op(text))
        except ValueError as error:
            raise GenotypeError(f"{where}, op {position}: {error}") from None
    return Stage(c_in=channels[0], c_out=channels[1], ops=tuple(ops), stride=stride)


def _field(meta: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, source: str) -> Any:
    value = meta.get(key, default)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise GenotypeError(f"{source}: field '{key}' has the wrong type: {value!r}")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
