"""The super network (Eq. 3) agrees with parameter remapping; cost table, derive, search spaces."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from netadapt import plugins
from netadapt.bases.mobilenetv2 import MobileNetV2Base
from netadapt.config import PACKAGED_CONFIGS, SearchConfig, read_config_file, section_config
from netadapt.errors import ConfigError
from netadapt.genotype import SKIP, Op
from netadapt.hookspecs import hookimpl
from netadapt.remap import remap_network
from netadapt.search.cost_table import build_cost_table, expected_cost
from netadapt.search.derive import derive_genotype
from netadapt.search.space import FNA_SPACE, SearchSpace, default_space_name, load_search_space
from netadapt.search.supernet import ArchitectureParameters, build_supernet
from netadapt.testing import randomize_batchnorm

BASE = plugins.bases().get("mobilenetv2")


@pytest.fixture(scope="module")
def base_and_supernet():
    torch.manual_seed(0)
    genotype = BASE.base_genotype()
    base = BASE.build(genotype).eval()
    randomize_batchnorm(base)
    return genotype, base, build_supernet("mobilenetv2", FNA_SPACE, base, genotype).eval()


def _one_hot(supernet, genotype) -> list[torch.Tensor]:
    """The base's op on the layers the base has, skip on the extra ones."""
    weights = []
    for layer in supernet.layers:
        stage = genotype.stages[layer.stage]
        wanted = stage.ops[layer.layer].name if layer.layer < len(stage.ops) else "skip"
        weights.append(torch.tensor([float(op.name == wanted) for op in layer.candidates]))
    return weights


def test_one_hot_alpha_on_the_base_ops_is_the_remapped_base(base_and_supernet) -> None:
    genotype, base, supernet = base_and_supernet
    remapped = BASE.build(genotype).eval()
    remap_network(base, remapped)
    supernet.set_op_weights(_one_hot(supernet, genotype))
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert (supernet(images) - remapped.features(images).mean((2, 3))).abs().max() < 1e-5
        ours, theirs = supernet.forward_taps(images), remapped.forward_taps(images)
        for name in theirs:
            assert (ours[name] - theirs[name]).abs().max() < 1e-5, name


def test_mixed_op_is_the_weighted_sum_of_its_candidates(base_and_supernet) -> None:
    _, _, supernet = base_and_supernet
    mixed = supernet.mixed_ops[3]
    weights = torch.softmax(torch.randn(len(mixed.candidates)), 0)
    mixed.op_weights = weights
    x = torch.randn(1, mixed.candidates["k3_e6"].conv[0][0].in_channels, 20, 20)
    with torch.no_grad():
        expected = sum(w * op(x) for w, op in zip(weights, mixed.candidates.values()))
        assert torch.allclose(mixed(x), expected, atol=1e-6)
    assert list(mixed.candidates) == ["k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6", "skip"]


def test_candidates_are_remapped_from_the_base(base_and_supernet) -> None:
    genotype, base, supernet = base_and_supernet
    first = supernet.mixed_ops[0]  # stage 2, layer 1 ← base features.2
    source = base.features[2].conv
    assert torch.equal(first.candidates["k3_e6"].conv[1][0].weight, source[1][0].weight)
    assert torch.equal(first.candidates["k7_e6"].conv[1][0].weight[:, :, 2:5, 2:5], source[1][0].weight)  # Eq. 2
    assert torch.equal(first.candidates["k5_e3"].conv[2].weight, source[2].weight[:, :48])  # first channels
    fourth = supernet.mixed_ops[3]  # stage 2, layer 4 ← base layer min(4, 2) = features.3 (Eq. 1)
    assert torch.equal(fourth.candidates["k3_e6"].conv[2].weight, base.features[3].conv[2].weight)


def test_cost_table_and_expected_cost(base_and_supernet, tmp_path: Path) -> None:
    _, _, supernet = base_and_supernet
    table = build_cost_table(supernet, input_size=160, cache_dir=tmp_path)
    layer = table.costs[1]
    assert layer["skip"] == 0 and layer["k3_e3"] < layer["k3_e6"] < layer["k7_e6"] and layer["k3_e3"] < layer["k5_e3"]
    assert len(list(tmp_path.iterdir())) == 1 and build_cost_table(supernet, input_size=160, cache_dir=tmp_path) == table
    arch = ArchitectureParameters(supernet.layers)
    cost = expected_cost(arch.probabilities(), table.tensors())
    cost.backward()
    assert all(alpha.grad is not None and alpha.grad.abs().sum() > 0 for alpha in arch.alphas)
    cheapest = [min(layer, key=layer.get) for layer in table.costs]
    assert table.cost_of(cheapest) < float(cost.detach())


