"""The search as users run it: cost term, resume after SIGKILL, torchrun, strategy plugins."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from netadapt import plugins
from netadapt.config import SearchConfig
from netadapt.data.demo import generate_demo_dataset
from netadapt.data.sources import DataSplit
from netadapt.errors import ConfigError
from netadapt.genotype import load_genotype
from netadapt.hookspecs import hookimpl
from netadapt.search.darts import DartsStrategy
from netadapt.search.loop import run_search
from tests.conftest import assert_same_search, kill_at_first_checkpoint, torchrun_search

NETADAPT = shutil.which("netadapt")
TORCHRUN = shutil.which("torchrun")
pytestmark = pytest.mark.skipif(NETADAPT is None, reason="the netadapt script is not installed")

TINY = {
    "input_size": 96, "batch_size": 4, "epochs": 2, "alpha_start_epoch": 1, "workers": 0, "warmup_iterations": 1,
    "lr_milestones": [], "checkpoint_every": 2, "log_every": 1, "alpha_lr": 0.05,
}


def _flags(**changes) -> list[str]:
    return [arg for name, value in (TINY | changes).items() for arg in ("--set", f"search.{name}={json.dumps(value)}")]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("data") / "demo", num_train=16, num_val=4, image_size=96, seed=5)


def search(data: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NETADAPT, "search", "--base", "mobilenetv2", "--detector", "ssdlite", "--data", str(data), "--weights", "none",
         "--out", str(out), "--quiet", *extra],
        capture_output=True, text=True, timeout=600, env=env,
    )


@pytest.mark.slow  # 26 s; the target tests below check the cost side of the search in the default run
def test_a_cost_term_that_dominates_derives_cheap_ops_in_every_layer(tiny_data: Path, tmp_path: Path) -> None:
    """The direction of the cost term, on any CPU: λ = 2000 makes the α gradient of λ · log_τ C about ten
    times the task loss's (measured on this tiny untrained detector: task |∂L/∂α| ≈ 0.2, ∂ln C/∂α ≈ 0.003),
    so under Adam every op cheaper than its layer's mean gains and every dearer one loses at every step,
    whatever float rounding does to the task gradient. The argmax of every layer is then cheaper than
    that layer's mean candidate: a property of the decision, not of noise between close ops."""
    cheap = search(tiny_data, tmp_path / "cheap", *_flags(cost_lambda=2000.0), "--json")
    assert cheap.returncode == 0, cheap.stderr
    summary = json.loads(cheap.stdout)
    state = torch.load(tmp_path / "cheap" / "supernet.pth", weights_only=True)
    table, genotype_ops = state["cost_table"]["costs"], [op for stage in summary["stages"] for op in stage[1]]
    chosen = [max(layer, key=lambda name, i=i: float(state["alpha"][f"alphas.{i}"][list(layer).index(name)])) for i, layer in enumerate(table)]
    for number, (layer, op) in enumerate(zip(table, chosen, strict=True), start=1):
        assert layer[op] < sum(layer.values()) / len(layer), f"searched layer {number} chose {op}: {layer}"
    uniform = sum(sum(layer.values()) / len(layer) for layer in table)
    assert summary["derived_cost"] < 0.8 * uniform, (summary["derived_cost"], uniform)
    assert summary["derived_cost"] == sum(layer[op] for layer, op in zip(table, chosen))
    assert set(genotype_ops) >= {op for op in chosen if op != "skip"}
    # The written genotype is the list format, validates and builds.
    genotype = load_genotype(tmp_path / "cheap" / "genotype.yaml")
    plugins.bases().get("mobilenetv2").build(genotype)
    assert genotype.input_size == 96 and genotype.extra["super_depths"] == [1, 4, 4, 4, 4, 4, 1]
    for name in ("alpha_history.csv", "alpha_history.png", "supernet.pth", "log.jsonl", "split.json", "cost.json"):
        assert (tmp_path / "cheap" / name).is_file(), name
    history = (tmp_path / "cheap" / "alpha_history.csv").read_text().splitlines()
    assert history[0] == "epoch,layer,stage,stage_layer,op,probability" and len(history) == 1 + 2 * (20 * 6 + 15)
    split = json.loads((tmp_path / "cheap" / "split.json").read_text())
    assert not set(split["weight_image_ids"]) & set(split["alpha_image_ids"])
    assert len(split["weight_image_ids"]) + len(split["alpha_image_ids"]) == 16
    # The finished run can be resumed: running into it again needs --resume or --force.
    again = search(tiny_data, tmp_path / "cheap", *_flags(cost_lambda=2000.0))
    assert again.returncode == 2 and "--resume" in again.stderr and "--force" in again.stderr, again.stderr
    forced = search(tiny_data, tmp_path / "cheap", *_flags(epochs=1, split_seed=7), "--force")
    assert forced.returncode == 0, forced.stderr
    assert len((tmp_path / "cheap" / "alpha_history.csv").read_text().splitlines()) == 1 + 20 * 6 + 15
    resplit = json.loads((tmp_path / "cheap" / "split.json").read_text())  # issue 24, item 7: the new run's split, not the old one
    assert resplit["seed"] == 7 and resplit["alpha_image_ids"] != split["alpha_image_ids"]


