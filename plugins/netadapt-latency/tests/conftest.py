"""Caches go to a folder of the test session unless NETADAPT_CACHE names one (as in netadapt's tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def netadapt_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "NETADAPT_CACHE" not in os.environ:
        os.environ["NETADAPT_CACHE"] = str(tmp_path_factory.mktemp("netadapt-cache"))
    return Path(os.environ["NETADAPT_CACHE"])
