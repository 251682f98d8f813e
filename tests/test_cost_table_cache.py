"""A corrupted cost-table cache is counted again, not a failure of every later search at that size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netadapt import plugins
from netadapt.errors import NetadaptWarning
from netadapt.search.cost_table import build_cost_table
from netadapt.search.space import load_search_space
from netadapt.search.supernet import build_supernet


@pytest.fixture(scope="module")
def supernet():
    base = plugins.bases().get("mobilenetv2")
    genotype = base.base_genotype()
    return build_supernet("mobilenetv2", load_search_space("fna"), base.build(genotype), genotype)


@pytest.mark.parametrize("damage", ["{not json", '{"model": "madds"}', "[]", '{"model": "madds", "unit": "MAdds", "input_size": 64, "costs": [{"k3_e3": -1}]}'])
def test_a_corrupted_cached_table_is_counted_again_and_rewritten(supernet, tmp_path: Path, damage: str) -> None:
    table = build_cost_table(supernet, input_size=64, cache_dir=tmp_path)
    (cache_file,) = tmp_path.iterdir()
    cache_file.write_text(damage)
    with pytest.warns(NetadaptWarning, match="not a readable cost table; counting the candidates again"):
        again = build_cost_table(supernet, input_size=64, cache_dir=tmp_path)
    assert again == table
    assert json.loads(cache_file.read_text()) == table.__dict__
