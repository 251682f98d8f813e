"""Run configuration: YAML sections read into typed dataclasses, with command-line overrides.

A config file has one section per job (``train:``, later ``search:``); every key must be a field
of the section's dataclass, with the field's type, or loading fails with one line naming the
file and the field. ``--set section.field=value`` overrides a value (parsed as YAML).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from netadapt.errors import ConfigError, NetadaptWarning
from netadapt.units import parse_target
from netadapt.yamlio import safe_load

C = TypeVar("C")

def setting(default: Any, doc: str, *, unit: str = "", plugin: str = "") -> Any:
    """A config field and its reference entry (``netadapt config``, docs/config.md): what it does, its unit, and
    ``plugin``, the kind of plugin that reads the mapping's keys (detector options, strategy options, ...)."""
    metadata = {"doc": doc, "unit": unit, "plugin": plugin}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# MobileNet-family networks reduce their input 32-fold: a smaller input vanishes below one pixel.
MIN_INPUT_SIZE = 32
SECTIONS = ("train", "search", "remap", "select")  # the sections of a run config


def check_input_size(value: int, where: str) -> None:
    if value < MIN_INPUT_SIZE:
        raise ConfigError(f"{where} must be at least {MIN_INPUT_SIZE} pixels (the network reduces it 32-fold), got {value}")


AMP_MODES = ("auto", "off", "bf16", "fp16")  # netadapt.engine.precision


OPTIMIZERS = ("rmsprop", "sgd", "adamw")
LR_SCHEDULES = ("cosine", "step")
# The optimiser and its schedule, one section in train: and search: (the search's: the weights' optimiser; α has its own
# Adam, alpha_*). Field → (type, what it does, unit); each section gives its defaults (optimiser_section).
OPTIMISER_FIELDS: dict[str, tuple[str, str, str]] = {
    "optimizer": ("str", "adamw (fast on short runs), rmsprop (FNA's, §1.3: rmsprop_eps 1.0, momentum 0.9, weight_decay 4e-5; "
                  "examples/configs/coco_*.yaml) or sgd", ""),
    "lr": ("float", "peak learning rate, after the warm-up", ""),
    "momentum": ("float", "momentum of sgd and rmsprop", ""),
    "weight_decay": ("float", "L2 weight decay (decoupled for adamw)", ""),
    "rmsprop_eps": ("float", "rmsprop's epsilon (TensorFlow's RMSProp as FNA uses it: 1.0)", ""),
    "warmup_iterations": ("int", "linear warm-up from lr · warmup_factor to lr over these first iterations", "iterations"),
    "warmup_factor": ("float", "the warm-up's starting fraction of lr", ""),
    "lr_schedule": ("str", "cosine (to 0 at the last iteration) or step (× lr_gamma at each epoch of lr_milestones)", ""),
    "lr_milestones": ("list[int]", "epochs (1-based) from whose first iteration lr is multiplied by lr_gamma (lr_schedule: step)", "epochs"),
    "lr_gamma": ("float", "the step schedule's factor at each milestone", ""),
    "grad_clip": ("float", "max gradient norm; 0 disables clipping", ""),
}


def optimiser_section(**defaults: Any):
    """Class decorator, under ``@dataclass``: the section gets :data:`OPTIMISER_FIELDS`, declared once here, with its own
    defaults (every field must have one), after the fields its class body declares."""
    if set(defaults) != set(OPTIMISER_FIELDS):
        raise TypeError(f"optimiser_section needs a default for each of {', '.join(OPTIMISER_FIELDS)}")

    def add_fields(cls: type) -> type:
        annotations = cls.__dict__.get("__annotations__")  # the class's own (a dict of strings, PEP 563)
        if annotations is None:
            raise TypeError(f"{cls.__name__}: optimiser_section needs a class with annotated fields")
        for name, (kind, doc, unit) in OPTIMISER_FIELDS.items():
            annotations[name] = kind  # a string, as under `from __future__ import annotations`
            setattr(cls, name, setting(defaults[name], doc, unit=unit))
        return cls

    return add_fields


