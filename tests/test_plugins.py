"""The plugin system: registries per hook, duplicates, unknown names, entry points, disabling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from torch import nn
from typer.testing import CliRunner

from netadapt import contracts, hookspecs, plugins
from netadapt.bases.mobilenetv2 import MobileNetV2Base
from netadapt.cli.main import app
from netadapt.cost.models import MAddsModel
from netadapt.errors import PluginError
from netadapt.hookspecs import hookimpl

HOOKS = [name for name in dir(hookspecs) if name.startswith("register_")]
# Hook → (its registry, the contract every registered object meets; None: remap rules, keyed by module type).
REGISTRIES = {
    "register_bases": (plugins.bases, contracts.BaseNetwork),
    "register_search_spaces": (plugins.search_spaces, contracts.SearchSpace),
    "register_cost_models": (plugins.cost_models, contracts.CostModel),
    "register_detectors": (plugins.detectors, contracts.Detector),
    "register_export_rules": (plugins.export_rules, contracts.ExportRule),
    "register_remap_rules": (plugins.remap_rules, None),
    "register_strategies": (plugins.strategies, contracts.Strategy),
    "register_datasets": (plugins.datasets, contracts.Dataset),
}


class _TestLayer(nn.Module):
    """A module type of this test's own, for remap rules."""


def _meeting(contract: type | None, *, leave_out: str | None = None) -> object:
    """An object with every required member of ``contract`` but ``leave_out`` (a rule function for None)."""
    if contract is None:
        return lambda source, target: None
    return SimpleNamespace(**{name: (lambda *args, **kwargs: None) for name in contracts.members(contract) if name != leave_out})


def _plugin(hook: str, thing: object, key: object = "test-thing") -> type:
    return type("Plugin", (), {hook: staticmethod(hookimpl(lambda register: register(key, thing)))})


def test_every_hook_has_a_typed_registry() -> None:
    assert sorted(REGISTRIES) == sorted(HOOKS)


@pytest.mark.parametrize("hook", sorted(REGISTRIES))
def test_a_plugin_registers_through_every_hook(hook: str) -> None:
    registry_of, contract = REGISTRIES[hook]
    key = _TestLayer if contract is None else "test-thing"
    thing = _meeting(contract)
    manager = plugins.get_plugin_manager()
    manager.register(_plugin(hook, thing, key), name="test-plugin")
    try:
        registry = registry_of()
        assert getattr(registry.get(key), "__wrapped__", registry.get(key)) is thing  # bases come held to their contract
        assert registry.owner(key) == "test-plugin"
    finally:
        manager.unregister(name="test-plugin")
    assert key not in registry_of()


@pytest.mark.parametrize("hook", sorted(hook for hook, (_, contract) in REGISTRIES.items() if contract is not None))
def test_a_missing_required_member_fails_at_registration_naming_it(hook: str) -> None:
    registry_of, contract = REGISTRIES[hook]
    member = contracts.members(contract)[-1]
    manager = plugins.get_plugin_manager()
    manager.register(_plugin(hook, _meeting(contract, leave_out=member)), name="half-plugin")
    try:
        with pytest.raises(PluginError) as raised:
            registry_of()
        result = CliRunner().invoke(app, ["plugins", "--all"], env={"COLUMNS": "300"})
    finally:
        manager.unregister(name="half-plugin")
    message = str(raised.value)
    assert len(message.splitlines()) == 1
    assert message.startswith("plugin 'half-plugin': ") and f"has no {member!r}" in message
    assert result.exit_code == 0, result.output  # netadapt plugins lists the problem instead of failing
    assert f"has no {member!r}" in result.output


def test_a_remap_rule_needs_a_module_type_and_a_function() -> None:
    manager = plugins.get_plugin_manager()
    for key, rule, message in (("conv", lambda s, t: None, "must be registered for a module type"), (_TestLayer, "copy", "is neither a function")):
        manager.register(_plugin("register_remap_rules", rule, key), name="rule-plugin")
        try:
            with pytest.raises(PluginError, match=f"^plugin 'rule-plugin': .*{message}"):
                plugins.remap_rules()
        finally:
            manager.unregister(name="rule-plugin")


def test_optional_members_are_declared() -> None:
    strategy = plugins.strategies().get("darts")
    assert contracts.optional(strategy, "uses_all_parameters", False) is True
    assert contracts.optional(plugins.strategies().get("sampled"), "weight_steps_per_alpha_step", 1) == 1
    with pytest.raises(AttributeError, match="no optional member"):
        contracts.optional(strategy, "uses_all_parameter", False)  # a typo is an error, not a default


def test_a_duplicate_name_names_both_plugins() -> None:
    class Duplicate:
        @staticmethod
        @hookimpl
        def register_bases(register) -> None:
            register("mobilenetv2", MobileNetV2Base())

    manager = plugins.get_plugin_manager()
    manager.register(Duplicate, name="dup-plugin")
    try:
        with pytest.raises(PluginError) as raised:
            plugins.bases()
        listed = CliRunner().invoke(app, ["plugins", "--json"])
    finally:
        manager.unregister(name="dup-plugin")
    message = str(raised.value)
    assert "'mobilenetv2' is registered twice: by plugin 'netadapt.bases.mobilenetv2' and by plugin 'dup-plugin'" in message
    assert "NETADAPT_DISABLE_PLUGINS=dup-plugin" in message and len(message.splitlines()) == 1
    assert listed.exit_code == 0, listed.output  # netadapt plugins shows the conflict
    (dup,) = [info for info in json.loads(listed.output) if info["name"] == "dup-plugin"]
    assert dup["notes"] == ["CONFLICT: registers again base network 'mobilenetv2' of plugin 'netadapt.bases.mobilenetv2'"]


def test_an_override_is_shown() -> None:
    class Override:
        @staticmethod
        @hookimpl
        def register_cost_models(register) -> None:
            register("params", MAddsModel(), override=True)

    manager = plugins.get_plugin_manager()
    manager.register(Override, name="override-plugin")
    try:
        assert plugins.cost_models().owner("params") == "override-plugin"
        (info,) = [info for info in plugins.plugin_infos() if info.name == "override-plugin"]
    finally:
        manager.unregister(name="override-plugin")
    assert info.notes == ("overrides cost model 'params' of plugin 'netadapt.cost.models'",)


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

    class Hello:
        name, unit = "hello", "hellos"

        def measure(self, module, inputs):
            raise NotImplementedError

    @hookimpl
    def register_cost_models(register):
        register("hello", Hello())
"""


def _plugins_json(path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = os.environ | {"PYTHONPATH": str(path)} | env
    return subprocess.run(
        [sys.executable, "-m", "netadapt.cli", "plugins", "--json"], capture_output=True, text=True, env=environment, timeout=120
    )


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_entry_point_plugins_load_and_can_be_disabled(tmp_path: Path) -> None:
    path = _fake_distribution(tmp_path / "site", module_source=HELLO)
    listed = _plugins_json(path)
    assert listed.returncode == 0, listed.stderr
    # Other installed plugin packages (plugins/ in CI) are listed too; this test is about "hello".
    (hello,) = [info for info in json.loads(listed.stdout) if info["name"] == "hello"]
    assert hello == {
        "name": "hello", "version": "1.2.3", "builtin": False, "distribution": "netadapt-hello", "hooks": ["register_cost_models"], "notes": [],
    }
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


def test_the_plugins_table_fits_80_columns_without_breaking_a_header() -> None:
    result = CliRunner().invoke(app, ["plugins", "--all"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "version" in line)
    assert all(word in header for word in ("name", "version", "distribution", "hooks (register_*)", "notes")), header
