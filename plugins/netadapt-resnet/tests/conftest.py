"""Fixtures of the plugin's tests: a session cache and a tiny demo dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netadapt.data.demo import generate_demo_dataset


@pytest.fixture(scope="session", autouse=True)
def netadapt_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Caches (demo data, cost tables) go to a folder of the test session unless NETADAPT_CACHE names one."""
    if "NETADAPT_CACHE" not in os.environ:
        os.environ["NETADAPT_CACHE"] = str(tmp_path_factory.mktemp("netadapt-cache"))
    return Path(os.environ["NETADAPT_CACHE"])


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("data") / "demo", num_train=8, num_val=4, image_size=96, seed=5)
