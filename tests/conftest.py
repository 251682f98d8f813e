"""Shared fixtures: paths of the shipped examples, helpers for runs killed and resumed.

The session cache (``netadapt_cache``) and ``randomize_batchnorm`` come from
``netadapt.testing``, the kit plugin packages use too (``.ci/run`` sets NETADAPT_CACHE to a fresh folder per run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# The smallest network of the MobileNetV2 family a run trains fast: one k3_e3 layer per stage (the reliability tests').
STAGES = [
    [[32, 16], ["k3_e1"], 1],
    [[16, 24], ["k3_e3"], 2],
    [[24, 32], ["k3_e3"], 2],
    [[32, 64], ["k3_e3"], 2],
    [[64, 96], ["k3_e3"], 1],
    [[96, 160], ["k3_e3"], 2],
    [[160, 320], ["k3_e3"], 1],
]


@pytest.fixture
def mobilenetv2_yaml() -> Path:
    return EXAMPLES / "genotypes" / "mobilenetv2.yaml"


@pytest.fixture
def paper_yaml() -> Path:
    return EXAMPLES / "genotypes" / "paper_ssdlite.yaml"


def kill_at_first_checkpoint(command: list[str], run: Path, *, timeout: float = 300) -> None:
    """Start ``command`` (a run writing to ``run``), SIGKILL it as soon as ``run/last.pth`` exists,
    and check that it really died mid-run (it did not finish first)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not (run / "last.pth").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    checkpointed = (run / "last.pth").exists()
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, f"{' '.join(command[:2])} finished before it could be killed"
    assert checkpointed, f"{' '.join(command[:2])} wrote no checkpoint in {timeout:g} s"


def search_alphas(run: Path) -> list[torch.Tensor]:
    """α of a finished search run (``supernet.pth``), layer by layer."""
    state = torch.load(run / "supernet.pth", weights_only=True)["alpha"]
    return [state[f"alphas.{i}"] for i in range(len(state))]


def assert_same_search(expected: Path, run: Path) -> None:
    """Two search runs ended identically: α, the derived genotype and the α history."""
    assert all(torch.equal(a, b) for a, b in zip(search_alphas(expected), search_alphas(run), strict=True))
    for name in ("genotype.yaml", "alpha_history.csv"):
        assert (run / name).read_text() == (expected / name).read_text(), name


def torchrun_search(netadapt: str, torchrun: str, data: Path, run: Path, flags: list[str]) -> list[dict]:
    """``netadapt search`` under ``torchrun`` with two CPU (gloo) processes; its log records."""
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "--no-python", netadapt, "search", "--data", str(data),
         "--weights", "none", "--out", str(run), "--quiet", "--device", "cpu", *flags],
        capture_output=True, text=True, timeout=600, env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
