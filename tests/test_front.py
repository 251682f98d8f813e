"""``netadapt front``: every point of a front meets its target, its genotype builds, its cost rises with the target.

One tiny search (96 px, 16 images, untrained weights) serves every test: the proxy mAP of such a
super network is noise, so no test reads its value or its order — only that it was computed.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netadapt import plugins
from netadapt.cli.main import app
from netadapt.config import SearchConfig
from netadapt.data.demo import generate_demo_dataset
from netadapt.detectors.model import DetectorSpec, build_detector
from netadapt.genotype import load_genotype, save_genotype
from netadapt.jobs import resolve_splits
from netadapt.search.budget import cost_range
from netadapt.search.front import compute_front, load_search, resolve_targets, write_front
from netadapt.search.loop import run_search
from tests.conftest import EXAMPLES
from tests.test_search import TINY

NETADAPT = shutil.which("netadapt")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("data") / "demo", num_train=16, num_val=4, image_size=96, seed=5)


@pytest.fixture(scope="module")
def finished_search(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A search over a small space (a YAML file: 3 candidates and skip at MobileNetV2's own depths) keeps the tests fast."""
    folder = tmp_path_factory.mktemp("search")
    space = folder / "small.yaml"
    space.write_text("name: small\ndepths: [1, 2, 3, 4, 3, 3, 1]\ncandidates: [k3_e3, k3_e6, k5_e6]\n")
    out = folder / "run"
    config = SearchConfig(**(TINY | {"epochs": 1, "space": str(space)}))
    run_search(base_name="mobilenetv2", detector_name="ssdlite", weights=None, config=config,
               train_split=resolve_splits(None, tiny_data)["train"], out_dir=out, progress=False)
    return out


def test_every_point_meets_its_target_builds_and_costs_rise_with_the_target(finished_search: Path, tiny_data: Path, tmp_path: Path) -> None:
    search = load_search(finished_search)
    cheapest, _ = cost_range([list(layer.values()) for layer in search.table.costs])
    targets = resolve_targets(search, ["1.0x", f"{cheapest:.0f}", "0.75x"])  # the cheapest network: below any argmax
    assert [given for given, _ in targets] == [f"{cheapest:.0f}", "0.75x", "1.0x"]  # sorted by cost
    front = compute_front(search, targets, resolve_splits(None, tiny_data), bn_images=4)
    paths = write_front(front, tmp_path / "front")
    data = json.loads((tmp_path / "front" / "front.json").read_text())
    assert len(data["points"]) == 3 and data["unit"] == "MAdds" and "α half" in data["proxy"]["evaluated_on"]
    for point, (given, value) in zip(data["points"], targets, strict=True):
        assert point["target_given"] == given and point["target"] == value
        assert point["predicted"] <= value and point["measured"] <= value, point
        assert 0 <= point["proxy_map"] <= 100 and point["params"] > 0
        genotype = load_genotype(tmp_path / "front" / point["genotype"])
        plugins.bases().get("mobilenetv2").build(genotype)
        spec = DetectorSpec("ssdlite", "mobilenetv2", genotype, ["background"] + ["c"] * 6, 96, {"anchors": "fna"})
        assert sum(p.numel() for p in build_detector(spec).parameters()) == point["params"]
    costs = [point["predicted"] for point in data["points"]]
    assert costs == sorted(costs) and costs[0] < costs[-1]
    # The base network is marked: 1.0x is its cost, and its genotype is MobileNetV2.
    assert data["base"]["predicted"] == targets[-1][1] == data["base"]["measured"]
    base = plugins.bases().get("mobilenetv2").base_genotype()
    assert load_genotype(tmp_path / "front" / "base" / "genotype.yaml").stages == base.stages
    rows = list(csv.DictReader((tmp_path / "front" / "front.csv").open()))
    assert [row["name"] for row in rows] == ["base", "point-1", "point-2", "point-3"]
    assert (tmp_path / "front" / "front.png").read_bytes()[:4] == b"\x89PNG" and len(paths) == 3 + 4


