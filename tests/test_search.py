"""The search as users run it: cost term, resume after SIGKILL, torchrun, strategy plugins."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from netadapt import plugins
from netadapt.data.demo import generate_demo_dataset
from netadapt.data.sources import DataSplit
from netadapt.engine.config import SearchConfig
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


def test_a_large_cost_weight_derives_a_cheaper_architecture(tiny_data: Path, tmp_path: Path) -> None:
    cheap = search(tiny_data, tmp_path / "cheap", *_flags(cost_lambda=20.0), "--json")
    free = search(tiny_data, tmp_path / "free", *_flags(cost_lambda=0.0), "--json")
    assert cheap.returncode == 0, cheap.stderr
    assert free.returncode == 0, free.stderr
    cheap_cost, free_cost = json.loads(cheap.stdout)["derived_cost"], json.loads(free.stdout)["derived_cost"]
    assert cheap_cost < 0.8 * free_cost, (cheap_cost, free_cost)
    # The written genotype is the list format, validates and builds.
    genotype = load_genotype(tmp_path / "cheap" / "genotype.yaml")
    plugins.bases().get("mobilenetv2").build(genotype)
    assert genotype.input_size == 96 and genotype.extra["super_depths"] == [1, 4, 4, 4, 4, 4, 1]
    for name in ("alpha_history.csv", "alpha_history.png", "supernet.pth", "log.jsonl", "split.json"):
        assert (tmp_path / "cheap" / name).is_file(), name
    history = (tmp_path / "cheap" / "alpha_history.csv").read_text().splitlines()
    assert history[0] == "epoch,layer,stage,stage_layer,op,probability" and len(history) == 1 + 2 * (20 * 6 + 15)
    split = json.loads((tmp_path / "cheap" / "split.json").read_text())
    assert not set(split["weight_image_ids"]) & set(split["alpha_image_ids"])
    assert len(split["weight_image_ids"]) + len(split["alpha_image_ids"]) == 16



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
