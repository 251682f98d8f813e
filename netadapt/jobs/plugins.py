"""The plugins job (``netadapt plugins``): the installed plugins, their versions and hooks."""

from __future__ import annotations

from netadapt.plugins import PluginInfo, plugin_infos


def installed_plugins(*, include_builtins: bool = False) -> list[PluginInfo]:
    """Every registered plugin (entry-point group ``netadapt``; the built-in ones too with ``include_builtins``): name,
    version, distribution, hooks, and the names it overrides, registers again or registers without a required member."""
    return plugin_infos(include_builtins=include_builtins)