def test_points_span_from_above_the_cheapest_network_to_the_argmax(finished_search: Path) -> None:
    search = load_search(finished_search)
    cheapest, _ = cost_range([list(layer.values()) for layer in search.table.costs])
    argmax = search.table.cost_of(search.arch.best_ops())
    values = [value for _, value in resolve_targets(search, points=4)]
    assert len(values) == 4 and values[-1] == argmax
    steps = [b - a for a, b in zip([cheapest, *values], values)]
    assert max(steps) - min(steps) < 1e-6 * argmax and steps[0] > 0
    assert [value for _, value in resolve_targets(search, ["0.5x", "1.0x"])] == [0.5 * search.table.cost_of(search.base_ops), search.table.cost_of(search.base_ops)]


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_the_cli_writes_the_front(finished_search: Path, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    run = subprocess.run(
        [NETADAPT, "front", str(finished_search), "--data", str(tiny_data), "--targets", "1.0x", "--bn-images", "4", "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["out"] == str(out) and len(summary["points"]) == 1
    assert {"target", "predicted", "measured", "params", "proxy_map", "genotype"} <= set(summary["points"][0])
    assert summary == json.loads((out / "front.json").read_text()) | {"out": str(out)}
    for point in summary["points"]:
        assert point["measured"] <= point["target"]
        assert load_genotype(out / point["genotype"]).input_size == 96


@pytest.mark.parametrize(("arguments", "message"), [
    (["--targets", "0.01x"], "--targets 0.01x: "),
    (["--targets", "100x"], "above what any network of the search space costs"),
    (["--points", "3", "--targets", "0.5x"], "--targets and --points: give one of them"),
    (["--points", "0"], "--points must be positive"),
])
def test_bad_budgets_are_one_line_and_nothing_is_written(finished_search: Path, tiny_data: Path, tmp_path: Path, arguments, message) -> None:
    result = CliRunner().invoke(app, ["front", str(finished_search), "--data", str(tiny_data), "--out", str(tmp_path / "never"), *arguments])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "never").exists()


def test_a_folder_that_is_not_a_finished_search_is_one_line(tmp_path: Path, finished_search: Path) -> None:
    result = CliRunner().invoke(app, ["front", str(tmp_path)])
    assert result.exit_code == 2 and "not a finished search (no supernet.pth" in result.output, result.output
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "split.json").write_text((finished_search / "split.json").read_text())
    (unfinished / "supernet.pth").write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(app, ["front", str(unfinished)])
    assert result.exit_code == 2 and "not a readable search result" in result.output, result.output
    assert sorted(path.name for path in unfinished.iterdir()) == ["split.json", "supernet.pth"]  # no front/ written


def test_a_fine_tuned_path_leaves_the_inherited_weights_as_they_were(finished_search: Path, tiny_data: Path) -> None:
    import torch

    from netadapt.search.front import InheritedScorer

    search = load_search(finished_search)
    scorer = InheritedScorer(search, resolve_splits(None, tiny_data), bn_images=4, batch_size=4, finetune_steps=1)
    before = {key: value.clone() for key, value in scorer.detector.state_dict().items()}
    metrics = scorer.score(search.arch.best_ops())
    assert {"AP", "AP50", "loss"} <= set(metrics)
    after = scorer.detector.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_front_checks_its_outputs_and_point_count_before_computing(finished_search: Path, tmp_path: Path) -> None:
    """Issue 24 (items 14, 19): a file as --out and a million points are refused before any point is computed."""
    (tmp_path / "file").write_text("mine\n")
    for arguments, message in [(["--out", str(tmp_path / "file")], "cannot write"), (["--points", "1000000"], "--points must be at most 100")]:
        result = CliRunner().invoke(app, ["front", str(finished_search), "--quiet", *arguments])
        assert result.exit_code == 2 and message in result.output and "point-1:" not in result.output, result.output
    assert (tmp_path / "file").read_text() == "mine\n"


def test_a_smaller_front_removes_the_point_folders_of_a_larger_one(tmp_path: Path) -> None:
    """Issue 24 (item 6): `--points 3` then `--points 2` into one folder leaves no point-3/ to be trained by mistake;
    a folder holding a user's file stays (with a warning), less what netadapt wrote there."""
    from netadapt.errors import NetadaptWarning
    from netadapt.search.front_write import _remove_stale_points

    genotype = load_genotype(EXAMPLES / "genotypes" / "mobilenetv2.yaml")
    for name in ("point-1", "point-2", "point-3", "point-4"):
        save_genotype(genotype, tmp_path / name / "genotype.yaml")
    (tmp_path / "point-4" / "notes.txt").write_text("mine\n")
    with pytest.warns(NetadaptWarning, match="point-4: left in place"):
        _remove_stale_points(tmp_path, keep={"point-1", "point-2"})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["point-1", "point-2", "point-4"]
    assert sorted(path.name for path in (tmp_path / "point-4").iterdir()) == [".netadapt-manifest", "notes.txt"]


@pytest.mark.slow  # two fronts of a real search: about 20 s on 2 cores
def test_front_with_fewer_points_into_the_same_folder_leaves_no_stale_point(finished_search: Path, tiny_data: Path, tmp_path: Path) -> None:
    """Issue 24, item 6, as a user meets it: `--points 3` then `--points 2` into one folder."""
    out = tmp_path / "front"
    for points in ("3", "2"):
        result = CliRunner().invoke(app, ["front", str(finished_search), "--data", str(tiny_data), "--points", points, "--bn-images", "4",
                                          "--quiet", "--out", str(out)])
        assert result.exit_code == 0, result.output
    assert len(json.loads((out / "front.json").read_text())["points"]) == 2
    assert sorted(path.name for path in out.iterdir() if path.is_dir() and path.name != "base") == ["point-1", "point-2"]
