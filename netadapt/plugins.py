"""The plugin manager and the typed registries built from its hooks (STYLE: "Plugins").

Built-in features are modules listed in :data:`DEFAULT_PLUGINS` and registered exactly as a
third-party package is; third-party packages register through the entry-point group
``netadapt``. External plugins are loaded lazily, once, on first use. The environment variable
``NETADAPT_DISABLE_PLUGINS`` disables them: ``1`` (or ``all``) disables every external plugin,
a comma-separated list disables those entry-point or distribution names.

The rest of the code never calls ``pm.hook.*``: it asks a registry, e.g.
``bases().get("mobilenetv2")``, whose unknown-name error lists the names that exist.

A plugin's failure names the plugin and, where the command can go on without it, disables it with
a warning instead of taking every command down: a ``register_*`` hook that raises
(:func:`_disable`; ``netadapt plugins`` shows it as DISABLED), a key that cannot be a name, a base
network whose ``build`` raises or returns something that is not a module (:class:`CheckedBase`).
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

import pluggy

from netadapt import __version__, contracts, hookspecs
from netadapt.errors import NetadaptError, NetadaptWarning, PluginError, describe

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
    """What ``netadapt plugins`` shows of one plugin; ``notes`` name its overrides, conflicts and missing members."""

    name: str
    version: str
    builtin: bool
    distribution: str
    hooks: tuple[str, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)


class _State:
    manager: pluggy.PluginManager | None = None
    order: list[str] = []
    infos: dict[str, PluginInfo] = {}
    disabled: dict[str, str] = {}  # plugin name → why it was disabled in this process


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
        _State.manager, _State.order, _State.infos, _State.disabled = manager, order, infos, {}
    return _State.manager


def plugin_infos(*, include_builtins: bool = False) -> list[PluginInfo]:
    """Every registered plugin (external only, unless ``include_builtins``) with its hooks."""
    manager = get_plugin_manager()
    notes = _notes()
    infos = []
    for name in _ordered_names(manager):
        plugin = manager.get_plugin(name)
        info = _State.infos.get(name) or PluginInfo(name, "unknown", False, "registered at run time")
        if info.builtin and not include_builtins:
            continue
        hooks = tuple(sorted(caller.name for caller in manager.get_hookcallers(plugin) or ()))
        infos.append(PluginInfo(info.name, info.version, info.builtin, info.distribution, hooks, tuple(notes.get(name, ()))))
    for name, reason in _State.disabled.items():
        info = _State.infos.get(name) or PluginInfo(name, "unknown", False, "registered at run time")
        if include_builtins or not info.builtin:
            infos.append(PluginInfo(info.name, info.version, info.builtin, info.distribution, (), (f"DISABLED: {reason}",)))
    return infos


class Registry(Generic[T]):
    """Name → object, built from one ``register_*`` hook, remembering which plugin gave each.

    ``contract`` is the Protocol of :mod:`netadapt.contracts` every object must meet (``None``:
    remap rules, checked by :func:`_check_rule`).
    """

    def __init__(self, kind: str, contract: type | None = None, checked: Callable[[Any, str], Any] | None = None) -> None:
        self.kind = kind
        self.contract = contract
        self.checked = checked  # wraps each object so that its calls are held to the contract (CheckedBase)
        self._entries: dict[Hashable, tuple[T, str]] = {}

    def add(self, key: Hashable, value: T, *, plugin: str, override: bool = False) -> None:
        problem = _problem(self.kind, self.contract, key, value)
        if problem:
            raise PluginError(f"plugin {plugin!r}: {problem}")
        if key in self._entries and not override:
            raise PluginError(_duplicate(self.kind, key, self._entries[key][1], plugin))
        self._entries[key] = (self.checked(value, plugin) if self.checked else value, plugin)

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


class CheckedBase:
    """A registered base network whose ``build`` is held to its contract: an exception other than netadapt's
    own, or a result that is not a ``torch.nn.Module``, is a PluginError naming the plugin (not an
    AttributeError far from it, in remap). Everything else is the plugin's object unchanged."""

    def __init__(self, base: Any, plugin: str) -> None:
        self._base, self._plugin = base, plugin
        self.__wrapped__ = base  # the plugin's own object (functools' convention)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def __repr__(self) -> str:
        return repr(self._base)

    @property
    def __class__(self) -> type:  # isinstance(registry.get(name), ThePluginsClass) holds, as before the wrapper
        return type(self._base)

    def build(self, genotype: Any, **options: Any) -> Any:
        from torch import nn

        where = f"plugin {self._plugin!r}: base network {getattr(self._base, 'name', '?')!r}: build()"
        try:
            network = self._base.build(genotype, **options)
        except NetadaptError:
            raise
        except Exception as error:
            raise PluginError(f"{where} failed: {describe(error)}") from error
        if not isinstance(network, nn.Module):
            raise PluginError(f"{where} returned {type(network).__name__}, not a torch.nn.Module")
        return network


def bases() -> Registry[contracts.BaseNetwork]:
    return _collect("register_bases")


def remap_rules() -> Registry[contracts.RemapRule]:
    return _collect("register_remap_rules")


def cost_models() -> Registry[contracts.CostModel]:
    return _collect("register_cost_models")


def detectors() -> Registry[contracts.Detector]:
    return _collect("register_detectors")


def export_rules() -> Registry[contracts.ExportRule]:
    return _collect("register_export_rules")


