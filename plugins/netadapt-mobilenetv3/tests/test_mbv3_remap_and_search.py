"""Parameter remapping (Section 2.1) and the super network (Eq. 3) on MobileNetV3."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from netadapt import plugins
from netadapt.errors import RemapError
from netadapt.genotype import SKIP, Genotype
from netadapt.remap import remap_network
from netadapt.search.space import default_space_name, load_search_space
from netadapt.testing import assert_remap_fills, assert_remaps, assert_supernet_is_source, randomize_batchnorm

BASE = plugins.bases().get("mobilenetv3")
IMAGES = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def source() -> torch.nn.Module:
    torch.manual_seed(0)
    return randomize_batchnorm(BASE.build(BASE.base_genotype())).eval()


def _ops(genotype: Genotype) -> list[list]:
    return [list(stage.ops) for stage in genotype.stages]


def _remapped(source: torch.nn.Module, ops: list[list]) -> torch.nn.Module:
    target = BASE.build(BASE.base_genotype().with_ops(ops)).eval()
    assert not assert_remap_fills(source, target).ignored  # SE's fc1/fc2 included: every module by a rule
    return target


def test_larger_kernels_keep_the_outputs_and_deeper_stages_copy_the_last_layer(source) -> None:
    # Eq. 2 on every block (assert_remaps); Eq. 1: target layer i of a stage takes source layer min(i, l).
    target = assert_remaps(BASE, BASE.base_genotype().with_ops([stage + [stage[-1]] * 2 for stage in _ops(BASE.base_genotype())]), source=source)
    assert [len(paths) for paths in target.layer_paths] == [3, 4, 5, 6, 4, 5]
    last_source = source.layer_paths[5][-1]  # features.15
    for path in target.layer_paths[5][2:]:
        for key in ("block.0.0.weight", "block.1.1.running_var", "block.2.fc1.weight", "block.2.fc2.bias", "block.3.0.weight"):
            assert torch.equal(target.get_submodule(path).state_dict()[key], source.get_submodule(last_source).state_dict()[key])


def test_narrower_blocks_take_the_first_channels_and_squeeze_with_them(source) -> None:
    ops = _ops(BASE.base_genotype())
    ops[4] = [replace(op, expansion=3) for op in ops[4]]  # 80→112: hidden 480 → 240; 112: 672 → 336
    ops[5] = [ops[5][0], SKIP, ops[5][2]]
    target = _remapped(source, ops)
    block, reference = target.features[11].block, source.features[11].block
    assert block[2].fc1.weight.shape == (64, 240, 1, 1)  # squeeze make_divisible(240 // 4, 8)
    assert torch.equal(block[2].fc1.weight, reference[2].fc1.weight[:64, :240])
    assert torch.equal(block[1][0].weight, reference[1][0].weight[:240])
    assert target.layer_paths[5] == ["features.13", None, "features.15"]


def test_wider_blocks_repeat_the_channels_cyclically_and_change_the_function(source) -> None:
    ops = _ops(BASE.base_genotype())
    ops[3] = [ops[3][0], ops[3][1], replace(ops[3][2], expansion=6), ops[3][3]]  # features.9: k3_e2.3_hs → k3_e6_hs
    target = _remapped(source, ops)
    expand, reference = target.features[9].block[0][0].weight, source.features[9].block[0][0].weight
    assert expand.shape[0] == 480 and reference.shape[0] == 184
    assert torch.equal(expand, reference[torch.arange(480) % 184])  # hidden channel i is source channel i mod 184
    with torch.no_grad():  # the repeated channels feed the projection again: not the base's function
        assert not torch.allclose(target.features[:10](IMAGES), source.features[:10](IMAGES), atol=1e-3)


@pytest.mark.parametrize("change", ["add squeeze-excitation", "drop squeeze-excitation"])
def test_blocks_with_and_without_squeeze_excitation_do_not_correspond(source, change: str) -> None:
    ops = _ops(BASE.base_genotype())
    stage = 1 if change.startswith("add") else 2
    ops[stage] = [replace(op, se=not op.se) for op in ops[stage]]
    with pytest.raises(RemapError, match=r"^target layer 'features\.[234]\.block\.2\.\w+' .* has no counterpart"):
        remap_network(source, BASE.build(BASE.base_genotype().with_ops(ops)))


def test_the_default_space_keeps_each_stages_style_and_computes_its_source_exactly() -> None:
    assert default_space_name("mobilenetv3") == "fna-mobilenetv3"
    space = load_search_space("fna-mobilenetv3")
    assert [op.name for op in space.layer_candidates(2, 1)] == [f"{k}_se" for k in space.candidates] + ["skip"]
    assert [op.name for op in space.layer_candidates(5, 0)] == [f"{k}_se_hs" for k in space.candidates]
    # A source whose searched blocks are all candidates (k3_e6 with the stage's style).
    base = BASE.base_genotype()
    genotype = base.with_ops([ops if s == 0 else [replace(op, expansion=6) for op in ops] for s, ops in enumerate(_ops(base))])
    supernet = assert_supernet_is_source("mobilenetv3", genotype=genotype)
    assert len(supernet.layers) == 20 and supernet.tap_channels == {"stride16": 672, "stride32": 960}
