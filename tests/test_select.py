"""``netadapt select``: the pool under the target, successive halving on held-out training images, resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from netadapt.bases.mobilenetv2 import MobileNetV2
from netadapt.config import SearchConfig
from netadapt.data.demo import generate_demo_dataset
from netadapt.genotype import load_genotype
from netadapt.search.budget import base_ops
from netadapt.search.loop import search_budget
from netadapt.select.pool import Candidate, build_pool, pruned_by_depth, pruned_by_width
from netadapt.select.run import ranked
from netadapt.testing import randomize_batchnorm
from tests.conftest import EXAMPLES

NETADAPT = [shutil.which("netadapt")]
TINY = {
    "search": {"input_size": 64},
    "train": {"input_size": 64, "batch_size": 4, "epochs": 1, "workers": 0, "warmup_iterations": 1, "log_every": 1, "checkpoint_every": 2},
    "select": {"score_bn_images": 8, "score_images": 4, "rung_epochs": [1, 2], "keep_fraction": 0.5, "change_penalties": [0.0, 0.05]},
}


def test_ranking_prefers_the_candidate_that_changes_fewer_layers_within_noise() -> None:
    a, b, c = Candidate("a", "score", [], changed=6), Candidate("b", "baseline", [], changed=3), Candidate("c", "random", [], changed=9)
    scores = {"a": 10.0, "b": 9.5, "c": 7.0}
    assert [x.name for x in ranked([a, b, c], scores, noise=1.0)] == ["b", "a", "c"]  # b is within noise of a: fewer changes wins
    assert [x.name for x in ranked([a, b, c], scores, noise=0.1)] == ["a", "b", "c"]  # outside noise: the score decides
    assert [x.name for x in ranked([a, b, c], scores, noise=5.0)] == ["b", "a", "c"]


@pytest.fixture(scope="module")
def budget():
    return search_budget("mobilenetv2", SearchConfig(input_size=64, target="0.7x"))


def test_the_pool_holds_the_baselines_within_the_target(budget) -> None:
    names = [[op.name for op in layer.candidates] for layer in budget.layers]
    costs = [[layer[n] for n in row] for layer, row in zip(budget.table.costs, names)]
    base = base_ops(budget.base_genotype, budget.layers)
    depth, width = pruned_by_depth(names, base, costs, budget.target), pruned_by_width(names, base, costs, budget.target)
    changed_depth = [(b, d) for b, d in zip(base, depth) if b != d]
    assert changed_depth and all(d == "skip" for _, d in changed_depth)  # only layers dropped
    changed_width = [(b, w) for b, w in zip(base, width) if b != w]
    assert changed_width and all(w == b.replace("e6", "e3") for b, w in changed_width)  # only narrowed, same kernel
    scores = [[0.0 if n == b else -1.0 for n in row] for row, b in zip(names, base)]
    pool = build_pool(names=names, base=base, costs=costs, target=budget.target, score_rows=scores)
    assert [c.name for c in pool[:2]] == ["base-pruned-depth", "base-pruned-width"]  # the base does not fit 0.7x
    assert all(c.cost <= budget.target for c in pool)
    assert len({tuple(c.ops) for c in pool}) == len(pool)  # no candidate twice
    wide = build_pool(names=names, base=base, costs=costs, target=budget.table.cost_of(base), score_rows=scores)
    assert wide[0].name == "base" and wide[0].changed == 0  # the base is in the pool when it fits


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("select")
    data = generate_demo_dataset(root / "data", num_train=16, num_val=4, image_size=64, seed=3)
    torch.manual_seed(0)
    weights = root / "base.pth"
    torch.save(MobileNetV2(load_genotype(EXAMPLES / "genotypes" / "mobilenetv2.yaml")).state_dict(), weights)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    return {"root": root, "data": Path(data), "weights": weights, "config": config}


def _select(run: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [*NETADAPT, "select", "--target", "0.7x", "--data", str(run["data"]), "--weights", str(run["weights"]),
            "--config", str(run["config"]), "--out", str(out), *extra]


@pytest.mark.slow
def test_select_runs_end_to_end_through_the_cli(tiny_run) -> None:
    out = tiny_run["root"] / "out"
    result = subprocess.run([*_select(tiny_run, out), "--json"], capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    selection = json.loads((out / "selection.json").read_text())
    names = [c["name"] for c in selection["pool"]]
    assert names[:2] == ["base-pruned-depth", "base-pruned-width"] and any(n.startswith("score-") for n in names)
    first, second = ([c for c in selection["pool"] if len(c["rungs"]) >= k] for k in (1, 2))
    assert len(first) == len(names) and len(second) == -(-len(names) // 2)  # every candidate, then the best half
    assert selection["winner"] == summary["winner"] and selection["winner"] in [c["name"] for c in second]
    assert selection["winner_is_baseline"] == selection["winner"].startswith("base")
    assert all(c["cost"] <= selection["target"] for c in selection["pool"])
    assert all(c["rungs"][0]["epochs"] == 1 for c in selection["pool"])
    winner = next(c for c in selection["pool"] if c["name"] == selection["winner"])
    assert load_genotype(out / "genotype.yaml") == load_genotype(out / winner["genotype"])
    held_out = json.loads((out / "data" / "val.json").read_text())["images"]
    trained_on = json.loads((out / "data" / "train.json").read_text())["images"]
    assert len(held_out) == 4 and len(trained_on) == 12 and not {i["id"] for i in held_out} & {i["id"] for i in trained_on}
    again = subprocess.run(_select(tiny_run, out), capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr and len(again.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_stopped_selection_resumes_to_the_uninterrupted_result(tiny_run) -> None:
    reference = tiny_run["root"] / "out"
    if not (reference / "selection.json").is_file():
        subprocess.run(_select(tiny_run, reference), check=True, capture_output=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    out = tiny_run["root"] / "stopped"
    process = subprocess.Popen(_select(tiny_run, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ | {"OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300
    while not list((out / "rungs").glob("0-*/result.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "selection.json").exists()
    resumed = subprocess.run([*_select(tiny_run, out), "--resume"], capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr

    def decisions(path: Path) -> dict:
        data = json.loads((path / "selection.json").read_text())
        return {"winner": data["winner"], "pool": [(c["name"], c["ops"], [(r["epochs"], r["map"]) for r in c["rungs"]]) for c in data["pool"]]}

    assert decisions(out) == decisions(reference)


def test_the_score_run_from_the_first_changed_layer_equals_the_score_of_whole_networks(budget, monkeypatch) -> None:
    """The prefix cache (each one-change network run from its first changed layer on the base's kept inputs) is an
    optimisation: it gives the distortions that running every network whole gives."""
    from netadapt.select import score
    from netadapt.weights import Weights

    torch.manual_seed(0)
    base = MobileNetV2(budget.base_genotype, num_classes=10)
    weights = Weights(randomize_batchnorm(base).state_dict(), None, "random")
    images = torch.rand(12, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    # Stage 2 (a dropped and an inserted layer) and stage 6, whose first layer gives the stride-16 tap.
    layers = budget.layers[1:3] + budget.layers[16:18]

    def table() -> list[dict[str, float]]:
        return score.remap_aware_scores(
            base_name="mobilenetv2", weights=weights, base_genotype=budget.base_genotype, skeleton=budget.skeleton, layers=layers,
            space_name="fna", mode="fna", bn_images=images[:8], eval_images=images[8:], key="k", batch_size=4,
        ).distortion

    fast = table()
    monkeypatch.setattr(score._PrefixInputs, "of", classmethod(lambda cls, *args: None))
    whole = table()
    for fast_row, whole_row in zip(fast, whole):
        assert fast_row.keys() == whole_row.keys()
        for op in fast_row:
            assert fast_row[op] == pytest.approx(whole_row[op], rel=1e-4, abs=1e-6), op
    assert any(value > 0 for row in fast for value in row.values())


def test_a_kept_rung_result_stands_only_for_the_training_it_recorded(tmp_path: Path) -> None:
    """A resumed selection whose rung would now train otherwise (here: more epochs) is refused, not answered with the
    old training's mAP; the same rung is answered from its result.json without training again."""
    from netadapt.engine.train import TrainResult
    from netadapt.errors import RunError
    from netadapt.select.run import RungJob, train_rung

    trainings = []

    def fake_training(job: RungJob) -> TrainResult:
        trainings.append(job.name)
        return TrainResult(out_dir=Path(job.out_dir), iterations=3, final_loss=1.0, seconds=1.0, metrics={"AP": 0.25, "AP50": 0.5})

    genotype = load_genotype(EXAMPLES / "genotypes" / "mobilenetv2.yaml").to_dict()
    job = RungJob("base", genotype, "ssdlite", str(tmp_path / "0-base"), str(tmp_path), "w.pth", {"epochs": 3, "lr": 0.002}, "fna", True, None)
    first = train_rung(job, fake_training)
    assert first["map"] == 25.0 and train_rung(job, fake_training) == first and trainings == ["base"]
    longer = RungJob(**{**job.__dict__, "train_config": {"epochs": 4, "lr": 0.002}})
    with pytest.raises(RunError, match=r"0-base/result.json: trained with train.epochs 3, this selection's rung uses 4"):
        train_rung(longer, fake_training)
    preserving = RungJob(**{**job.__dict__, "remap_mode": "preserve"})
    with pytest.raises(RunError, match="another remap mode"):
        train_rung(preserving, fake_training)
    assert trainings == ["base"]


@pytest.mark.parametrize("command", [pytest.param(["select", "--target", "0.7x"], marks=pytest.mark.slow), ["adapt", "--target", "0.7x"]])  # one path: the same check
def test_the_selection_under_torchrun_is_one_line_before_anything_runs(command: list[str], tmp_path: Path) -> None:
    """Every torchrun rank would run the whole selection into one folder: refused, naming the way out, nothing written."""
    from netadapt.testing import run_netadapt

    out = tmp_path / "out"
    result = run_netadapt(*command, "--out", str(out), env={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "not under torchrun" in result.stderr and ("--no-select" in result.stderr) == (command[0] == "adapt")
    assert not out.exists()


def test_side_by_side_rung_workers_each_hold_their_own_gpu(monkeypatch) -> None:
    """--parallel on a machine with GPUs: each worker process sees one GPU of its own (round robin), none on CPU."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from netadapt.select import run

    monkeypatch.setattr(run.torch.cuda, "device_count", lambda: 0)
    assert run.worker_devices(2) == [None, None]
    monkeypatch.setattr(run.torch.cuda, "device_count", lambda: 3)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6,7")
    assert run.worker_devices(4) == ["4", "6", "7", "4"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    context = get_context("spawn")
    devices = context.Queue()
    for device in run.worker_devices(2):
        devices.put(device)
    with ProcessPoolExecutor(max_workers=2, mp_context=context, initializer=run.claim_device, initargs=(devices,)) as pool:
        seen = set(pool.map(_visible_gpus_after_a_pause, range(8)))
    assert {visible for _, visible in seen} == {"0", "1"} and len({pid for pid, _ in seen}) == 2


def _visible_gpus_after_a_pause(_: int) -> tuple[int, str | None]:
    time.sleep(0.2)  # both workers take work
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")
