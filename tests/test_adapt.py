"""``netadapt adapt``, the whole method in one command, as a user runs it (real subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from netadapt.data.demo import generate_demo_dataset
from netadapt.genotype import load_genotype

NETADAPT = shutil.which("netadapt")
pytestmark = pytest.mark.skipif(NETADAPT is None, reason="the netadapt script is not installed")

TINY_CONFIG = {
    "search": {
        "input_size": 64, "batch_size": 4, "epochs": 2, "alpha_start_epoch": 1, "workers": 0, "warmup_iterations": 1,
        "lr_milestones": [], "checkpoint_every": 2, "log_every": 1, "alpha_lr": 0.05,
    },
    "train": {"input_size": 64, "batch_size": 4, "epochs": 1, "workers": 0, "warmup_iterations": 1, "log_every": 1, "checkpoint_every": 2},
    "select": {"score_bn_images": 4, "score_images": 2, "rung_epochs": [1], "change_penalties": [0.0]},
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("data") / "demo", num_train=8, num_val=4, image_size=64, seed=3)


def adapt(data: Path, out: Path, config: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NETADAPT, "adapt", "--data", str(data), "--weights", "none", "--config", str(config), "--out", str(out), "--quiet", *extra],
        capture_output=True, text=True, timeout=600,
    )


def test_adapt_writes_the_report_and_resumes_by_stage(tiny_data: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_CONFIG))
    out = tmp_path / "run"
    result = adapt(tiny_data, out, config, "--json", "--target", "0.8x")
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads((out / "report.json").read_text())
    assert json.loads(result.stdout)["networks"] == report["networks"]
    rows = {"adapted" if row["name"].startswith("adapted") else "base": row for row in report["networks"]}
    assert len(report["networks"]) == 2 and set(rows) == {"base", "adapted"}
    for row in rows.values():
        assert row["params"] > 0 and row["madds"] > 0
        assert 0.0 <= row["metrics"]["AP"] <= 1.0  # COCOeval ran (-1 would mean no ground truth)
    # Under a target the selection stage ran: the adapted row is its winner, remapped and trained; the search's network
    # was in its pool.
    selection = json.loads((out / "select" / "selection.json").read_text())
    assert report["selection"]["winner"] == selection["winner"]
    pool = [load_genotype(out / "select" / c["genotype"]).to_dict()["stages"] for c in selection["pool"]]
    assert load_genotype(out / "search" / "genotype.yaml").to_dict()["stages"] in pool
    assert rows["adapted"]["genotype"]["stages"] == load_genotype(out / "select" / "genotype.yaml").to_dict()["stages"]
    assert set(report["hours"]) >= {"search", "selection", "final training", "total"}
    assert report["hours"]["total"] >= report["hours"]["search"] + report["hours"]["selection"] + report["hours"]["final training"] - 1e-9
    assert 0 < report["search_cost"]["predicted"] <= report["search_cost"]["target"]  # --target reached the search

    markdown = (out / "report.md").read_text()
    assert "## Table 1" in markdown and "## Table 2" in markdown and "Target (`search.target`)" in markdown
    for stage in ("search", "final training", "total"):
        assert f"| {stage} |" in markdown
    for name in ("search/alpha_history.png", "adapted/model.pth", "base/model.pth"):
        assert (out / name).is_file(), name

    # A finished stage is kept on --resume: the search is not run again.
    before = (out / "search" / "supernet.pth").stat().st_mtime_ns
    resumed = adapt(tiny_data, out, config, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (out / "search" / "supernet.pth").stat().st_mtime_ns == before
    assert "Search: done before" in resumed.stdout


def test_adapt_rejects_a_bad_config_in_one_line_and_writes_nothing(tiny_data: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"search": {"epochs": -1}}))
    result = adapt(tiny_data, tmp_path / "run", config)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "search.epochs" in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


def test_adapt_rejects_a_bad_training_option_before_the_search(tiny_data: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({**TINY_CONFIG, "train": TINY_CONFIG["train"] | {"detector_options": {"nms_thresh": 2.0}}}))
    result = adapt(tiny_data, tmp_path / "run", config)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "nms_thresh must be a number in (0, 1], got 2.0" in result.stderr, result.stderr
    assert not (tmp_path / "run" / "search").exists()


def test_adapt_refuses_an_infeasible_target_before_any_training(tiny_data: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_CONFIG))
    result = adapt(tiny_data, tmp_path / "run", config, "--target", "0.01x")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "below the cheapest network of the search space" in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()