def search_spaces() -> Registry[contracts.SearchSpace]:
    return _collect("register_search_spaces")


def strategies() -> Registry[contracts.Strategy]:
    return _collect("register_strategies")


def datasets() -> Registry[contracts.Dataset]:
    return _collect("register_datasets")


# Hook → (what it registers, the contract of every registered object).
_HOOKS: dict[str, tuple[str, type | None]] = {
    "register_bases": ("base network", contracts.BaseNetwork),
    "register_remap_rules": ("remap rule for", None),
    "register_cost_models": ("cost model", contracts.CostModel),
    "register_detectors": ("detector", contracts.Detector),
    "register_export_rules": ("export rule for detector", contracts.ExportRule),
    "register_search_spaces": ("search space", contracts.SearchSpace),
    "register_strategies": ("search strategy", contracts.Strategy),
    "register_datasets": ("dataset", contracts.Dataset),
}


def _collect(hook_name: str) -> Registry[Any]:
    """The registry of one hook: each plugin's implementation called in turn (built-ins first), so that
    every entry knows its plugin; registration checks every entry against its contract. A hook that raises
    registers nothing: its plugin is disabled with a warning (:func:`_disable`)."""
    kind, contract = _HOOKS[hook_name]
    registry: Registry[Any] = Registry(kind, contract, CheckedBase if hook_name == "register_bases" else None)
    for name, call in _calls(hook_name):
        offered: list[tuple[Any, Any, bool]] = []
        try:
            call(lambda key, value, override=False, _offered=offered: _offered.append((key, value, override)))
        except Exception as error:
            _disable(name, hook_name, error)
            continue
        for key, value, override in offered:
            registry.add(key, value, plugin=name, override=override)
    return registry


def _disable(name: str, hook_name: str, error: Exception) -> None:
    """Unregister plugin ``name``, whose ``hook_name`` raised, for the rest of the process, with a warning
    that names it; ``netadapt plugins`` lists it as DISABLED."""
    reason = f"its {hook_name} hook raised {describe(error)}"
    _State.disabled[name] = reason
    get_plugin_manager().unregister(name=name)
    warnings.warn(f"plugin {name!r} is disabled: {reason} (set {DISABLE_ENV}={name} to skip it)", NetadaptWarning, stacklevel=4)


def _calls(hook_name: str) -> list[tuple[str, Callable[[Callable[..., None]], None]]]:
    """(plugin name, call) for every plugin implementing ``hook_name``, in plugin order; a call runs that
    plugin's implementation alone through pluggy (``subset_hook_caller``) with a ``register`` callback."""
    manager = get_plugin_manager()
    implementing = {impl.plugin_name for impl in getattr(manager.hook, hook_name).get_hookimpls()}
    everyone = [plugin for _, plugin in manager.list_name_plugin()]
    calls = []
    for name in _ordered_names(manager):
        if name in implementing:
            own = manager.get_plugin(name)
            caller = manager.subset_hook_caller(hook_name, remove_plugins=[plugin for plugin in everyone if plugin is not own])
            calls.append((name, lambda register, _caller=caller: _caller(register=register)))
    return calls


def _notes() -> dict[str, list[str]]:
    """Per plugin, what ``netadapt plugins`` says beyond its hooks: a name it overrides (``override=True``), a
    name another plugin registered before it (a conflict, which every command refuses), a missing member."""
    notes: dict[str, list[str]] = {}
    for hook_name, (kind, contract) in _HOOKS.items():
        owners: dict[Hashable, str] = {}
        for name, call in _calls(hook_name):

            def record(key: Hashable, value: Any, override: bool = False, _name: str = name) -> None:
                problem = _problem(kind, contract, key, value)
                if problem:
                    notes.setdefault(_name, []).append(problem)
                    if _unhashable(key):
                        return
                if key in owners:
                    verb = "overrides" if override else "CONFLICT: registers again"
                    notes.setdefault(_name, []).append(f"{verb} {kind} {_display(key)!r} of plugin {owners[key]!r}")
                owners[key] = _name

            try:
                call(record)
            except Exception as error:
                _disable(name, hook_name, error)
    return notes


def _problem(kind: str, contract: type | None, key: Hashable, value: object) -> str | None:
    """What ``value`` lacks of its contract, as the rest of one error line; None when it meets it."""
    if _unhashable(key):
        return f"registers a {kind} under an unhashable {type(key).__name__}; a name (a string) is needed"
    if contract is None:  # a remap rule: a module type and a function (or IGNORE)
        if not isinstance(key, type):
            return f"a remap rule must be registered for a module type, got {key!r}"
        if not (callable(value) or value is contracts.IGNORE):
            return f"{kind} {_display(key)!r} is neither a function rule(source, target) nor netadapt.remap.IGNORE"
        return None
    missing = contracts.missing_members(value, contract)
    if not missing:
        return None
    return (
        f"{kind} {_display(key)!r} has no {', '.join(map(repr, missing))} "
        f"(required by netadapt.contracts.{contract.__name__}; see {contracts.GUIDE})"
    )


def _unhashable(key: object) -> bool:
    try:
        hash(key)
    except TypeError:
        return True
    return False


def _duplicate(kind: str, key: Hashable, owner: str, plugin: str) -> str:
    return (
        f"{kind} {_display(key)!r} is registered twice: by plugin {owner!r} and by plugin {plugin!r}; "
        f"set {DISABLE_ENV}={plugin} to skip the second plugin, or register with override=True to replace it on purpose"
    )


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
