"""Shared fixtures of the plugin's tests: a session cache, the shipped genotypes, a tiny demo dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netadapt.data.demo import generate_demo_dataset

# The genotypes shipped with netadapt, when the tests run from its source tree (plugins/netadapt-retinanet/tests).
GENOTYPES = Path(__file__).resolve().parents[3] / "examples" / "genotypes"


@pytest.fixture(scope="session", autouse=True)
def netadapt_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Caches (demo data, cost tables) go to a folder of the test session, as in netadapt's own tests,
    unless NETADAPT_CACHE names one; subprocesses inherit it."""
    if "NETADAPT_CACHE" not in os.environ:
        os.environ["NETADAPT_CACHE"] = str(tmp_path_factory.mktemp("netadapt-cache"))
    return Path(os.environ["NETADAPT_CACHE"])


@pytest.fixture(scope="session")
def genotypes() -> Path:
    if not (GENOTYPES / "paper_ssdlite.yaml").is_file():
        pytest.skip("netadapt's examples/genotypes are not next to this plugin (run from netadapt's source tree)")
    return GENOTYPES


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's own demo dataset, 16 train and 8 val images of 96 pixels."""
    return generate_demo_dataset(tmp_path_factory.mktemp("data") / "demo", num_train=16, num_val=8, image_size=96, seed=3)
