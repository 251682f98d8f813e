"""The plugin system: registries per hook, duplicates, unknown names, entry points, disabling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from netadapt import hookspecs, plugins
from netadapt.errors import PluginError
from netadapt.hookspecs import hookimpl

HOOKS = [name for name in dir(hookspecs) if name.startswith("register_")]
REGISTRIES = {
    "register_bases": plugins.bases,
    "register_search_spaces": plugins.search_spaces,
    "register_cost_models": plugins.cost_models,
    "register_detectors": plugins.detectors,
    "register_remap_rules": plugins.remap_rules,
    "register_strategies": plugins.strategies,
    "register_datasets": plugins.datasets,
}


def test_every_hook_has_a_typed_registry() -> None:
    assert sorted(REGISTRIES) == sorted(HOOKS)


@pytest.mark.parametrize("hook", sorted(REGISTRIES))
def test_a_plugin_registers_through_every_hook(hook: str) -> None:
    thing = object()
    plugin = type("Plugin", (), {hook: staticmethod(hookimpl(lambda register: register("test-thing", thing)))})
    manager = plugins.get_plugin_manager()
    manager.register(plugin, name="test-plugin")
    try:
        registry = REGISTRIES[hook]()
        assert registry.get("test-thing") is thing
        assert registry.owner("test-thing") == "test-plugin"
    finally:
        manager.unregister(name="test-plugin")
    assert "test-thing" not in REGISTRIES[hook]()


def test_a_duplicate_name_names_both_plugins() -> None:
    class Duplicate:
        @staticmethod
        @hookimpl
        def register_bases(register) -> None:
            register("mobilenetv2", object())

    manager = plugins.get_plugin_manager()
    manager.register(Duplicate, name="dup-plugin")
    try:
        with pytest.raises(PluginError, match="'mobilenetv2' is registered twice: by plugin 'netadapt.bases.mobilenetv2' and by plugin 'dup-plugin'"):
            plugins.bases()
    finally:
        manager.unregister(name="dup-plugin")


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(PluginError, match="unknown base network 'resnet'; known: mobilenetv2"):
        plugins.bases().get("resnet")


def test_builtins_are_plugins_like_any_other() -> None:
    infos = {info.name: info for info in plugins.plugin_infos(include_builtins=True)}
    for module in plugins.DEFAULT_PLUGINS:
        assert infos[module].builtin and infos[module].hooks
    assert infos["netadapt.bases.mobilenetv2"].hooks == ("register_bases",)


def _fake_distribution(root: Path, *, module_source: str, name: str = "netadapt-hello") -> Path:
    """An installed-looking distribution (dist-info with an entry point) on a PYTHONPATH folder."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "netadapt_hello.py").write_text(textwrap.dedent(module_source))
    info = root / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[netadapt]\nhello = netadapt_hello\n")
    return root


HELLO = """
    from netadapt.hookspecs import hookimpl

    @hookimpl
    def register_cost_models(register):
        register("hello", object())
"""


def _plugins_json(path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = os.environ | {"PYTHONPATH": str(path)} | env
    return subprocess.run(
        [sys.executable, "-m", "netadapt.cli", "plugins", "--json"], capture_output=True, text=True, env=environment, timeout=120
    )


def test_entry_point_plugins_load_and_can_be_disabled(tmp_path: Path) -> None:
    path = _fake_distribution(tmp_path / "site", module_source=HELLO)
    listed = _plugins_json(path)
    assert listed.returncode == 0, listed.stderr
    # Other installed plugin packages (plugins/ in CI) are listed too; this test is about "hello".
    (hello,) = [info for info in json.loads(listed.stdout) if info["name"] == "hello"]
    assert hello == {"name": "hello", "version": "1.2.3", "builtin": False, "distribution": "netadapt-hello", "hooks": ["register_cost_models"]}
    for value in ("1", "hello", "netadapt-hello,other"):
        disabled = _plugins_json(path, NETADAPT_DISABLE_PLUGINS=value)
        assert disabled.returncode == 0, disabled.stderr
        names = [info["name"] for info in json.loads(disabled.stdout)]
        assert names == [] if value == "1" else "hello" not in names


def test_an_unknown_hook_is_rejected(tmp_path: Path) -> None:
    path = _fake_distribution(tmp_path / "site", module_source=HELLO + "\n    @hookimpl\n    def register_everything(register):\n        pass\n")
    result = _plugins_json(path)
    assert result.returncode == 2
    assert "error: plugin 'hello' implements an unknown hook" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_plugin_says_how_to_skip_it(tmp_path: Path) -> None:
    path = _fake_distribution(tmp_path / "site", module_source="raise ImportError('no such thing')\n")
    result = _plugins_json(path)
    assert result.returncode == 2
    assert "plugin 'hello' (netadapt_hello) failed to load: ImportError: no such thing" in result.stderr
    assert "NETADAPT_DISABLE_PLUGINS=hello" in result.stderr


def test_every_hook_has_a_test() -> None:
    """datasette's test_plugin_hooks_have_tests: every hook is used by a test outside this file."""
    sources = "\n".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py") if path.name != Path(__file__).name)
    untested = [hook for hook in HOOKS if hook not in sources]
    assert not untested, f"hooks without a test: {untested}"