def test_derive_drops_skips_and_builds(base_and_supernet) -> None:
    _, _, supernet = base_and_supernet
    best = [layer.candidates[-1].name for layer in supernet.layers]  # skip wherever it is allowed
    genotype = derive_genotype(supernet.skeleton, supernet.layers, best, space_name="fna")
    assert [stage.depth for stage in genotype.stages] == [1, 1, 1, 1, 1, 1, 1]
    assert genotype.extra["super_depths"] == [1, 4, 4, 4, 4, 4, 1]
    BASE.build(genotype)(torch.randn(1, 3, 64, 64))


def test_a_search_space_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text("depths: [1, 2, 3, 4, 3, 3, 1]\ncandidates: [k3_e3, k5_e6]\nskip: false\n")
    space = load_search_space(path)
    assert space.name == "small" and space.depths == (1, 2, 3, 4, 3, 3, 1)
    assert [op.name for op in space.layer_candidates(1, 1)] == ["k3_e3", "k5_e6"]
    assert space.fingerprint() != FNA_SPACE.fingerprint()
    path.write_text("depths: [1, 2]\ncandidates: [k4_e3]\n")
    with pytest.raises(ConfigError, match=r"small.yaml: candidates, op 1: unknown op 'k4_e3'"):
        load_search_space(path)


class _SpacePlugin:
    @staticmethod
    @hookimpl
    def register_search_spaces(register) -> None:
        register("tiny", SearchSpace(name="tiny", depths=(1, 2, 2, 2, 2, 2, 1), candidates=("k3_e3", "k5_e3")))


def test_a_plugin_search_space_builds_a_super_network(base_and_supernet) -> None:
    genotype, base, _ = base_and_supernet
    manager = plugins.get_plugin_manager()
    manager.register(_SpacePlugin, name="space-plugin")
    try:
        space = load_search_space("tiny")
    finally:
        manager.unregister(name="space-plugin")
    supernet = build_supernet("mobilenetv2", space, base, genotype)
    assert len(supernet.layers) == 10 and all(len(layer.candidates) in (2, 3) for layer in supernet.layers)
    assert supernet.tap_channels == {"stride16": 288, "stride32": 1280}  # the widest candidate is e3


@dataclass(frozen=True)
class _KernelPerStageSpace(SearchSpace):
    """Layers with candidates of their own: k3 in even stages, k5 in odd ones (0-based)."""

    def layer_candidates(self, stage_index: int, layer_index: int) -> tuple[Op, ...]:
        kernel = 5 if stage_index % 2 else 3
        return (Op(kernel, 3), Op(kernel, 6)) + ((SKIP,) if layer_index > 0 else ())


def test_layers_with_candidates_of_their_own_get_their_own_blocks(base_and_supernet) -> None:
    genotype, base, _ = base_and_supernet
    space = _KernelPerStageSpace(name="per-stage", depths=(1, 2, 2, 2, 2, 2, 1), candidates=("k3_e3",))
    supernet = build_supernet("mobilenetv2", space, base, genotype)
    for layer, mixed in zip(supernet.layers, supernet.mixed_ops):
        assert mixed.names == [op.name for op in layer.candidates]
        for op, block in zip(layer.candidates, mixed.candidates.values()):
            if not op.is_skip:
                expand, depthwise = block.conv[0][0], block.conv[1][0]
                assert depthwise.kernel_size == (op.kernel, op.kernel) and expand.out_channels == op.expansion * expand.in_channels


class _BaseWithItsSpace(MobileNetV2Base):
    """A base network whose plugin names a default search space of its own."""

    name = "v2-own-space"
    default_search_space = "own-space"


class _BaseWithItsSpacePlugin:
    @staticmethod
    @hookimpl
    def register_bases(register) -> None:
        register(_BaseWithItsSpace.name, _BaseWithItsSpace())

    @staticmethod
    @hookimpl
    def register_search_spaces(register) -> None:
        register("own-space", SearchSpace(name="own-space", depths=(1, 2, 2, 2, 2, 2, 1), candidates=("k3_e3",)))


@pytest.fixture
def base_with_its_space() -> Iterator[str]:
    manager = plugins.get_plugin_manager()
    manager.register(_BaseWithItsSpacePlugin, name="base-with-its-space")
    try:
        yield _BaseWithItsSpace.name
    finally:
        manager.unregister(name="base-with-its-space")


def test_a_search_uses_the_space_of_the_base_unless_one_is_named(base_with_its_space: str) -> None:
    assert SearchConfig().space is None
    assert default_space_name(base_with_its_space) == "own-space"
    assert load_search_space(default_space_name(base_with_its_space)).depths == (1, 2, 2, 2, 2, 2, 1)
    assert default_space_name("mobilenetv2") == "fna"  # MobileNetV2 has no attribute: the default


@pytest.mark.parametrize("name", sorted(path.name for path in PACKAGED_CONFIGS.glob("*.yaml")))
def test_the_packaged_configs_leave_the_space_to_the_base(name: str, base_with_its_space: str) -> None:
    config = section_config(SearchConfig, read_config_file(PACKAGED_CONFIGS / name), "search", source=name)
    assert (config.space or default_space_name(base_with_its_space)) == "own-space"  # `space: fna` would override it
