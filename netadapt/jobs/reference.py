"""References a user reads, generated from the code: every key of the YAML files netadapt reads
(``netadapt config``, docs/config.md) and every registered search space (``netadapt spaces``,
docs/search-spaces.md). Tests fail when a written copy drifts from what these functions give.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from dataclasses import dataclass
from typing import Any

from netadapt import genotype as genotype_module
from netadapt import plugins
from netadapt.config import RemapConfig, SearchConfig, SelectConfig, TrainConfig
from netadapt.contracts import optional
from netadapt.errors import ConfigError
from netadapt.search import space as space_module

# Section → (what file it is, where the keys are defined).
SECTIONS: dict[str, tuple[str, str]] = {
    "train": ("`train:` of a run config (`--config FILE`, `--set train.KEY=VALUE`): `netadapt train`, `adapt`", "netadapt.config.TrainConfig"),
    "search": ("`search:` of a run config (`--set search.KEY=VALUE`): `netadapt search`, `adapt`", "netadapt.config.SearchConfig"),
    "remap": ("`remap:` of a run config (`--set remap.KEY=VALUE`): `netadapt train`, `select`, `adapt`", "netadapt.config.RemapConfig"),
    "select": ("`select:` of a run config (`--set select.KEY=VALUE`): `netadapt select`, `adapt`", "netadapt.config.SelectConfig"),
    "genotype": ("a genotype file (`netadapt show`, `cost`, `remap`, `train GENOTYPE`)", "netadapt.genotype.FIELDS"),
    "space": ("a search-space file (`--space FILE`, `search.space`)", "netadapt.search.space.FIELDS"),
}
_CONFIGS = {"train": TrainConfig, "search": SearchConfig, "remap": RemapConfig, "select": SelectConfig}
# The kind of plugin that reads a mapping key (``setting(plugin=...)``) → its registry.
_PLUGIN_REGISTRIES = {"detector": plugins.detectors, "strategy": plugins.strategies, "cost model": plugins.cost_models}


@dataclass(frozen=True)
class Key:
    """One key of a YAML file netadapt reads."""

    section: str
    key: str
    type: str
    default: Any
    unit: str
    doc: str
    plugin: str  # "": the core reads it; "detector": a detector plugin reads the mapping; "detector: ssdlite": an option of one


def config_keys(section: str | None = None, *, builtin_only: bool = False) -> list[Key]:
    """Every key of ``section`` (all sections when None), in the order the code declares them; after a mapping of
    plugin options, the options each registered plugin declares (``options``: name → default; only the built-in
    plugins' with ``builtin_only``)."""
    if section is not None and section not in SECTIONS:
        raise ConfigError(f"unknown section {section!r} (known: {', '.join(SECTIONS)})")
    keys: list[Key] = []
    for name in SECTIONS if section is None else (section,):
        if name in _CONFIGS:
            for key in _dataclass_keys(name, _CONFIGS[name]):
                keys += [key, *_plugin_option_keys(key, builtin_only=builtin_only)]
        elif name == "genotype":
            keys += _documented_keys(name, genotype_module.FIELDS, genotype_module.Genotype, {"stages": "list of stages"})
        else:
            keys += _documented_keys(name, space_module.FIELDS, space_module.SearchSpace, {"depths": "list[int]", "candidates": "list[str]", "searched_stages": "list[int] | None"})
    return keys


def config_markdown(section: str | None = None, *, builtin_only: bool = False) -> str:
    """The reference as Markdown: docs/config.md is ``config_markdown(builtin_only=True)``."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from the code by `netadapt config` (`--section NAME`, `--json`; here with the built-in plugins only,",
        "`NETADAPT_DISABLE_PLUGINS=1`: installed plugins add their options); `tests/test_reference.py` fails when this",
        "file differs from its output. Epochs and stage numbers count from 1 wherever a user writes or reads them",
        "(`alpha_start_epoch: 1` is the first epoch, `searched_stages: [2]` the second stage); Python indices",
        "(`stage_index`, `layer_index`) count from 0.",
        "",
        "A key whose *read by* names a kind of plugin is a mapping of that plugin's own options: the core passes it on",
        "as written and the plugin checks it. The rows below it (`detector_options.anchors`) are the options each",
        "plugin declares, with their defaults.",
    ]
    keys = config_keys(section, builtin_only=builtin_only)
    for name in SECTIONS if section is None else (section,):
        what, where = SECTIONS[name]
        lines += ["", f"## {name}", "", f"Keys of {what}; defined in `{where}`.", "",
                  "| key | type | default | unit | read by | what it does |", "|---|---|---|---|---|---|"]
        for key in (k for k in keys if k.section == name):
            default = "—" if key.default is dataclasses.MISSING else f"`{_yaml(key.default)}`"
            kind, _, plugin = key.plugin.partition(": ")
            reader = f"`{plugin}` ({kind})" if plugin else f"{kind} plugin" if kind else "core"
            lines.append(f"| `{key.key}` | {_cell(key.type)} | {default} | {key.unit} | {reader} | {_cell(key.doc)} |")
    return "\n".join(lines) + "\n"


def config_json(section: str | None = None, *, builtin_only: bool = False) -> str:
    keys = config_keys(section, builtin_only=builtin_only)
    rows = [dataclasses.asdict(key) | {"default": None if key.default is dataclasses.MISSING else key.default} for key in keys]
    return json.dumps(rows, indent=2)


@dataclass(frozen=True)
class SpaceInfo:
    """What ``netadapt spaces`` shows of one registered search space."""

    name: str
    plugin: str
    depths: tuple[int, ...]
    searched_stages: tuple[int, ...]  # 1-based
    candidates: dict[int, tuple[str, ...]]  # stage number → the ops of its second layer (its first: no skip)
    fits: str


def search_spaces(*, builtin_only: bool = False) -> list[SpaceInfo]:
    """Every registered search space (only the built-ins' with ``builtin_only``: docs/search-spaces.md)."""
    registry = plugins.search_spaces()
    infos = []
    for name, space in registry.items():
        owner = registry.owner(name)
        if builtin_only and owner not in plugins.DEFAULT_PLUGINS:
            continue
        searched = tuple(s for s in range(len(space.depths)) if space.is_searched(s))
        candidates = {s + 1: tuple(op.name for op in space.layer_candidates(s, min(1, space.depths[s] - 1))) for s in searched}
        fits = " ".join((inspect.getdoc(space.check_against) or "its check_against says nothing (no docstring)").split())
        infos.append(SpaceInfo(str(name), owner, tuple(space.depths), tuple(s + 1 for s in searched), candidates, fits))
    return infos


def spaces_markdown(*, builtin_only: bool = False) -> str:
    lines = [
        "# Search spaces",
        "",
        "Generated from the code by `netadapt spaces` (here: the built-in spaces; installed plugins add theirs to the",
        "command's output); `tests/test_reference.py` fails when this file differs. A search uses `--space NAME` or",
        "`search.space`, else its base's `default_search_space`, else `fna`. Stages are numbered from 1; `skip` is a",
        "candidate of every searched layer but a stage's first. A space file's keys: docs/config.md, section `space`.",
    ]
    for info in search_spaces(builtin_only=builtin_only):
        lines += ["", f"## {info.name}", "", f"- registered by: `{info.plugin}`",
                  f"- depths (layers per stage in the super network): {list(info.depths)}",
                  f"- searched stages: {list(info.searched_stages)}; the others keep the base's ops, repeated to their depth (Eq. 1)"]
        for stage, ops in info.candidates.items():
            lines.append(f"- stage {stage} candidates: {', '.join(ops)}")
        lines.append(f"- a base fits when: {info.fits}")
    return "\n".join(lines) + "\n"


def spaces_json(*, builtin_only: bool = False) -> str:
    return json.dumps([dataclasses.asdict(info) for info in search_spaces(builtin_only=builtin_only)], indent=2)


def _dataclass_keys(section: str, kind: type) -> list[Key]:
    hints = typing.get_type_hints(kind)
    keys = []
    for field in dataclasses.fields(kind):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        meta = field.metadata
        keys.append(Key(section, field.name, _type_name(hints[field.name]), default, meta.get("unit", ""), meta["doc"], meta.get("plugin", "")))
    return keys


def _plugin_option_keys(mapping: Key, *, builtin_only: bool) -> list[Key]:
    """The options the registered plugins of ``mapping.plugin``'s kind declare for the mapping."""
    if not mapping.plugin:
        return []
    registry = _PLUGIN_REGISTRIES[mapping.plugin]()
    keys = []
    for name, thing in registry.items():
        if builtin_only and registry.owner(name) not in plugins.DEFAULT_PLUGINS:
            continue
        for option, default in (optional(thing, "options", None) or {}).items():
            plain = default if isinstance(default, (str, int, float, bool, type(None))) else (list(default) if isinstance(default, tuple) else repr(default))
            kind = "any" if default is None else "list" if isinstance(default, (list, tuple)) else type(default).__name__
            keys.append(Key(mapping.section, f"{mapping.key}.{option}", kind, plain, "",
                            "declared by the plugin: its documentation says what it does", f"{mapping.plugin}: {name}"))
    return keys


def _documented_keys(section: str, docs: dict[str, str], kind: type, types_: dict[str, str]) -> list[Key]:
    """Keys of a file decoded by hand (genotype, space): the docs dict in the module, defaults from its dataclass."""
    fields = {field.name: field for field in dataclasses.fields(kind)}
    hints = typing.get_type_hints(kind)
    keys = []
    for name, doc in docs.items():
        field = fields.get(name)
        default = dataclasses.MISSING if field is None else field.default
        kind_name = types_.get(name) or (_type_name(hints[name]) if name in hints else "any")
        keys.append(Key(section, name, kind_name, default, "", doc, ""))
    return keys


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in typing.get_args(hint))
    if origin is dict:
        return "mapping"
    if origin is list:
        return f"list[{_type_name(typing.get_args(hint)[0])}]"
    if origin is tuple:
        return f"list[{_type_name(typing.get_args(hint)[0])}]"
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", str(hint))


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and not value:
        return "{}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