def test_a_target_bounds_the_derived_network_predicted_and_measured(tiny_data: Path, tmp_path: Path) -> None:
    run = search(tiny_data, tmp_path / "budget", *_flags(), "--target", "30M", "--json")
    assert run.returncode == 0, run.stderr
    cost = json.loads((tmp_path / "budget" / "cost.json").read_text())
    assert cost["target"] == 30e6
    assert cost["predicted"] <= 30e6 and cost["measured"] <= 30e6, cost
    assert json.loads(run.stdout)["target"] == 30e6
    plugins.bases().get("mobilenetv2").build(load_genotype(tmp_path / "budget" / "genotype.yaml"))


@pytest.mark.parametrize(("target", "message"), [
    ("1M", "below the cheapest network of the search space"),
    ("10B", "above what any network of the search space costs"),
    ("lots", "expected a cost such as 250M"),
])
def test_an_infeasible_target_is_one_line_before_anything_is_written(tiny_data: Path, tmp_path: Path, target: str, message: str) -> None:
    run = search(tiny_data, tmp_path / "never", *_flags(), "--target", target)
    assert run.returncode == 2
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not (tmp_path / "never").exists()


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_resume_after_sigkill_gives_the_same_alpha(tiny_data: Path, tmp_path: Path) -> None:
    flags = _flags(epochs=3, checkpoint_every=1)
    straight = search(tiny_data, tmp_path / "straight", *flags)
    assert straight.returncode == 0, straight.stderr
    run = tmp_path / "killed"
    kill_at_first_checkpoint(
        [NETADAPT, "search", "--data", str(tiny_data), "--weights", "none", "--out", str(run), "--quiet", *flags], run
    )
    assert not (run / "genotype.yaml").exists()
    resumed = search(tiny_data, run, *flags, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_search(tmp_path / "straight", run)


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
def test_torchrun_two_processes_keep_alpha_identical(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    records = torchrun_search(NETADAPT, TORCHRUN, tiny_data, run, _flags(epochs=1))
    assert records[-1] == {"iteration": 1, "world_size": 2, "alpha_identical_across_ranks": True}
    assert [r["iteration"] for r in records if "loss" in r] == [1]  # 8 weight-half images / (2 ranks × 4)
    assert (run / "genotype.yaml").is_file()


class _CountingStrategy(DartsStrategy):
    name = "counting"
    weight_calls = 0

    def weight_step_weights(self, arch, *, temperature, generator):
        type(self).weight_calls += 1
        return super().weight_step_weights(arch, temperature=temperature, generator=generator)


class _StrategyPlugin:
    @staticmethod
    @hookimpl
    def register_strategies(register) -> None:
        register(_CountingStrategy.name, _CountingStrategy())


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_a_plugin_strategy_drives_the_search(tiny_data: Path, tmp_path: Path) -> None:
    manager = plugins.get_plugin_manager()
    manager.register(_StrategyPlugin, name="strategy-plugin")
    try:
        config = SearchConfig(**(TINY | {"strategy": "counting", "epochs": 1}))
        result = run_search(
            base_name="mobilenetv2", detector_name="ssdlite", weights=None, config=config,
            train_split=DataSplit(tiny_data / "images" / "train", tiny_data / "train.json"), out_dir=tmp_path, progress=False,
        )
    finally:
        manager.unregister(name="strategy-plugin")
    assert _CountingStrategy.weight_calls == result.iterations == 2


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_a_resumed_search_keeps_its_cost_table(tiny_data: Path, tmp_path: Path) -> None:
    split = DataSplit(tiny_data / "images" / "train", tiny_data / "train.json")
    config = SearchConfig(**(TINY | {"epochs": 1, "cost_model": "params"}))
    cache, run = tmp_path / "cache", tmp_path / "run"
    common = {"base_name": "mobilenetv2", "detector_name": "ssdlite", "weights": None, "train_split": split, "out_dir": run, "progress": False, "cache_dir": cache}
    assert run_search(config=config, stop_after=1, **common) is None
    (cached,) = cache.iterdir()
    started_with = json.loads(cached.read_text())
    # The cached table changes under the run (a measured model, another table file): the resumed run keeps its own.
    cached.write_text(json.dumps(started_with | {"costs": [{op: 1e9 for op in layer} for layer in started_with["costs"]]}))
    with pytest.raises(ConfigError, match=r"search.cost_model is 'madds' but the search started with 'params'"):
        run_search(config=SearchConfig(**(TINY | {"epochs": 1})), resume=True, **common)
    result = run_search(config=config, resume=True, **common)
    assert result is not None and result.iterations == 2
    assert torch.load(run / "supernet.pth", weights_only=True)["cost_table"] == started_with


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_a_search_that_fails_before_its_first_checkpoint_leaves_no_split(tiny_data: Path, tmp_path: Path) -> None:
    """``split.json`` is written with the first checkpoint: a run that fails before it leaves nothing to mistake for a run."""
    run = tmp_path / "failed"
    result = search(tiny_data, run, *_flags(checkpoint_every=100, lr=1e30, optimizer="sgd", warmup_iterations=0))
    assert result.returncode == 2 and "the loss is" in result.stderr, result.stderr
    assert not (run / "split.json").exists() and not (run / "last.pth").exists()


def test_a_target_checked_before_the_run_is_not_resolved_again(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import netadapt.search.loop as loop
    from netadapt.search.preflight import preflight_search

    config = SearchConfig(**(TINY | {"epochs": 1, "target": "0.8x"}))
    budget = preflight_search("mobilenetv2", config, cache_dir=tmp_path / "cache")
    assert budget is not None and budget.base_cost is not None and budget.target == pytest.approx(0.8 * budget.base_cost)

    def resolved_again(*args, **kwargs):
        raise AssertionError("run_search resolved the target preflight_search had resolved")

    monkeypatch.setattr(loop, "base_cost_and_target", resolved_again)
    result = run_search(
        base_name="mobilenetv2", detector_name="ssdlite", weights=None, config=config, budget=budget, cache_dir=tmp_path / "cache",
        train_split=DataSplit(tiny_data / "images" / "train", tiny_data / "train.json"), out_dir=tmp_path / "run", progress=False,
    )
    assert result.target == budget.target and result.cost.predicted <= budget.target
    assert torch.load(tmp_path / "run" / "supernet.pth", weights_only=True)["base_cost"] == budget.base_cost
