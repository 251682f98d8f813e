"""Shared fixtures: paths of the shipped examples, small helpers for real networks."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session", autouse=True)
def netadapt_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Caches (demo data, pretrained base, cost tables) go to a folder of the test session,
    unless NETADAPT_CACHE names one (CI shares one between runs of the same tree)."""
    if "NETADAPT_CACHE" not in os.environ:
        os.environ["NETADAPT_CACHE"] = str(tmp_path_factory.mktemp("netadapt-cache"))
    return Path(os.environ["NETADAPT_CACHE"])


@pytest.fixture
def mobilenetv2_yaml() -> Path:
    return EXAMPLES / "genotypes" / "mobilenetv2.yaml"


@pytest.fixture
def paper_yaml() -> Path:
    return EXAMPLES / "genotypes" / "paper_ssdlite.yaml"


def randomize_batch_norm(network: torch.nn.Module, *, seed: int = 0) -> None:
    """Give every BN non-trivial statistics and affine parameters, so that equality tests can fail."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                size = module.num_features
                module.running_mean.copy_(torch.rand(size, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(size, generator=generator) - 0.5)


def kill_at_first_checkpoint(command: list[str], run: Path, *, timeout: float = 300) -> None:
    """Start ``command`` (a run writing to ``run``), SIGKILL it as soon as ``run/last.pth`` exists,
    and check that it really died mid-run (it did not finish first)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not (run / "last.pth").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, f"{' '.join(command[:2])} finished before it could be killed"
