"""The genotypes shipped with netadapt, when the tests run from its source tree (the rest comes from netadapt.testing)."""

from pathlib import Path

import pytest

GENOTYPES = Path(__file__).resolve().parents[3] / "examples" / "genotypes"


@pytest.fixture(scope="session")
def genotypes() -> Path:
    if not (GENOTYPES / "paper_ssdlite.yaml").is_file():
        pytest.skip("netadapt's examples/genotypes are not next to this plugin (run from netadapt's source tree)")
    return GENOTYPES
