"""The three plugin packages as a user installs them (issue 5): found through their entry points,
listed with their versions by ``netadapt plugins``, gone with ``NETADAPT_DISABLE_PLUGINS``.

Runs against the environment the README's test command makes, where they are installed with
``pip install -e plugins/netadapt-*``; each package's own tests (``plugins/*/tests``) run
``remap``, a tiny ``search`` and ``eval`` through it as subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

NETADAPT = shutil.which("netadapt")
pytestmark = pytest.mark.skipif(NETADAPT is None, reason="the netadapt script is not installed")

# entry-point name → (distribution, the hook each must implement)
MOBILENETV3_YAML = Path(__file__).parent / "netadapt-mobilenetv3" / "netadapt_mobilenetv3" / "genotypes" / "mobilenetv3_large.yaml"
PACKAGES = {
    "mobilenetv3": ("netadapt-mobilenetv3", "register_bases"),
    "latency": ("netadapt-latency", "register_cost_models"),
    "retinanet": ("netadapt-retinanet", "register_detectors"),
    "resnet": ("netadapt-resnet", "register_bases"),
}


def plugins_json(env: dict[str, str]) -> list[dict]:
    result = subprocess.run([NETADAPT, "plugins", "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_netadapt_plugins_lists_the_three_packages_with_their_versions() -> None:
    listed = {info["name"]: info for info in plugins_json(os.environ | {"NETADAPT_DISABLE_PLUGINS": ""})}
    for name, (distribution, hook) in PACKAGES.items():
        assert name in listed, f"{distribution} is not installed or its entry point is missing: {sorted(listed)}"
        info = listed[name]
        assert info["distribution"] == distribution
        assert info["version"] == metadata.version(distribution)
        assert info["builtin"] is False
        assert hook in info["hooks"]


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_disabling_plugins_removes_them_and_their_names() -> None:
    env = os.environ | {"NETADAPT_DISABLE_PLUGINS": "1"}
    assert not {info["name"] for info in plugins_json(env)} & set(PACKAGES)
    result = subprocess.run(
        [NETADAPT, "cost", str(MOBILENETV3_YAML), "--input-size", "64"], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()
    assert len(message) == 1 and "unknown base network 'mobilenetv3'" in message[0], result.stderr


def test_disabling_one_package_by_distribution_name_keeps_the_others() -> None:
    listed = {info["name"] for info in plugins_json(os.environ | {"NETADAPT_DISABLE_PLUGINS": "netadapt-latency"})}
    assert "latency" not in listed
    assert {"mobilenetv3", "retinanet"} <= listed
