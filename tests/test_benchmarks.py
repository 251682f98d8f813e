"""Every benchmark runs: each script as a user runs it (``python benchmarks/NAME.py``, a subprocess from the repository
root) at a tiny setting — a few demo images of 64², one epoch, random base weights instead of the demo-pretrained base
(whose pretraining takes minutes on a fresh cache) — and what it writes is checked. A benchmark that breaks fails here.

``search_vs_random.py`` runs once for the module (one search, the base twice, one random draw); ``proxy_vs_trained.py``,
``trained_vs_structure.py``, ``front_proxy.py`` and ``training_budget.py`` read its output, as they do after a real run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from netadapt.testing import TINY_SEARCH, TINY_TRAIN

ROOT = Path(__file__).resolve().parents[1]
BASE_GENOTYPE = ROOT / "examples" / "genotypes" / "mobilenetv2.yaml"
# The demo config with the kit's tiny search and training on top (--set), for the benchmarks that run netadapt.
TINY = [f"{section}.{key}={json.dumps(value)}" for section, values in (("search", TINY_SEARCH), ("train", TINY_TRAIN)) for key, value in values.items()]


def set_flags(overrides: list[str]) -> list[str]:
    return [flag for override in overrides for flag in ("--set", override)]


def run_benchmark(name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python benchmarks/NAME.py ARGS`` from the repository root, one thread; it must exit 0. The jobs' memory check is
    off: these runs fit, and it would measure each new network's training step in processes of its own (~8 s each)."""
    result = subprocess.run(
        [sys.executable, str(Path("benchmarks") / f"{name}.py"), *map(str, args)], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, env=os.environ | {"OMP_NUM_THREADS": "1", "NETADAPT_MEMORY_CHECK": "off"},
    )
    assert result.returncode == 0, f"benchmarks/{name}.py failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision-format MobileNetV2 file of random weights: what ``--weights`` takes."""
    path = tmp_path_factory.mktemp("weights") / "mobilenetv2-random.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def svr(tmp_path_factory: pytest.TempPathFactory, random_weights: Path) -> Path:
    """A finished ``search_vs_random.py`` run: one search (seed 0), one random draw, the base with seeds 0 and 1."""
    out = tmp_path_factory.mktemp("search_vs_random")
    run_benchmark(
        "search_vs_random", "--seeds", "0", "--random", "1", "--no-pruned", "--num-train", "8", "--num-val", "4", "--parallel", "2",
        "--weights", random_weights, "--input-size", "64", *set_flags(TINY), "--out", out,
    )
    return out


# The last wave's search-vs-random study, the scripts that read its runs (proxy, structure, front proxy, training
# budget) and search_quality below: slow (about 90 s together on 2 cores; `pytest -m slow` runs them). Selection's
# benchmark, which superseded them, stays in the default run.
@pytest.mark.slow
def test_search_vs_random(svr: Path) -> None:
    results = json.loads((svr / "results.json").read_text())
    assert [r["name"] for r in results["trained"]] == ["base", "searched-0", "random-0", "base-seed1"]
    assert set(results["groups"]) == {"base", "searched", "random", "base (seed 1)"}
    for row in results["trained"]:
        assert 0 <= row["map"] <= 100 and row["madds"] > 0 and row["params"] > 0, row
    (search,) = results["searches"]
    assert len(search["ops"]) == len(search["alpha_top1_by_layer"]) > 0
    assert 0 < results["agreement_by_chance"] < 1 and results["base_seed_spread_map"] is not None
    assert (svr / "search-0" / "genotype.yaml").is_file() and (svr / "random-0.yaml").is_file()
    # --summary reads the finished steps again: the same trainings.
    run_benchmark("search_vs_random", "--summary", "--out", svr, *set_flags(TINY))
    summary = json.loads((svr / "results.json").read_text())
    assert summary["partial"] is True and summary["trained"] == sorted(results["trained"], key=lambda r: f"train-{r['name']}")


@pytest.mark.slow
def test_proxy_vs_trained(svr: Path) -> None:
    run_benchmark("proxy_vs_trained", svr, *set_flags(TINY))
    results = json.loads((svr / "proxy_vs_trained.json").read_text())
    assert {row["name"] for row in results["rows"]} == {"searched-0", "random-0", "base"}
    assert all(math.isfinite(row["proxy_loss"]) and 0 <= row["proxy_map"] <= 100 for row in results["rows"])
    assert results["budgeted"]["count"] == 2 and results["with_base"]["count"] == 3


