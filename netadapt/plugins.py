"""The plugin manager and the typed registries built from its hooks (STYLE: "Plugins").

Built-in features are modules listed in :data:`DEFAULT_PLUGINS` and registered exactly as a
third-party package is; third-party packages register through the entry-point group
``netadapt``. External plugins are loaded lazily, once, on first use. The environment variable
``NETADAPT_DISABLE_PLUGINS`` disables them: ``1`` (or ``all``) disables every external plugin,
a comma-separated list disables those entry-point or distribution names.

The rest of the code never calls ``pm.hook.*``: it asks a registry, e.g.
``bases().get("mobilenetv2")``, whose unknown-name error lists the names that exist.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

import pluggy

from netadapt import __version__, hookspecs
from netadapt.errors import PluginError

ENTRY_POINT_GROUP = "netadapt"
DISABLE_ENV = "NETADAPT_DISABLE_PLUGINS"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "netadapt.bases.mobilenetv2",
    "netadapt.remap.rules",
    "netadapt.cost.models",
    "netadapt.detectors.ssdlite",
    "netadapt.data.sources",
    "netadapt.search.space",
    "netadapt.search.darts",
    "netadapt.search.sampled",
    "netadapt.search.fna",
)

T = TypeVar("T")


@dataclass(frozen=True)
class PluginInfo:
    """What ``netadapt plugins`` shows of one plugin."""

    name: str
    version: str
    builtin: bool
    distribution: str
    hooks: tuple[str, ...] = field(default_factory=tuple)


class _State:
    manager: pluggy.PluginManager | None = None
    order: list[str] = []
    infos: dict[str, PluginInfo] = {}


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager; built-ins and entry points are loaded on first call."""
    if _State.manager is None:
        manager = pluggy.PluginManager("netadapt")
        manager.add_hookspecs(hookspecs)
        order: list[str] = []
        infos: dict[str, PluginInfo] = {}
        for module_name in DEFAULT_PLUGINS:
            manager.register(importlib.import_module(module_name), name=module_name)
            order.append(module_name)
            infos[module_name] = PluginInfo(module_name, __version__, True, "netadapt")
        for entry_point, plugin in _load_entry_points():
            manager.register(plugin, name=entry_point.name)
            order.append(entry_point.name)
            distribution = entry_point.dist
            infos[entry_point.name] = PluginInfo(
                entry_point.name,
                distribution.version if distribution else "unknown",
                False,
                distribution.metadata["Name"] if distribution else "unknown",
            )
        try:
            manager.check_pending()
        except pluggy.PluginValidationError as error:
            name = manager.get_name(error.plugin) or repr(error.plugin)
            raise PluginError(f"plugin {name!r} implements an unknown hook: {error}") from None
        _State.manager, _State.order, _State.infos = manager, order, infos
    return _State.manager


def plugin_infos(*, include_builtins: bool = False) -> list[PluginInfo]:
    """Every registered plugin (external only, unless ``include_builtins``) with its hooks."""
    manager = get_plugin_manager()
    infos = []
    for name in _ordered_names(manager):
        plugin = manager.get_plugin(name)
        info = _State.infos.get(name) or PluginInfo(name, "unknown", False, "registered at run time")
        if info.builtin and not include_builtins:
            continue
        hooks = tuple(sorted(caller.name for caller in manager.get_hookcallers(plugin) or ()))
        infos.append(PluginInfo(info.name, info.version, info.builtin, info.distribution, hooks))
    return infos


class Registry(Generic[T]):
    """Name → object, built from one ``register_*`` hook, remembering which plugin gave each."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[Hashable, tuple[T, str]] = {}

    def add(self, key: Hashable, value: T, *, plugin: str, override: bool = False) -> None:
        if key in self._entries:
            _, owner = self._entries[key]
            if not override:
                raise PluginError(
                    f"{self.kind} {_display(key)!r} is registered twice: by plugin {owner!r} and by plugin {plugin!r}"
                    " (pass override=True to replace it on purpose)"
                )
        self._entries[key] = (value, plugin)

    def get(self, key: Hashable) -> T:
        try:
            return self._entries[key][0]
        except KeyError:
            known = ", ".join(sorted(_display(k) for k in self._entries)) or "none"
            raise PluginError(f"unknown {self.kind} {_display(key)!r}; known: {known}") from None

    def owner(self, key: Hashable) -> str:
        return self._entries[key][1]

    def names(self) -> list[Hashable]:
        return list(self._entries)

    def items(self) -> Iterator[tuple[Hashable, T]]:
        for key, (value, _) in self._entries.items():
            yield key, value

    def __contains__(self, key: object) -> bool:
        return key in self._entries


def bases() -> Registry[Any]:
    return _collect("register_bases", "base network")


def remap_rules() -> Registry[Any]:
    return _collect("register_remap_rules", "remap rule for")


def cost_models() -> Registry[Any]:
    return _collect("register_cost_models", "cost model")


def detectors() -> Registry[Any]:
    return _collect("register_detectors", "detector")


def search_spaces() -> Registry[Any]:
    return _collect("register_search_spaces", "search space")


def strategies() -> Registry[Any]:
    return _collect("register_strategies", "search strategy")


def datasets() -> Registry[Any]:
    return _collect("register_datasets", "dataset")


def _collect(hook_name: str, kind: str) -> Registry[Any]:
    """Call one hook plugin by plugin (built-ins first), so each entry knows its plugin."""
    manager = get_plugin_manager()
    registry: Registry[Any] = Registry(kind)
    implementations = {impl.plugin_name: impl for impl in getattr(manager.hook, hook_name).get_hookimpls()}
    for name in _ordered_names(manager):
        implementation = implementations.get(name)
        if implementation is None:
            continue
        register: Callable[..., None] = lambda key, value, override=False, _name=name: registry.add(  # noqa: E731
            key, value, plugin=_name, override=override
        )
        implementation.function(register=register)
    return registry


def _ordered_names(manager: pluggy.PluginManager) -> list[str]:
    """Built-ins, then entry points, then plugins registered at run time (tests), in that order."""
    registered = {name for name, _ in manager.list_name_plugin()}
    extra = sorted(registered - set(_State.order))
    return [name for name in _State.order if name in registered] + extra


def _load_entry_points() -> list[tuple[metadata.EntryPoint, object]]:
    disabled = _disabled_names()
    if disabled == {"*"}:
        return []
    loaded = []
    for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        distribution = entry_point.dist.metadata["Name"] if entry_point.dist else None
        if entry_point.name in disabled or distribution in disabled:
            continue
        try:
            plugin = entry_point.load()
        except Exception as error:  # a broken third-party package must not look like our bug
            raise PluginError(
                f"plugin {entry_point.name!r} ({entry_point.value}) failed to load: {type(error).__name__}: {error}"
                f" (set {DISABLE_ENV}={entry_point.name} to skip it)"
            ) from error
        loaded.append((entry_point, plugin))
    return loaded


def _disabled_names() -> set[str]:
    value = os.environ.get(DISABLE_ENV, "").strip()
    if value.lower() in {"1", "all", "*", "true", "yes"}:
        return {"*"}
    return {name.strip() for name in value.split(",") if name.strip()}


def _display(key: Hashable) -> str:
    return key.__qualname__ if isinstance(key, type) else str(key)
