"""The CLI as users run it: the installed ``netadapt`` script in a subprocess, and CliRunner."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from netadapt import plugins
from netadapt.bases.mobilenetv2 import MobileNetV2Base
from netadapt.cli.main import app
from netadapt.hookspecs import hookimpl
from tests.test_genotype import BAD_GENOTYPES

NETADAPT = shutil.which("netadapt")
pytestmark = pytest.mark.skipif(NETADAPT is None, reason="the netadapt script is not installed")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([NETADAPT, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    for command in ("plugins", "show", "remap", "cost"):
        assert command in result.stdout


def test_plugins_all_lists_builtins() -> None:
    result = run("plugins", "--all", "--json")
    assert result.returncode == 0, result.stderr
    names = {info["name"] for info in json.loads(result.stdout)}
    assert set(plugins.DEFAULT_PLUGINS) <= names


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_cost_of_mobilenetv2_at_224(mobilenetv2_yaml: Path) -> None:
    result = run("cost", str(mobilenetv2_yaml), "--input-size", "224", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert 3.4e6 <= report["params"] <= 3.6e6
    assert 0.29e9 <= report["madds"] <= 0.32e9
    assert report["classifier_counted"] is True
    assert "aten::hardtanh_" in report["left_out"]
    table = run("cost", str(mobilenetv2_yaml), "--input-size", "224")
    assert "classifier (1000 classes)" in table.stdout and "total" in table.stdout and "hardtanh" in table.stdout


def test_show_prints_layers_and_draws_a_png(paper_yaml: Path, tmp_path: Path) -> None:
    png = tmp_path / "paper.png"
    result = run("show", str(paper_yaml), "--png", str(png))
    assert result.returncode == 0, result.stderr
    assert "k7_e6" in result.stdout and "96→160" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_remap_writes_a_loadable_checkpoint(paper_yaml: Path, tmp_path: Path) -> None:
    out = tmp_path / "paper.pth"
    result = run("remap", str(paper_yaml), "--base", "mobilenetv2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "RANDOMLY INITIALISED" in result.stderr  # the loud warning without --weights
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["base"] == "mobilenetv2" and checkpoint["genotype"]["stages"][1][1] == ["k7_e6", "k5_e6", "k3_e6", "k3_e3"]
    assert "features.2.conv.1.0.weight" in checkpoint["state_dict"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".netadapt-manifest", "paper.pth"]  # no temporary file left


def test_remap_from_torchvision_weights_keeps_them(mobilenetv2_yaml: Path, tmp_path: Path) -> None:
    import torchvision

    weights = tmp_path / "mnv2.pth"
    reference = torchvision.models.mobilenet_v2()
    torch.save(reference.state_dict(), weights)
    out = tmp_path / "same.pth"
    result = run("remap", str(mobilenetv2_yaml), "--weights", str(weights), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert "RANDOMLY" not in result.stderr
    state = torch.load(out, weights_only=True)["state_dict"]
    assert all(torch.equal(state[key], value) for key, value in reference.state_dict().items())


@pytest.mark.parametrize("kind", sorted(BAD_GENOTYPES))
def test_bad_genotypes_exit_2_with_one_line(kind: str, tmp_path: Path) -> None:
    text, message = BAD_GENOTYPES[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text)
    result = run("remap", str(path), "--out", str(tmp_path / "out.pth"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {path}: {result.stderr.split(f'{path}: ', 1)[1].strip()}"]
    assert message in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing written


@pytest.mark.parametrize("command", ["show", "cost"])
def test_show_and_cost_reject_bad_genotypes_too(command: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_GENOTYPES["unknown_op"][0])
    result = CliRunner().invoke(app, [command, str(path)])
    assert result.exit_code == 2
    assert f"error: {path}: stage 2, op 2: unknown op 'k4_e6'" in result.output


class _NarrowBase(MobileNetV2Base):
    name = "mobilenetv2-narrow"


class _NarrowPlugin:
    @staticmethod
    @hookimpl
    def register_bases(register) -> None:
        register(_NarrowBase.name, _NarrowBase())


def test_a_plugin_base_is_chosen_by_the_genotype(mobilenetv2_yaml: Path, tmp_path: Path) -> None:
    genotype = tmp_path / "narrow.yaml"
    genotype.write_text(mobilenetv2_yaml.read_text().replace("base: mobilenetv2", "base: mobilenetv2-narrow").replace("width_mult: 1.0", "width_mult: 0.5"))
    manager = plugins.get_plugin_manager()
    manager.register(_NarrowPlugin, name="narrow-plugin")
    try:
        result = CliRunner().invoke(app, ["cost", str(genotype), "--json"])
    finally:
        manager.unregister(name="narrow-plugin")
    assert result.exit_code == 0, result.output
    assert 1.9e6 < json.loads(result.output)["params"] < 2.1e6  # torchvision's mobilenet_v2(width_mult=0.5): 1.97M
    unknown = CliRunner().invoke(app, ["cost", str(genotype)])
    assert unknown.exit_code == 2
    assert "unknown base network 'mobilenetv2-narrow'; known: mobilenetv2" in unknown.output


def test_cost_of_mobilenetv2_ssdlite_matches_the_paper(mobilenetv2_yaml: Path) -> None:
    """MobileNetV2 paper, SSDLite at 320×320 on COCO: 4.3M parameters, 0.8B MAdds."""
    result = CliRunner().invoke(app, ["cost", "--detector", "ssdlite", "--input-size", "320", "--num-classes", "81", str(mobilenetv2_yaml), "--json"])
    assert result.exit_code == 0, result.output
    cost = json.loads(result.output)
    assert abs(cost["params"] / 4.3e6 - 1) < 0.05
    assert abs(cost["madds"] / 0.8e9 - 1) < 0.15
    assert cost["parts"]["backbone"]["params"] + cost["parts"]["extras"]["params"] + cost["parts"]["head"]["params"] == cost["params"]