def check_optimiser(config: Any, where: str) -> None:
    """The shared section's choices and signs (check_common checks its numbers)."""
    for name, allowed in {"optimizer": OPTIMIZERS, "lr_schedule": LR_SCHEDULES}.items():
        if getattr(config, name) not in allowed:
            raise ConfigError(f"{where}.{name} must be one of {', '.join(allowed)}, got {getattr(config, name)!r}")
    if config.warmup_iterations < 0:
        raise ConfigError(f"{where}.warmup_iterations must not be negative, got {config.warmup_iterations}")


def check_common(config: Any, source: str, section: str) -> None:
    """Checks shared by train: and search: (numbers that train to NaN or crash torch's optimisers)."""
    where = f"{source}: {section}"
    check_optimiser(config, where)
    if config.amp not in AMP_MODES:
        raise ConfigError(f"{where}.amp must be one of {', '.join(AMP_MODES)}, got {config.amp!r}")
    if config.workers != "auto" and (not isinstance(config.workers, int) or config.workers < 0):
        raise ConfigError(f"{where}.workers must be a number ≥ 0 or auto, got {config.workers!r}")
    if config.prefetch_factor < 1:
        raise ConfigError(f"{where}.prefetch_factor must be at least 1, got {config.prefetch_factor}")
    check_input_size(config.input_size, f"{where}.input_size")
    if config.batch_size < 2:
        raise ConfigError(f"{where}.batch_size must be at least 2 (BatchNorm cannot train on one image), got {config.batch_size}")
    for name in ("lr", "momentum", "weight_decay", "rmsprop_eps", "warmup_factor", "lr_gamma", "grad_clip"):
        value = getattr(config, name)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{where}.{name} must be a finite number ≥ 0, got {value}")
    if not 0 <= config.seed < 2**63:
        raise ConfigError(f"{where}.seed must lie in [0, 2**63), got {config.seed}")


@dataclasses.dataclass
@optimiser_section(optimizer="adamw", lr=0.002, momentum=0.9, weight_decay=1e-4, rmsprop_eps=1.0, warmup_iterations=100,
                   warmup_factor=0.1, lr_schedule="cosine", lr_milestones=[], lr_gamma=0.1, grad_clip=0.0)
