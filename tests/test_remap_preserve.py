"""``remap.mode: preserve``: inserted layers start as the identity, narrower layers keep their most important channels."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from netadapt.bases.mobilenetv2 import MobileNetV2
from netadapt.cli.main import app
from netadapt.genotype import genotype_from_data, load_genotype, save_genotype
from netadapt.remap.driver import remap_network
from netadapt.remap.preserve import importance_sorted, inverted_residual_chain
from netadapt.testing import randomize_batchnorm
from tests.conftest import EXAMPLES

BASE = load_genotype(EXAMPLES / "genotypes" / "mobilenetv2.yaml")


def _with_stages(stages: list) -> object:
    return genotype_from_data({"base": "mobilenetv2", "input_size": 224, "stages": stages})


DEEPER = _with_stages([  # only inserts layers: every stage of the base, one or two more k5/k3 layers
    [[32, 16], ["k3_e1"], 1],
    [[16, 24], ["k3_e6", "k3_e6", "k5_e3", "k7_e6"], 2],
    [[24, 32], ["k3_e6", "k3_e6", "k3_e6", "k3_e3"], 2],
    [[32, 64], ["k3_e6", "k3_e6", "k3_e6", "k3_e6"], 2],
    [[64, 96], ["k3_e6", "k3_e6", "k3_e6", "k5_e6"], 1],
    [[96, 160], ["k3_e6", "k3_e6", "k3_e6", "k3_e6"], 2],
    [[160, 320], ["k3_e6"], 1],
])
NARROWER = _with_stages([  # the base with e3 in every layer of stages 3-6 that keeps its shape
    [[32, 16], ["k3_e1"], 1],
    [[16, 24], ["k3_e6", "k3_e6"], 2],
    [[24, 32], ["k3_e6", "k3_e3", "k3_e3"], 2],
    [[32, 64], ["k3_e6", "k3_e3", "k3_e3", "k3_e3"], 2],
    [[64, 96], ["k3_e6", "k3_e3", "k3_e3"], 1],
    [[96, 160], ["k3_e6", "k3_e3", "k3_e3"], 2],
    [[160, 320], ["k3_e6"], 1],
])


def _trained_like_base(seed: int = 0) -> MobileNetV2:
    """A base whose BatchNorms and weights are not at their defaults (so that importance differs between channels)."""
    torch.manual_seed(seed)
    network = MobileNetV2(BASE, num_classes=10)
    randomize_batchnorm(network, seed=seed)
    return network.eval()


def _remapped(source: MobileNetV2, genotype, mode: str) -> tuple[MobileNetV2, object]:
    target = MobileNetV2(genotype, num_classes=10)
    report = remap_network(source, target, mode=mode)
    return target.eval(), report


def test_a_genotype_that_only_inserts_layers_computes_the_base_exactly_under_preserve() -> None:
    source = _trained_like_base()
    images = torch.randn(2, 3, 96, 96)
    target, report = _remapped(source, DEEPER, "preserve")
    assert len(report.identity) == 5 and not report.copied_inserted  # 2 + 1 + 0 + 1 + 1 layers inserted
    with torch.no_grad():
        assert torch.equal(target(images), source(images))
        for name, tap in source.forward_taps(images).items():
            assert torch.equal(target.forward_taps(images)[name], tap)
    fna, fna_report = _remapped(source, DEEPER, "fna")
    assert not fna_report.identity
    with torch.no_grad():
        assert not torch.allclose(fna(images), source(images), atol=1e-3)  # FNA's copies change the function


def test_inserted_identity_layers_are_counted_per_stage() -> None:
    target, report = _remapped(_trained_like_base(), DEEPER, "preserve")
    expected = sum(len(t.ops) - len(b.ops) for t, b in zip(DEEPER.stages, BASE.stages))
    assert len(report.identity) == expected


def test_sorting_hidden_channels_keeps_the_function_and_puts_the_important_first() -> None:
    source = _trained_like_base(seed=1)
    sorted_source, count = importance_sorted(source)
    assert count == 16  # every block with an expansion conv (all but the first)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(sorted_source(images), source(images), rtol=1e-5, atol=1e-5)
    block = [m for m in sorted_source.features[5].modules() if any(True for _ in m.parameters(recurse=False))]
    _, _, _, depthwise_bn, project = inverted_residual_chain(block)
    importance = depthwise_bn.weight.abs() * project.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])
    assert not torch.equal(source.features[5].conv[0][0].weight, sorted_source.features[5].conv[0][0].weight)


def test_narrowing_by_importance_changes_the_output_less_than_first_channels() -> None:
    """Measured on three differently initialised bases, each on its own images: the relative error of the logits."""
    for seed in range(3):
        source = _trained_like_base(seed)
        images = torch.randn(4, 3, 96, 96, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            reference = source(images)
            errors = {}
            for mode in ("fna", "preserve"):
                target, _ = _remapped(source, NARROWER, mode)
                errors[mode] = float((target(images) - reference).norm() / reference.norm())
        assert errors["preserve"] < errors["fna"], (seed, errors)


def test_remap_command_takes_the_mode(tmp_path) -> None:
    genotype = tmp_path / "deeper.yaml"
    save_genotype(DEEPER, genotype)
    weights = tmp_path / "base.pth"
    torch.save(_trained_like_base().state_dict(), weights)
    runner = CliRunner()
    for mode in ("preserve", "fna"):
        out = tmp_path / f"{mode}.pth"
        result = runner.invoke(app, ["remap", str(genotype), "--weights", str(weights), "--mode", mode, "--out", str(out), "--json"])
        assert result.exit_code == 0, result.output
    preserved = torch.load(tmp_path / "preserve.pth", weights_only=True)["state_dict"]
    copied = torch.load(tmp_path / "fna.pth", weights_only=True)["state_dict"]
    # features.4 is stage 2's first inserted layer: its last BatchNorm is zero under preserve, a copy under fna.
    assert torch.count_nonzero(preserved["features.4.conv.3.weight"]) == 0
    assert torch.count_nonzero(copied["features.4.conv.3.weight"]) > 0
    bad = runner.invoke(app, ["remap", str(genotype), "--weights", str(weights), "--mode", "keep", "--out", str(tmp_path / "x.pth")])
    assert bad.exit_code != 0 and "keep" in bad.output


def test_identity_insertion_counts_real_layers_when_the_target_stage_has_skips() -> None:
    """Eq. 1 counts a stage's real blocks: [k3_e6, skip, k3_e6, k5_e6] over the base's two layers inserts one layer."""
    stages = [[stage.to_list()[0], [op.name for op in stage.ops], stage.stride] for stage in BASE.stages]
    stages[1][1] = ["k3_e6", "skip", "k3_e6", "k5_e6"]
    source = _trained_like_base(seed=2)
    target, report = _remapped(source, _with_stages(stages), "preserve")
    assert len(report.identity) == 1
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(target(images), source(images))
