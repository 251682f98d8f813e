"""The ``fna`` strategy: FNA's published search loop (single-path weight steps, one all-path α step per
five weight steps, temperature T, α gradient clipping)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from netadapt.config import SearchConfig
from netadapt.data.demo import generate_demo_dataset
from netadapt.data.sources import DataSplit
from netadapt.errors import ConfigError
from netadapt.genotype import parse_op
from netadapt.search.fna import FnaStrategy
from netadapt.search.loop import run_search, strategy_for
from netadapt.search.supernet import ArchitectureParameters, SearchedLayer


def _arch(values: list[list[float]]) -> ArchitectureParameters:
    layers = [SearchedLayer(1, i, f"layer{i}", tuple(parse_op(f"k3_e{e}") for e in range(1, len(v) + 1))) for i, v in enumerate(values)]
    arch = ArchitectureParameters(layers)
    with torch.no_grad():
        for alpha, v in zip(arch.alphas, values):
            alpha.copy_(torch.tensor(v))
    return arch


def test_the_alpha_step_mixes_every_path_at_temperature_t() -> None:
    arch = _arch([[0.0, 1.0, 2.0], [0.5, -0.5, 0.0]])
    weights = FnaStrategy().alpha_step_weights(arch, temperature=0.9, generator=torch.Generator())
    for w, alpha in zip(weights, arch.alphas):
        assert torch.allclose(w, torch.softmax(alpha / 0.9, dim=0))
        assert w.requires_grad


def test_a_weight_step_runs_one_path_per_layer_drawn_from_softmax_alpha_over_t() -> None:
    arch = _arch([[0.0, 1.0, 2.0]])
    generator = torch.Generator().manual_seed(0)
    counts = torch.zeros(3)
    for _ in range(20000):
        (w,) = FnaStrategy().weight_step_weights(arch, temperature=0.5, generator=generator)
        assert sorted(w.tolist()) == [0.0, 0.0, 1.0] and not w.requires_grad
        counts += w
    expected = torch.softmax(torch.tensor([0.0, 1.0, 2.0]) / 0.5, dim=0)
    assert torch.allclose(counts / counts.sum(), expected, atol=0.02), (counts / counts.sum(), expected)  # ±0.02 is > 6σ at 20000 draws


def test_uniform_weight_paths_ignore_alpha() -> None:
    # α that FNA's draw follows almost surely (softmax(α / 0.2) gives the last candidate 1 - 1e-8)
    arch = _arch([[0.0, 0.0, 4.0]])
    generator = torch.Generator().manual_seed(0)
    uniform = strategy_for(SearchConfig(strategy="fna", strategy_options={"weight_paths": "uniform"}))
    counts = sum(uniform.weight_step_weights(arch, temperature=0.2, generator=generator)[0] for _ in range(6000))
    assert torch.allclose(counts / counts.sum(), torch.full((3,), 1 / 3), atol=0.03), counts  # ±0.03 is > 4σ at 6000 draws


def test_the_strategy_checks_its_options() -> None:
    assert strategy_for(SearchConfig(strategy="fna")).weight_steps_per_alpha_step == 5
    assert strategy_for(SearchConfig(strategy="fna", strategy_options={"weight_steps_per_alpha_step": 2})).weight_steps_per_alpha_step == 2
    with pytest.raises(ConfigError, match="strategy_options.every: unknown option of strategy 'fna'"):
        strategy_for(SearchConfig(strategy="fna", strategy_options={"every": 2}))
    with pytest.raises(ConfigError, match="weight_steps_per_alpha_step must be a positive integer"):
        strategy_for(SearchConfig(strategy="fna", strategy_options={"weight_steps_per_alpha_step": 0}))
    with pytest.raises(ConfigError, match="weight_paths must be one of alpha, uniform, got 'fair'"):
        strategy_for(SearchConfig(strategy="fna", strategy_options={"weight_paths": "fair"}))
    with pytest.raises(ConfigError, match="strategy 'darts' takes no options"):
        strategy_for(SearchConfig(strategy="darts", strategy_options={"weight_steps_per_alpha_step": 2}))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("data") / "demo", num_train=48, num_val=4, image_size=64, seed=3)


def test_five_weight_steps_per_alpha_step_from_each_epochs_first(small_data: Path, tmp_path: Path) -> None:
    config = SearchConfig(
        strategy="fna", input_size=64, batch_size=2, epochs=2, alpha_start_epoch=2, workers=0, warmup_iterations=1,
        lr_milestones=[], checkpoint_every=100, log_every=1, alpha_temperature=0.9, alpha_grad_clip=35.0,
    )
    result = run_search(
        base_name="mobilenetv2", detector_name="ssdlite", weights=None, config=config,
        train_split=DataSplit(small_data / "images" / "train", small_data / "train.json"), out_dir=tmp_path, progress=False,
    )
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    weight_steps = [r["iteration"] for r in records if "loss" in r]
    alpha_steps = [r["iteration"] for r in records if "alpha_task_loss" in r]
    assert weight_steps == list(range(1, 25)) and result.iterations == 24  # 24 weight-half images / batch 2, 2 epochs
    assert alpha_steps == [13, 18, 23]  # epoch 2 only (alpha_start_epoch), its weight steps 1, 6 and 11


def test_the_temperature_is_constant_until_alpha_updates_start_then_anneals_to_its_end() -> None:
    from netadapt.search.loop import alpha_temperature

    config = SearchConfig(epochs=10, alpha_start_epoch=3, alpha_temperature=1.0, alpha_temperature_end=0.2)
    temperatures = [alpha_temperature(config, iteration=i, total=100, iterations_per_epoch=10) for i in range(100)]
    assert temperatures[:21] == [1.0] * 21 and temperatures[-1] == pytest.approx(0.2)
    assert all(a > b for a, b in zip(temperatures[20:], temperatures[21:]))
    assert temperatures[60] == pytest.approx(1.0 * 0.2 ** (40 / 79))  # geometric
    constant = SearchConfig(epochs=10, alpha_start_epoch=3, alpha_temperature=0.9)
    assert {alpha_temperature(constant, iteration=i, total=100, iterations_per_epoch=10) for i in range(100)} == {0.9}


@pytest.mark.slow  # over 10 s (two searches): the default run must stay under 10 min on 2 cores
def test_a_search_resumed_at_its_last_checkpoint_reports_what_it_did(small_data: Path, tmp_path: Path) -> None:
    """Killed after its last checkpoint but before its outputs, a search resumed runs no step; its expected cost and
    derived architecture are those of the uninterrupted run (at the final temperature, not the first)."""
    config = SearchConfig(
        strategy="fna", input_size=64, batch_size=2, epochs=2, alpha_start_epoch=1, workers=0, warmup_iterations=1,
        lr_milestones=[], checkpoint_every=100, log_every=1, alpha_lr=0.5, alpha_temperature_end=0.2,
    )
    split = DataSplit(small_data / "images" / "train", small_data / "train.json")
    finished = run_search(base_name="mobilenetv2", detector_name="ssdlite", weights=None, config=config, train_split=split,
                          out_dir=tmp_path, progress=False)
    resumed = run_search(base_name="mobilenetv2", detector_name="ssdlite", weights=None, config=config, train_split=split,
                         out_dir=tmp_path, progress=False, resume=True)
    assert resumed.iterations == finished.iterations == 24
    assert resumed.expected_cost == finished.expected_cost and resumed.genotype.stages == finished.genotype.stages
    assert json.loads((tmp_path / "cost.json").read_text())["expected"] == finished.expected_cost
