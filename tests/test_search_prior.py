"""``search.base_prior``: α starts at the base network (netadapt.search.prior)."""

from __future__ import annotations

import pytest
import torch

from netadapt import plugins
from netadapt.config import SearchConfig, section_config
from netadapt.errors import ConfigError
from netadapt.genotype import parse_op
from netadapt.search.prior import apply_base_prior, prior_ops
from netadapt.search.space import load_search_space
from netadapt.search.supernet import ArchitectureParameters, build_supernet


@pytest.fixture(scope="module")
def supernet():
    base = plugins.bases().get("mobilenetv2")
    genotype = base.base_genotype()
    return build_supernet("mobilenetv2", load_search_space("fna"), base.build(genotype), genotype), genotype


def test_softmax_alpha_gives_the_base_op_the_prior_in_every_searched_layer(supernet) -> None:
    network, genotype = supernet
    arch = ArchitectureParameters(network.layers, generator=torch.Generator().manual_seed(0))
    apply_base_prior(arch, network.layers, genotype, 0.6)
    ops = prior_ops(genotype, network.layers)
    # MobileNetV2 in the fna space (depth 4 per searched stage): its 15 k3_e6 layers (2, 3, 4, 3, 3), skip where it has fewer than 4
    assert ops.count("skip") == 20 - 15 and set(ops) == {"k3_e6", "skip"}
    for probabilities, names, op in zip(arch.probabilities(), arch.candidate_names, ops):
        assert probabilities[names.index(op)].item() == pytest.approx(0.6, abs=1e-3)
        others = [p for name, p in zip(names, probabilities.tolist()) if name != op]
        assert others == pytest.approx([0.4 / len(others)] * len(others), abs=1e-3)


def test_no_prior_leaves_fnas_uniform_start(supernet) -> None:
    network, genotype = supernet
    arch = ArchitectureParameters(network.layers, generator=torch.Generator().manual_seed(0))
    before = [alpha.detach().clone() for alpha in arch.alphas]
    apply_base_prior(arch, network.layers, genotype, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(arch.alphas, before))


def test_a_base_whose_op_is_no_candidate_is_one_error(supernet) -> None:
    network, genotype = supernet
    stages = [list(stage.ops) for stage in genotype.stages]
    stages[2][1] = parse_op("k3_e4")  # stage 3, layer 2: an expansion the fna space does not search
    with pytest.raises(ConfigError, match="search.base_prior: the base network 'mobilenetv2' has an op that is no candidate"):
        prior_ops(genotype.with_ops(stages), network.layers)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_the_prior_is_a_probability_below_one(value: float) -> None:
    with pytest.raises(ConfigError, match=r"search.base_prior must lie in \[0, 1\)"):
        section_config(SearchConfig, {"search": {"base_prior": value}}, "search", source="run.yaml")