class TrainConfig:
    """Detector training (``netadapt train``); defaults suit the embedded demo on 2 CPU cores."""

    input_size: int = setting(320, "side of the square images the detector trains and evaluates on", unit="pixels")
    detector_options: dict[str, Any] = setting(
        {}, "build options of the detector plugin, e.g. {score_thresh: 0.01} (ssdlite: anchors); the plugin checks them",
        plugin="detector",
    )
    batch_size: int = setting(16, "images per iteration (over all processes)", unit="images")
    epochs: int = setting(10, "passes over the training set", unit="epochs")
    seed: int = setting(0, "seed of weights, data order and augmentation")
    workers: int | str = setting("auto", "DataLoader processes per training process; auto: from the cores (netadapt.engine.throughput)", unit="processes")
    checkpoint_every: int = setting(50, "iterations between checkpoints (last.pth, for --resume)", unit="iterations")
    log_every: int = setting(10, "iterations between log records (log.jsonl)", unit="iterations")
    eval_batch_size: int = setting(16, "images per batch of the evaluation after training", unit="images")
    amp: str = setting("auto", "mixed precision: auto (bf16 on a CUDA device that has it, else off), off, bf16, fp16 (netadapt.engine.precision)")
    eval_amp: str | None = setting(None, "the evaluation's mixed precision; null: as amp")
    channels_last: bool = setting(False, "channels-last memory format (faster convolutions on tensor-core GPUs)")
    prefetch_factor: int = setting(2, "batches each loader worker prepares ahead", unit="batches")
    bn_reestimate: str = setting(
        "auto", "re-estimate BatchNorm statistics on training images after the last iteration (netadapt.engine.batchnorm): "
        "auto (when the base asks for it or a BatchNorm's momentum is too small for the run), on, off",
    )
    bn_reestimate_images: int = setting(256, "training images the re-estimation reads", unit="images")

    def validate(self, source: str) -> None:
        positive = ("input_size", "batch_size", "epochs", "lr", "checkpoint_every", "log_every", "eval_batch_size", "bn_reestimate_images")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{source}: train.{name} must be positive, got {getattr(self, name)}")
        choices = {"bn_reestimate": ("auto", "on", "off")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{source}: train.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.eval_amp is not None and self.eval_amp not in AMP_MODES:
            raise ConfigError(f"{source}: train.eval_amp must be one of {', '.join(AMP_MODES)} (or null: as train.amp), got {self.eval_amp!r}")
        if not isinstance(self.detector_options, dict):
            raise ConfigError(f"{source}: train.detector_options must be a mapping, got {self.detector_options!r}")
        check_common(self, source, "train")


REMAP_MODES = ("fna", "preserve")  # remap.mode: the paper's rules, or netadapt.remap.preserve's


@dataclasses.dataclass
class RemapConfig:
    """How base weights move into another architecture wherever a job remaps them (``train``, ``select``, ``adapt``)."""

    mode: str = setting(
        "fna", "fna: the paper's rules (Section 2.1: an inserted layer copies its stage's last layer, a narrower one takes the "
        "first channels); preserve: inserted layers start as the identity, narrower ones keep their most important channels "
        "(netadapt.remap.preserve)",
    )

    def validate(self, source: str) -> None:
        if self.mode not in REMAP_MODES:
            raise ConfigError(f"{source}: remap.mode must be one of {', '.join(REMAP_MODES)}, got {self.mode!r}")


@dataclasses.dataclass
class SelectConfig:
    """The selection stage (``netadapt select``, DESIGN §1.6): a pool of candidates under the target, scored by
    remapping (``netadapt.select.score``) and narrowed by successive halving of short trainings on held-out training
    images. The trainings use the ``train:`` section with the rung's epochs."""

    target: str | float | None = setting(
        None, "budget of the searched layers, as search.target (84M, 0.7x of the base's); null: the search's target", unit="cost model's unit"
    )
    held_out_fraction: float = setting(0.25, "share of the training images held out to score the rungs (never the val split)")
    seed: int = setting(0, "the held-out split, the score's images and the rungs' training seed")
    score_bn_images: int = setting(64, "training images that re-estimate BatchNorm for the remap-aware score", unit="images")
    score_images: int = setting(32, "held-out images on which the remap-aware score compares the detector taps", unit="images")
    change_penalties: list[float] = setting(
        [0.0, 0.01, 0.05], "one scored candidate per value: the constrained choice on the remap-aware score minus this much per changed layer",
        unit="distortion",
    )
    alpha_weight: float = setting(0.01, "weight of log softmax(α) added to the score in the candidates with α (with a search)")
    rung_epochs: list[int] = setting([3, 9], "epochs of each rung's trainings (successive halving: one rung per value)", unit="epochs")
    keep_fraction: float = setting(0.33, "share of a rung's candidates kept for the next rung (rounded up: 0.33 keeps 2 of 4 or 6, 3 of 9)")
    noise: float = setting(
        1.0, "held-out mAP within which two candidates tie; of tied candidates the one changing fewer layers ranks first", unit="mAP points"
    )
    random_pool: int = setting(
        0, "N > 0: the pool is N architectures drawn uniformly under the target instead (Li & Talwalkar's control: random search "
        "through the same successive halving); 0: baselines, the search's network and the score's choices",
    )

    def validate(self, source: str) -> None:
        if not 0 < self.held_out_fraction < 1:
            raise ConfigError(f"{source}: select.held_out_fraction must lie in (0, 1), got {self.held_out_fraction}")
        if not 0 < self.keep_fraction <= 1:
            raise ConfigError(f"{source}: select.keep_fraction must lie in (0, 1], got {self.keep_fraction}")
        if not self.rung_epochs or any(epochs <= 0 for epochs in self.rung_epochs):
            raise ConfigError(f"{source}: select.rung_epochs must be a non-empty list of positive numbers, got {self.rung_epochs}")
        for name in ("score_bn_images", "score_images"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{source}: select.{name} must be positive, got {getattr(self, name)}")
        if self.noise < 0 or self.alpha_weight < 0 or self.random_pool < 0 or any(p < 0 for p in self.change_penalties):
            raise ConfigError(f"{source}: select.noise, alpha_weight, random_pool and change_penalties must not be negative")
        if self.target is not None:
            parse_target(self.target, where=f"{source}: select.target")


PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"  # netadapt/configs/


def default_config_file(*, demo: bool) -> Path | None:
    """The config used without ``--config``: the embedded demo's on demo data, else none (paper defaults)."""
    return PACKAGED_CONFIGS / "demo.yaml" if demo else None


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """The raw sections of a YAML config file (``{}`` without a file)."""
    if path is None:
        return {}
    path = Path(path)
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {error.start})") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply for a config file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file is a mapping of sections (train:, search:), got {type(data).__name__}")
    for section, values in data.items():
        if values is not None and not isinstance(values, Mapping):
            raise ConfigError(f"{path}: section '{section}' must be a mapping of fields, got {type(values).__name__}")
    return data