@pytest.mark.slow
def test_trained_vs_structure(svr: Path, tmp_path: Path) -> None:
    run_benchmark("trained_vs_structure", svr, "--json", tmp_path / "structure.json")
    results = json.loads((tmp_path / "structure.json").read_text())
    rows = {row["name"].split("/")[-1]: row for row in results["networks"]}
    assert {"base", "searched-0", "random-0"} <= set(rows)
    assert all(rows["base"][key] == 0 for key in ("width", "kernel", "inserted", "removed"))  # the base differs from itself in nothing
    assert rows["base"]["layers"] == 17 and rows["base"]["params"] > 0  # MobileNetV2's 17 inverted residual blocks
    assert set(results["correlations_with_trained_map"]) == {"width", "kernel", "inserted", "removed", "layers", "e6", "params", "madds"}


@pytest.mark.slow
def test_front_proxy(svr: Path, random_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "front_proxy"
    run_benchmark("front_proxy", svr / "search-0", "--points", "1", "--parallel", "2", "--data", svr / "data", "--weights", random_weights,
                  *set_flags(TINY), "--out", out)
    results = json.loads((out / "results.json").read_text())
    assert sorted(row["name"] for row in results["architectures"]) == ["base", "point-1"]
    for row in results["architectures"]:
        assert 0 <= row["trained_map"] <= 100 and math.isfinite(row["proxy_loss"]) and (out / f"train-{row['name']}" / "model.pth").is_file()
    assert set(results["correlations_with_trained_map"]) == {
        "kendall_tau_proxy_map", "kendall_tau_proxy_loss", "spearman_rho_proxy_map", "spearman_rho_proxy_loss"}


@pytest.mark.slow
def test_training_budget(svr: Path, random_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "training_budget"
    run_benchmark("training_budget", f"base={BASE_GENOTYPE}", "--data", svr / "data", "--epochs", "1", "--weights", random_weights,
                  "--input-size", "64", *set_flags([o for o in TINY if o.startswith("train.")]), "--out", out)
    (row,) = json.loads((out / "results.json").read_text())["results"]
    assert row["name"] == "base-1epochs" and row["epochs"] == 1 and row["madds"] > 0 and 0 <= row["map"] <= 100
    records = [json.loads(line) for line in (out / "train-base-1epochs" / "log.jsonl").read_text().splitlines()]
    assert max(record.get("epoch", 0) for record in records) == 1  # --epochs replaced the config's train.epochs


@pytest.mark.slow  # a benchmark's smoke test: the default run's time (README, Tests)
def test_remap_vs_random(tiny_data: Path, random_weights: Path, tmp_path: Path) -> None:
    result = run_benchmark("remap_vs_random", "--seeds", "0", "--epochs", "1", "--input-size", "64", "--batch-size", "4", "--workers", "0",
                           "--data", tiny_data, "--weights", random_weights, "--out", tmp_path / "runs", "--json", tmp_path / "out.json")
    summary = json.loads((tmp_path / "out.json").read_text())
    assert [len(summary["runs"][name]) for name in ("remapped", "random")] == [1, 1]
    assert all(0 <= run["AP"] <= 1 and math.isfinite(run["final_loss"]) for runs in summary["runs"].values() for run in runs)
    assert (tmp_path / "runs" / "remapped-seed0" / "model.pth").is_file() and (tmp_path / "runs" / "random-seed0" / "model.pth").is_file()
    assert result.stdout.count("remapped from") == 1  # the remapped arm only: the random one starts from random initialisation


@pytest.mark.slow
def test_search_quality(tiny_data: Path, random_weights: Path, tmp_path: Path) -> None:
    run_benchmark("search_quality", "--seeds", "0", "--max-epochs", "1", "--search-input-size", "64", "--search-batch-size", "2",
                  "--train-input-size", "64", "--train-batch-size", "4", "--train-epochs", "1", "--workers", "0", "--data", tiny_data,
                  "--weights", random_weights, "--out", tmp_path / "runs", "--json", tmp_path / "quality.json")
    summary = json.loads((tmp_path / "quality.json").read_text())
    assert summary["epochs"] == {"darts": 1, "sampled": 1}
    for strategy in ("darts", "sampled"):
        (run,) = summary["runs"][strategy]
        assert run["iterations"] == 2 and run["madds"] > 0 and 0 <= run["AP"] <= 1, run
        assert (tmp_path / "runs" / f"{strategy}-seed0" / "search" / "genotype.yaml").is_file()


@pytest.mark.slow
def test_search_quality_calibrates(tiny_data: Path, random_weights: Path, tmp_path: Path) -> None:
    """With more than one epoch to choose from, each strategy's seconds per iteration are measured first (~1.5 min)."""
    result = run_benchmark("search_quality", "--seeds", "0", "--max-epochs", "2", "--budget-s", "1", "--search-input-size", "64",
                           "--search-batch-size", "2", "--train-input-size", "64", "--train-batch-size", "4", "--train-epochs", "1",
                           "--workers", "0", "--data", tiny_data, "--weights", random_weights, "--out", tmp_path / "runs")
    assert result.stdout.count("s per weight-only iteration") == 2


@pytest.mark.slow  # a benchmark's smoke test: the default run's time (README, Tests)
def test_score_vs_trained(tiny_data: Path, random_weights: Path, tmp_path: Path) -> None:
    run_benchmark("score_vs_trained", "--data", tiny_data, "--weights", random_weights, "--set", "select.score_images=2",
                  "--set", "select.score_bn_images=4", "--set", "search.input_size=64", "--out", tmp_path / "out", "--json", tmp_path / "score.json")
    result = json.loads((tmp_path / "score.json").read_text())
    rows = {row["name"]: row for row in result["networks"]}
    assert set(rows) == {*(f"random-{n}" for n in range(6)), "base-pruned-depth", "base"}
    assert rows["base"]["score"] == pytest.approx(0.0, abs=1e-9) and rows["base"]["changed_layers"] == 0  # the base keeps itself
    assert all(row["score"] <= 1e-9 and row["changed_layers"] > 0 for name, row in rows.items() if name != "base")
    assert 0 < result["score"]["p_one_sided"] <= 1


def test_select_vs_baselines(random_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "select"
    run_benchmark(
        "select_vs_baselines", "--selections", "1", "--seeds", "1", "--random", "1", "--base-seeds", "1", "--no-preserve", "--no-long", "--no-equal",
        "--num-train", "8", "--num-val", "4", "--weights", random_weights, "--parallel", "2", "--out", out,
        *set_flags([*TINY, "select.rung_epochs=[1]", "select.change_penalties=[]", "select.score_images=2", "select.score_bn_images=4"]),
    )
    summary = json.loads((out / "summary.json").read_text())
    assert {"selected", "base-pruned-depth", "base-pruned-width", "random", "base (1.0x)", "random-sh"} <= set(summary["arms"])
    assert summary["tests"]["selected-pruned"]["pairs"] == 1 and "floor_met" in summary
    assert summary["selections"]["select-0"]["winner"]


def test_remap_preserve(tiny_data: Path, random_weights: Path, tmp_path: Path) -> None:
    run_benchmark("remap_preserve", "--images", "4", "--input-size", "64", "--data", tiny_data, "--weights", random_weights,
                  "--json", tmp_path / "preserve.json")
    errors = json.loads((tmp_path / "preserve.json").read_text())["errors"]
    assert len(errors) == 6
    inserted_preserve = next(e for label, e in errors.items() if label.startswith("inserted") and label.endswith("preserve"))
    inserted_fna = next(e for label, e in errors.items() if label.startswith("inserted") and label.endswith("fna"))
    # preserve inserts identities: the base's function exactly; fna's copied layers change it.
    assert all(value < 1e-5 for value in inserted_preserve["as_remapped"].values())
    assert all(value > 1e-3 for value in inserted_fna["as_remapped"].values())


@pytest.mark.slow  # a benchmark's smoke test: the default run's time (README, Tests)
def test_export_precision(tmp_path: Path) -> None:
    run_benchmark("export_precision", "--detector", "ssdlite", "--formats", "torchscript", "--input-size", "64", "--json", tmp_path / "export.json")
    rows = json.loads((tmp_path / "export.json").read_text())["rows"]
    assert {row["output"] for row in rows} >= {"bbox_regression", "cls_logits"}
    assert all(row["format"] == "torchscript" and row["max_abs_diff"] <= row["allowed"] for row in rows)


def test_input_pipeline(tmp_path: Path) -> None:
    run_benchmark("input_pipeline", "--images", "4", "--input-size", "64", "--batch-size", "2", "--workers", "0", "--batches", "1",
                  "--steps", "1", "--json", tmp_path / "pipeline.json")
    result = json.loads((tmp_path / "pipeline.json").read_text())
    assert result["step_images_per_s"] > 0 and result["workers_needed"] >= 1
    assert set(map(str, result["loader_images_per_s"])) == {"0"} and all(v > 0 for v in result["loader_images_per_s"].values())


@pytest.mark.slow
def test_search_step(tmp_path: Path) -> None:
    """One round of every configuration in its own worker process, then the memory pass: ~3.5 min on 2 loaded cores."""
    run_benchmark("search_step", "--input-size", "64", "--batch-size", "2", "--rounds", "1", "--warmup", "0", "--json", tmp_path / "step.json")
    result = json.loads((tmp_path / "step.json").read_text())
    assert result["rounds"] == 1 and result["time_s"]["base"] and result["time_s"]["darts"]
    assert "darts_time_vs_candidates_sum" in result["ratios"] and set(result["targets"]) <= set(result["ratios"])
