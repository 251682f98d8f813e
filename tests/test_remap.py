"""Parameter remapping (Section 2.1): depth (Eq. 1), kernel (Eq. 2), width, BN, plugins' rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from netadapt import plugins
from netadapt.errors import RemapError
from netadapt.genotype import Op, load_genotype
from netadapt.hookspecs import hookimpl
from netadapt.remap import remap_network
from netadapt.remap.base import remap_base
from netadapt.testing import randomize_batchnorm
from netadapt.weights import Weights, read_weights

BASE = plugins.bases().get("mobilenetv2")


@pytest.fixture
def source(mobilenetv2_yaml: Path) -> nn.Module:
    torch.manual_seed(0)
    network = BASE.build(load_genotype(mobilenetv2_yaml)).eval()
    randomize_batchnorm(network)
    return network


def _remapped(source: nn.Module, ops_per_stage: list[list[Op]]) -> nn.Module:
    target = BASE.build(source.genotype.with_ops(ops_per_stage)).eval()
    remap_network(source, target)
    return target


def _ops(network: nn.Module) -> list[list[Op]]:
    return [list(stage.ops) for stage in network.genotype.stages]


def test_remapping_onto_its_own_genotype_is_exact(source: nn.Module) -> None:
    target = _remapped(source, _ops(source))
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(target(images), source(images))
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


@pytest.mark.parametrize("kernel", [5, 7])
def test_kernel_remap_keeps_the_function(source: nn.Module, kernel: int) -> None:
    ops = [[Op(kernel, op.expansion) for op in ops] if s > 0 else ops for s, ops in enumerate(_ops(source))]
    target = _remapped(source, ops)
    depthwise = target.features[2].conv[1][0]
    assert depthwise.kernel_size == (kernel, kernel)
    # Eq. 2: the 3×3 kernel in the centre, zeros around.
    margin = (kernel - 3) // 2
    centre = depthwise.weight[:, :, margin : margin + 3, margin : margin + 3]
    assert torch.equal(centre, source.features[2].conv[1][0].weight)
    assert depthwise.weight.abs().sum() == centre.abs().sum()
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert (target(images) - source(images)).abs().max() < 1e-5


def test_smaller_kernel_takes_the_centre_crop(source: nn.Module) -> None:
    large = _remapped(source, [[Op(7, op.expansion) for op in ops] for ops in _ops(source)])
    back = _remapped(large, _ops(source))
    assert torch.equal(back.state_dict()["features.5.conv.1.0.weight"], source.state_dict()["features.5.conv.1.0.weight"])


def test_depth_remap_copies_min_i_l(source: nn.Module) -> None:
    ops = _ops(source)
    ops[1] = ops[1] + [Op(3, 6)] * 3  # stage 2 grows from l = 2 to m = 5 layers
    target = _remapped(source, ops)
    source_paths, target_paths = source.layer_paths[1], target.layer_paths[1]
    for i, target_path in enumerate(target_paths):
        source_path = source_paths[min(i, len(source_paths) - 1)]  # f(i) = min(i, l), 0-based here
        source_block, target_block = source.get_submodule(source_path), target.get_submodule(target_path)
        for (name, value), (_, expected) in zip(target_block.state_dict().items(), source_block.state_dict().items()):
            assert torch.equal(value, expected), f"{target_path}.{name}"
    # The layers after the grown stage still come from their own stage.
    assert torch.equal(target.state_dict()["features.20.conv.2.weight"], source.state_dict()["features.17.conv.2.weight"])


def test_skips_do_not_count_as_source_layers(source: nn.Module) -> None:
    ops = _ops(source)
    ops[3] = [ops[3][0], Op(), Op(), Op()]  # stage 4 keeps only its first block
    shallow = _remapped(source, ops)
    deep = _remapped(shallow, _ops(source))
    only = source.features[7].conv[2].weight  # 192 → 64 projection of the stage's only real block
    for path in deep.layer_paths[3]:  # every layer copies it, f(i) = min(i, 1); wider ones repeat channels
        assert torch.equal(deep.get_submodule(path).conv[2].weight[:, :192], only)


def test_width_e6_to_e3_takes_the_first_channels(source: nn.Module) -> None:
    ops = [[Op(op.kernel, 3) if op.expansion == 6 else op for op in ops] for ops in _ops(source)]
    target = _remapped(source, ops)
    src, tgt = source.features[5].conv, target.features[5].conv  # 32 → 192 hidden becomes 96
    hidden = 32 * 3
    assert torch.equal(tgt[0][0].weight, src[0][0].weight[:hidden])  # expand conv out-channels
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(tgt[0][1], name), getattr(src[0][1], name)[:hidden]), name
        assert torch.equal(getattr(tgt[1][1], name), getattr(src[1][1], name)[:hidden]), name
    assert torch.equal(tgt[1][0].weight, src[1][0].weight[:hidden])  # depthwise conv
    assert tgt[1][0].groups == hidden
    assert torch.equal(tgt[2].weight, src[2].weight[:, :hidden])  # projection in-channels
    assert torch.equal(tgt[3].running_var, src[3].running_var)  # projection BN keeps c_out


def test_wider_layer_repeats_channels_cyclically(source: nn.Module) -> None:
    ops = _ops(source)
    ops[1] = [Op(3, 8), Op(3, 6)]
    target = _remapped(source, ops)
    expand_source, expand_target = source.features[2].conv[0][0].weight, target.features[2].conv[0][0].weight
    assert expand_target.shape[0] == 16 * 8
    assert torch.equal(expand_target[96:], expand_source[:32])


def test_paper_genotype_remaps_and_trains(source: nn.Module, paper_yaml: Path) -> None:
    target = BASE.build(load_genotype(paper_yaml)).train()
    report = remap_network(source, target)
    assert len(report.copied) > 100 and not report.ignored
    output = target(torch.randn(2, 3, 320, 320))
    output.logsumexp(dim=1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in target.parameters())


class _CountingBatchNormRule:
    calls = 0

    @staticmethod
    def rule(source_module: nn.Module, target_module: nn.Module) -> None:
        _CountingBatchNormRule.calls += 1
        with torch.no_grad():
            target_module.weight.fill_(7.0)


class _OverridePlugin:
    @staticmethod
    @hookimpl
    def register_remap_rules(register) -> None:
        register(nn.BatchNorm2d, _CountingBatchNormRule.rule, override=True)


def test_a_plugin_overrides_the_batch_norm_rule(source: nn.Module) -> None:
    manager = plugins.get_plugin_manager()
    manager.register(_OverridePlugin, name="test-override")
    try:
        rules = plugins.remap_rules()
        assert rules.owner(nn.BatchNorm2d) == "test-override"
        target = _remapped(source, _ops(source))
    finally:
        manager.unregister(name="test-override")
    batch_norms = [m for m in target.modules() if isinstance(m, nn.BatchNorm2d)]
    assert _CountingBatchNormRule.calls == len(batch_norms)
    assert all(torch.all(m.weight == 7.0) for m in batch_norms)
    assert plugins.remap_rules().owner(nn.BatchNorm2d) == "netadapt.remap.rules"


class _Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_an_unknown_layer_type_is_a_clear_error(source: nn.Module) -> None:
    target = BASE.build(source.genotype)
    target.features[3].conv.append(_Scale())
    with pytest.raises(RemapError, match=r"no remap rule for layer 'features\.3\.conv\.4' of type \S*test_remap\._Scale"):
        remap_network(source, target)


def test_remap_from_a_torchvision_file_and_from_a_checkpoint(tmp_path: Path, paper_yaml: Path) -> None:
    torch.manual_seed(1)
    reference = torchvision.models.mobilenet_v2().eval()
    randomize_batchnorm(reference)
    weights_file = tmp_path / "mobilenet_v2.pth"
    torch.save(reference.state_dict(), weights_file)
    weights = read_weights(weights_file, base_name="mobilenetv2")
    assert weights.genotype is None
    paper = load_genotype(paper_yaml)
    result = remap_base(paper, base_name="mobilenetv2", weights=weights)
    assert torch.equal(result.network.state_dict()["features.0.0.weight"], reference.state_dict()["features.0.0.weight"])
    assert torch.equal(result.network.classifier[1].weight, reference.classifier[1].weight)
    # A checkpoint carries its genotype: remapping it back gives MobileNetV2-shaped weights again.
    from netadapt.weights import save_model_checkpoint

    checkpoint = tmp_path / "paper.pth"
    save_model_checkpoint(checkpoint, base_name="mobilenetv2", genotype=paper, network=result.network, num_classes=1000)
    again = read_weights(checkpoint, base_name="mobilenetv2")
    assert again.genotype == paper
    back = remap_base(BASE.base_genotype(), base_name="mobilenetv2", weights=again)
    assert torch.equal(back.network.features[2].conv[2].weight, reference.features[2].conv[2].weight)


def test_read_weights_errors_name_the_file(tmp_path: Path) -> None:
    from netadapt.errors import WeightsError

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="garbage.pth: not a readable PyTorch weights file"):
        read_weights(garbage, base_name="mobilenetv2")
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.0.weight": torch.zeros(3)}, wrong)
    with pytest.raises(WeightsError, match=r"wrong.pth: weights do not fit the network: \d+ missing keys"):
        remap_base(BASE.base_genotype(), base_name="mobilenetv2", weights=read_weights(wrong, base_name="mobilenetv2"))
    assert isinstance(read_weights(wrong, base_name="mobilenetv2"), Weights)