def apply_overrides(sections: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``section.field=value`` strings (values parsed as YAML) to a copy of ``sections``."""
    result = {name: dict(values or {}) for name, values in sections.items()}
    for override in overrides:
        key, sep, value = override.partition("=")
        section, dot, field = key.strip().partition(".")
        if not sep or not dot or not field:
            raise ConfigError(f"--set {override!r}: expected section.field=value, e.g. train.lr=0.01")
        if section not in SECTIONS:
            raise ConfigError(f"--set {override!r}: unknown section '{section}' (known: {', '.join(SECTIONS)})")
        try:
            result.setdefault(section, {})[field] = safe_load(value)
        except (yaml.YAMLError, RecursionError):
            raise ConfigError(f"--set {override!r}: the value is not valid YAML") from None
    return result


def section_config(kind: type[C], sections: Mapping[str, Any], section: str, *, source: str) -> C:
    """Build the dataclass ``kind`` from one section, checking names and types."""
    values = sections.get(section) or {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: section '{section}' must be a mapping")
    values = _moved_to_plugin_options(values, section, source)
    fields = {field.name: field for field in dataclasses.fields(kind)}
    hints = typing.get_type_hints(kind)
    checked = {}
    for name, value in values.items():
        if name not in fields:
            raise ConfigError(f"{source}: unknown field '{section}.{name}' (known: {', '.join(fields)})")
        checked[name] = _coerce(value, hints[name], f"{source}: field '{section}.{name}'")
    config = kind(**checked)
    if hasattr(config, "validate"):
        config.validate(source)
    return config


# Plugin settings that were core fields: accepted for one version, moved into the plugin's own options mapping.
MOVED_TO_PLUGIN_OPTIONS = {  # section: {old field: (its plugin's mapping, key there)}
    "train": {"anchors": ("detector_options", "anchors")},
    "search": {"anchors": ("detector_options", "anchors"), "sample_k": ("strategy_options", "k")},
}


def _moved_to_plugin_options(values: Mapping[str, Any], section: str, source: str) -> dict[str, Any]:
    """``train.anchors`` / ``search.anchors`` (SSDLite's) and ``search.sample_k`` (the sampled strategy's), deprecated:
    moved into ``detector_options`` / ``strategy_options`` with a warning naming the new key."""
    values = dict(values)
    for old, (mapping, key) in MOVED_TO_PLUGIN_OPTIONS.get(section, {}).items():
        if old not in values:
            continue
        value = values.pop(old)
        options = values.get(mapping) or {}
        if not isinstance(options, Mapping):
            raise ConfigError(f"{source}: {section}.{mapping} must be a mapping, got {options!r}")
        if key in options:
            raise ConfigError(f"{source}: {section}.{old} and {section}.{mapping}.{key} both given; keep {section}.{mapping}.{key}")
        values[mapping] = {**options, key: value}
        warnings.warn(
            f"{source}: {section}.{old} is deprecated and will be refused in the next version; write {section}.{mapping}: {{{key}: {value}}}",
            NetadaptWarning, stacklevel=4,
        )
    return values


_YAML11_EXPONENT = re.compile(r"^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where} has the wrong type: {value!r}")
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_coerce(v, item, where) for v in value]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _YAML11_EXPONENT.match(value):
        return float(value)  # YAML 1.1 reads 1e-5 and 1e+30 (no dot) as strings; they are numbers to a user
    if hint in (int, float, str, bool) and (not isinstance(value, hint) or (hint is not bool and isinstance(value, bool))):
        raise ConfigError(f"{where} must be {hint.__name__}, got {value!r}")
    return value


@dataclasses.dataclass
@optimiser_section(optimizer="rmsprop", lr=0.03, momentum=0.9, weight_decay=4e-5, rmsprop_eps=1.0, warmup_iterations=500,
                   warmup_factor=0.0, lr_schedule="step", lr_milestones=[22], lr_gamma=0.1, grad_clip=0.0)
class SearchConfig:
    """Network adaptation (``netadapt search``, DESIGN §1.3); defaults are the paper's COCO schedule.

    ``examples/configs/demo.yaml`` scales it down for the embedded demo on 2 CPU cores.
    """

    space: str | None = setting(None, "a registered search space (netadapt spaces) or a space YAML file; null: the base's default (fna)")
    strategy: str = setting("darts", "the search strategy: darts (every candidate, softmax weights), sampled, fna, or a plugin's")
    strategy_options: dict[str, Any] = setting(
        {}, "the strategy's own settings (fna: {weight_steps_per_alpha_step: 5}; sampled: {k: 2}); the strategy checks them",
        plugin="strategy",
    )
    cost_model: str = setting("madds", "the cost model of the cost term: madds, params, or a plugin's (latency)")
    cost_table: str | None = setting(None, "a cost table measured elsewhere (e.g. on the target phone), read instead of measuring", unit="file")
    cost_options: dict[str, Any] = setting({}, "the cost model's own settings (e.g. a timing model's threads); the model checks them", plugin="cost model")
    input_size: int = setting(320, "side of the square images of the search", unit="pixels")
    detector_options: dict[str, Any] = setting({}, "build options of the detector plugin, as train.detector_options", plugin="detector")
    batch_size: int = setting(32, "images per step (over all processes)", unit="images")
    epochs: int = setting(24, "passes over the weight half of the training set", unit="epochs")
    alpha_start_epoch: int = setting(20, "α updates from this epoch on (1-based: 1 is the first epoch)", unit="epochs")
    repeat: int = setting(1, "passes over the weight half per epoch (FNA's code: RepeatDataset times=5)")
    alpha_fraction: float = setting(0.5, "share of the training set for α steps (the rest: weight steps), in (0, 1)")
    split_seed: int = setting(0, "seed of the split into the weight and α halves")
    alpha_lr: float = setting(3e-4, "α's Adam learning rate (FNA's code: 3e-4)")
    alpha_betas: list[float] = setting([0.5, 0.999], "α's Adam betas")
    alpha_weight_decay: float = setting(1e-3, "α's weight decay")
    alpha_temperature: float = setting(1.0, "softmax temperature of α")
    alpha_temperature_end: float | None = setting(None, "annealed geometrically from alpha_temperature to this over the α updates; null: constant")
    alpha_grad_clip: float = setting(0.0, "max norm of α's gradient (FNA's code: 35); 0 disables clipping")
    base_prior: float = setting(
        0.0, "α starts at the base network: softmax(α) gives each searched layer's base op (skip beyond the base's depth) this "
        "probability, the others share the rest; 0: FNA's 1e-3 · randn, uniform (netadapt.search.prior)",
    )
    cost_lambda: float = setting(0.2, "λ of the cost term λ · log_τ(cost) of the α loss (Eq. 3)")
    cost_log_base: float = setting(10.0, "τ of the cost term (Eq. 3), > 1")
    target: str | float | None = setting(
        None, "a hard budget for the searched layers in the cost model's unit (250M, 0.25B, 30000000; ms for latency) or "
        "relative to the base's (0.7x): α steps steer the expected cost to it and the derive never exceeds it "
        "(netadapt.search.budget); null: the soft term alone", unit="cost model's",
    )
    target_weight: float = setting(1.0, "weight of the budget term target_weight · |ln(C / target)|")
    seed: int = setting(0, "seed of weights, α and data order")
    workers: int | str = setting("auto", "as train.workers", unit="processes")
    checkpoint_every: int = setting(100, "iterations between checkpoints (last.pth, for --resume)", unit="iterations")
    log_every: int = setting(10, "iterations between log records", unit="iterations")
    amp: str = setting("auto", "as train.amp; α's softmax and the cost term stay float32")
    channels_last: bool = setting(False, "as train.channels_last")
    prefetch_factor: int = setting(2, "as train.prefetch_factor", unit="batches")

    def validate(self, source: str) -> None:
        for name in ("input_size", "batch_size", "epochs", "lr", "alpha_lr", "alpha_temperature", "checkpoint_every", "log_every", "repeat"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{source}: search.{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.alpha_fraction < 1:
            raise ConfigError(f"{source}: search.alpha_fraction must lie in (0, 1), got {self.alpha_fraction}")
        if self.cost_lambda < 0 or self.cost_log_base <= 1:
            raise ConfigError(f"{source}: search.cost_lambda must be ≥ 0 and search.cost_log_base > 1")
        if not 1 <= self.alpha_start_epoch:
            raise ConfigError(f"{source}: search.alpha_start_epoch must be ≥ 1 (1-based), got {self.alpha_start_epoch}")
        if len(self.alpha_betas) != 2 or not all(0 <= beta < 1 for beta in self.alpha_betas):
            raise ConfigError(f"{source}: search.alpha_betas must be two numbers in [0, 1), got {self.alpha_betas}")
        for name in ("alpha_lr", "alpha_weight_decay", "alpha_temperature", "cost_lambda", "cost_log_base"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ConfigError(f"{source}: search.{name} must be a finite number ≥ 0, got {getattr(self, name)}")
        if not 0 <= self.split_seed < 2**63:
            raise ConfigError(f"{source}: search.split_seed must lie in [0, 2**63), got {self.split_seed}")
        check_common(self, source, "search")
        if not isinstance(self.detector_options, dict):
            raise ConfigError(f"{source}: search.detector_options must be a mapping, got {self.detector_options!r}")
        if self.cost_table is not None and not isinstance(self.cost_table, str):
            raise ConfigError(f"{source}: search.cost_table must be a file name (a string), got {self.cost_table!r}")
        if not isinstance(self.cost_options, Mapping):
            raise ConfigError(f"{source}: search.cost_options must be a mapping, got {self.cost_options!r}")
        if not isinstance(self.strategy_options, Mapping):
            raise ConfigError(f"{source}: search.strategy_options must be a mapping, got {self.strategy_options!r}")
        if self.target is not None:
            parse_target(self.target, where=f"{source}: search.target")
        if self.alpha_temperature_end is not None and not (math.isfinite(self.alpha_temperature_end) and self.alpha_temperature_end > 0):
            raise ConfigError(f"{source}: search.alpha_temperature_end must be positive, got {self.alpha_temperature_end}")
        if not 0 <= self.base_prior < 1:
            raise ConfigError(f"{source}: search.base_prior must lie in [0, 1), got {self.base_prior}")
        if not self.target_weight >= 0 or not self.alpha_grad_clip >= 0:
            raise ConfigError(f"{source}: search.target_weight and search.alpha_grad_clip must not be negative")


def load_run_config(
    kind: type[C], section: str, *, config_file: Path | None, overrides: Sequence[str] = (), flags: Mapping[str, Any] | None = None, demo: bool
) -> C:
    """A section of the config file (the demo's packaged one on demo data by default), ``--set``
    overrides, then explicit command-line flags (``None`` values are not given)."""
    config_file = config_file or default_config_file(demo=demo)
    sections = apply_overrides(read_config_file(config_file), overrides)
    # Flags are typed values already: set as they are (as YAML text, "1e-05" and "inf" would read as strings).
    sections.setdefault(section, {}).update({name: value for name, value in (flags or {}).items() if value is not None})
    return section_config(kind, sections, section, source=str(config_file or "command line"))
