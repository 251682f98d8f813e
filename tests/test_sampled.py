"""The ``sampled`` strategy: its estimator's α gradients, one path run per layer, determinism, CLI, resume, DDP."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from netadapt import plugins
from netadapt.config import SearchConfig, section_config
from netadapt.data.demo import generate_demo_dataset
from netadapt.errors import ConfigError, NetadaptWarning
from netadapt.search.cost_table import expected_cost
from netadapt.search.darts import DartsStrategy
from netadapt.search.sampled import SampledStrategy
from netadapt.search.space import FNA_SPACE
from netadapt.search.supernet import ArchitectureParameters, build_supernet
from tests.conftest import assert_same_search, kill_at_first_checkpoint, search_alphas, torchrun_search

NETADAPT = shutil.which("netadapt")
TORCHRUN = shutil.which("torchrun")
BASE = plugins.bases().get("mobilenetv2")
TINY = {
    "input_size": 96, "batch_size": 4, "epochs": 2, "alpha_start_epoch": 1, "workers": 0, "warmup_iterations": 1,
    "lr_milestones": [], "checkpoint_every": 2, "log_every": 1, "alpha_lr": 0.05, "strategy": "sampled",
}


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    genotype = BASE.base_genotype()
    return build_supernet("mobilenetv2", FNA_SPACE, BASE.build(genotype), genotype)


def _arch(supernet, layers=None, *, seed: int = 0) -> ArchitectureParameters:
    arch = ArchitectureParameters(layers or supernet.layers, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for alpha in arch.alphas:  # distinct probabilities, so that every gradient term is visible
            alpha.copy_(torch.linspace(-1.0, 1.0, alpha.numel()))
    return arch


class _Calls:
    """Counts the runs of every candidate of every mixed op (a hook on its first part, which
    ``forward`` and ``forward_with_expansion`` both call)."""

    def __init__(self, supernet) -> None:
        self.counts = [[0] * len(mixed.candidates) for mixed in supernet.mixed_ops]
        self.hooks = [
            (op.conv[0] if hasattr(op, "conv") else op).register_forward_hook(self._count(layer, index))
            for layer, mixed in enumerate(supernet.mixed_ops) for index, op in enumerate(mixed.candidates.values())
        ]

    def _count(self, layer: int, index: int):
        def hook(*_) -> None:
            self.counts[layer][index] += 1

        return hook

    def ran(self) -> list[list[int]]:
        return [[index for index, count in enumerate(layer) if count] for layer in self.counts]

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


@pytest.mark.parametrize("k", [1, 2])
def test_a_weight_step_runs_only_the_sampled_candidates(supernet, k: int) -> None:
    weights = SampledStrategy(k).weight_step_weights(_arch(supernet), temperature=1.0, generator=torch.Generator().manual_seed(3))
    chosen = [torch.nonzero(w).flatten().tolist() for w in weights]
    assert all(len(c) == k and torch.equal(w[c], torch.full((k,), 1.0 / k)) and not w.requires_grad for c, w in zip(chosen, weights))
    assert len({tuple(c) for c in chosen}) > 1  # not the same candidate everywhere
    supernet.set_op_weights(weights)
    calls = _Calls(supernet)
    try:
        with torch.no_grad():
            supernet.forward_taps(torch.randn(1, 3, 64, 64))  # the stride-16 tap layer runs forward_with_expansion
    finally:
        calls.remove()
    assert calls.ran() == chosen
    assert all(count <= 1 for layer in calls.counts for count in layer)


def test_darts_still_runs_every_candidate(supernet) -> None:
    supernet.set_op_weights(DartsStrategy().weight_step_weights(_arch(supernet), temperature=1.0, generator=torch.Generator()))
    calls = _Calls(supernet)
    try:
        with torch.no_grad():
            supernet.forward_taps(torch.randn(1, 3, 64, 64))
    finally:
        calls.remove()
    assert calls.counts == [[1] * len(mixed.candidates) for mixed in supernet.mixed_ops]


def test_alpha_gradients_follow_the_straight_through_gumbel_estimator(supernet) -> None:
    """Task loss: ∂L/∂α_j = ⟨g, o_s(x)⟩ · soft_s (δ_sj − soft_j) / T, only the sampled op s runs;
    cost term: ∂/∂α_j Σ_o soft_o c_o = soft_j (c_j − Σ_o soft_o c_o) / T, for every candidate."""
    number = 5  # a layer with skip among its candidates
    layer, mixed = supernet.layers[number], supernet.mixed_ops[number]
    arch, temperature = _arch(supernet, [layer]), 2.0
    generator = torch.Generator().manual_seed(11)
    replay = torch.Generator().manual_seed(11)
    (weights,) = SampledStrategy().alpha_step_weights(arch, temperature=temperature, generator=generator)
    gumbel = -torch.log(-torch.log(torch.rand(len(layer.candidates), generator=replay)))
    soft = torch.softmax(arch.alphas[0].detach() / temperature + gumbel, 0)
    (s,) = torch.nonzero(weights).flatten().tolist()
    assert s == int(soft.argmax()) and weights.requires_grad

    mixed.op_weights = weights
    x = torch.randn(2, mixed.candidates["k3_e3"].conv[0][0].in_channels, 8, 8)
    direction = torch.randn(2, mixed.candidates["k3_e3"].conv[2].out_channels, 8, 8)
    calls = _Calls(supernet)
    try:
        out = mixed(x)
    finally:
        calls.remove()
    assert calls.ran()[number] == [s]
    chosen = list(mixed.candidates.values())[s]
    with torch.no_grad():
        expected_out = chosen(x)
    assert torch.allclose(out, expected_out, atol=1e-6)
    (out * direction).sum().backward(retain_graph=True)  # the cost term below shares soft's graph
    inner = float((direction * expected_out).sum())
    expected = inner * soft[s] * (torch.eye(len(soft))[s] - soft) / temperature
    assert torch.allclose(arch.alphas[0].grad, expected, rtol=1e-4, atol=1e-6)
    assert all(g != 0 for g in arch.alphas[0].grad)  # the unsampled candidates get a gradient too
    for index, op in enumerate(mixed.candidates.values()):
        for parameter in op.parameters():
            assert (parameter.grad is not None) == (index == s)
    for op in mixed.candidates.values():
        op.zero_grad(set_to_none=True)

    arch.alphas[0].grad = None
    costs = torch.arange(1.0, len(soft) + 1)
    cost = expected_cost([weights], [costs])
    assert float(cost.detach()) == pytest.approx(float(costs[s]))  # the forward value is the sampled architecture's cost
    cost.backward()
    assert torch.allclose(arch.alphas[0].grad, soft * (costs - (soft * costs).sum()) / temperature, rtol=1e-4, atol=1e-6)


def test_sampling_is_deterministic_under_a_seed(supernet) -> None:
    arch = _arch(supernet)

    def draw(seed: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        strategy = SampledStrategy()
        steps = [strategy.weight_step_weights(arch, temperature=1.0, generator=generator) for _ in range(3)]
        steps.append(strategy.alpha_step_weights(arch, temperature=1.0, generator=generator))
        return [w.detach() for step in steps for w in step]

    assert all(torch.equal(a, b) for a, b in zip(draw(1), draw(1)))
    assert not all(torch.equal(a, b) for a, b in zip(draw(1), draw(2)))


def test_k_is_an_option_of_the_sampled_strategy(supernet) -> None:
    """``search.strategy_options: {k: 2}``, checked by the strategy; the old core field ``search.sample_k`` still works
    for one version, moved there with a warning that names the new key."""
    config = section_config(SearchConfig, {"search": {"strategy": "sampled", "strategy_options": {"k": 2}}}, "search", source="test")
    strategy = plugins.strategies().get("sampled").for_config(config)
    weights = strategy.alpha_step_weights(_arch(supernet), temperature=1.0, generator=torch.Generator().manual_seed(0))
    for w in weights:  # straight-through k-hot: 1/k on two candidates, exactly 0 elsewhere, differentiable
        assert w.requires_grad and torch.count_nonzero(w) == 2 and torch.allclose(w[w != 0], torch.full((2,), 0.5))
    for bad, message in (({"k": 0}, "search.strategy_options.k must be a positive integer"), ({"kk": 2}, "search.strategy_options.kk: unknown option")):
        with pytest.raises(ConfigError, match=message):
            plugins.strategies().get("sampled").for_config(SearchConfig(strategy="sampled", strategy_options=bad))
    with pytest.warns(NetadaptWarning, match=r"search.sample_k is deprecated .* search.strategy_options: \{k: 3\}"):
        old = section_config(SearchConfig, {"search": {"strategy": "sampled", "sample_k": 3}}, "search", source="old.yaml")
    assert old.strategy_options == {"k": 3} and plugins.strategies().get("sampled").for_config(old).sample_k == 3


# --- the search as users run it ------------------------------------------------------------------

needs_cli = pytest.mark.skipif(NETADAPT is None, reason="the netadapt script is not installed")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("data") / "demo", num_train=16, num_val=4, image_size=96, seed=5)


def _flags(**changes) -> list[str]:
    return [arg for name, value in (TINY | changes).items() for arg in ("--set", f"search.{name}={json.dumps(value)}")]


def _search(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NETADAPT, "search", "--data", str(data), "--weights", "none", "--out", str(out), "--quiet", *extra],
        capture_output=True, text=True, timeout=600,
    )



@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
@needs_cli
def test_a_sampled_search_resumes_after_sigkill_with_the_same_alpha(tiny_data: Path, tmp_path: Path) -> None:
    flags = _flags(epochs=3, checkpoint_every=1)
    straight = _search(tiny_data, tmp_path / "straight", *flags, "--json")
    assert straight.returncode == 0, straight.stderr
    assert json.loads(straight.stdout)["iterations"] == 6
    for name in ("genotype.yaml", "alpha_history.csv", "alpha_history.png", "supernet.pth", "log.jsonl", "split.json"):
        assert (tmp_path / "straight" / name).is_file(), name
    records = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert all("cost_loss" in r for r in records if "loss" in r)  # α steps from epoch 1, with the cost term
    trained = search_alphas(tmp_path / "straight")
    initial = torch.Generator().manual_seed(0)  # ArchitectureParameters' initialisation with search.seed 0
    assert all(not torch.allclose(a, 1e-3 * torch.randn(a.numel(), generator=initial)) for a in trained)

    run = tmp_path / "killed"
    kill_at_first_checkpoint(
        [NETADAPT, "search", "--data", str(tiny_data), "--weights", "none", "--out", str(run), "--quiet", *flags], run
    )
    assert not (run / "genotype.yaml").exists()
    resumed = _search(tiny_data, run, *flags, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_search(tmp_path / "straight", run)


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
@needs_cli
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
def test_torchrun_two_processes_keep_alpha_identical(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    records = torchrun_search(NETADAPT, TORCHRUN, tiny_data, run, _flags(epochs=1))
    assert records[-1] == {"iteration": 1, "world_size": 2, "alpha_identical_across_ranks": True}
    assert [r["iteration"] for r in records if "loss" in r] == [1]  # 8 weight-half images / (2 ranks × 4)
    assert (run / "genotype.yaml").is_file()
