"""The ``latency`` cost model: its look-up table is reused, keyed by device, input and op
structure; a table from elsewhere is read without measuring; a latency-aware search (CLI)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
import torch
from netadapt import plugins
from netadapt.bases.mobilenetv2 import InvertedResidual
from netadapt.cli.main import app
from netadapt.config import SearchConfig
from netadapt.cost import cost_model_for
from netadapt.errors import ConfigError
from netadapt.genotype import load_genotype
from netadapt.jobs.adapt import AdaptReport
from netadapt.search.cost_table import build_cost_table, searched_chains
from netadapt.search.space import load_search_space
from netadapt.search.supernet import build_supernet
from netadapt.testing import TINY_SEARCH, config_flags, run_netadapt
from typer.testing import CliRunner

from netadapt_latency.model import LatencyModel
from netadapt_latency.timing import cpu_threads

SPACE_YAML = "name: tiny\ndepths: [1, 2, 2, 2, 2, 2, 1]\ncandidates: [k3_e3, k7_e6]\n"  # + skip where the shape is kept
# With tiny_data (8 training images): one weight step and one α step per epoch.
TINY = TINY_SEARCH | {"input_size": 96, "epochs": 2, "checkpoint_every": 4, "alpha_lr": 0.05, "cost_options": {"warmup": 1, "repeats": 5}}
LARGE_LAMBDA = 100.0  # the cost term outweighs the task loss in every layer


def _flags(**changes) -> list[str]:
    return config_flags(SearchConfig(**(TINY | changes)))


def _quick(folder: Path, **settings) -> LatencyModel:
    return LatencyModel(**({"warmup": 1, "repeats": 3} | settings), cache_dir=folder)


def _table_file(folder: Path) -> Path:
    (path,) = folder.glob("*.json")
    return path


@pytest.fixture(scope="module")
def space_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(SPACE_YAML)
    return path


@pytest.fixture(scope="module")
def supernet(space_yaml: Path):
    torch.manual_seed(0)
    base = plugins.bases().get("mobilenetv2")
    genotype = base.base_genotype()
    return build_supernet("mobilenetv2", load_search_space(space_yaml), base.build(genotype), genotype).eval()


def test_the_entry_point_registers_the_cost_model() -> None:
    assert isinstance(plugins.cost_models().get("latency"), LatencyModel) and plugins.cost_models().owner("latency") == "latency"
    (info,) = [info for info in plugins.plugin_infos() if info.name == "latency"]
    assert (info.distribution, info.version, info.hooks) == ("netadapt-latency", "0.1.0", ("register_cost_models",))


def test_a_second_run_measures_nothing_and_a_new_input_size_measures_anew(supernet, tmp_path: Path) -> None:
    lut, search_cache = tmp_path / "latency", tmp_path / "cost_tables"
    first = _quick(lut)
    table = build_cost_table(supernet, input_size=64, cost_model=first, cache_dir=search_cache)
    entries = json.loads(_table_file(lut).read_text())["entries"]
    assert first.measured == len(entries) > 0
    assert table.unit == "ms" and all((cost > 0) == (op != "skip") for layer in table.costs for op, cost in layer.items())

    second = _quick(lut)
    assert build_cost_table(supernet, input_size=64, cost_model=second, cache_dir=search_cache) == table
    assert second.measured == 0
    assert not search_cache.exists()  # the look-up table is the cache: the search keeps no stale copy

    larger = _quick(lut)
    build_cost_table(supernet, input_size=96, cost_model=larger, cache_dir=search_cache)
    assert larger.measured == first.measured  # every op again, on its new input shape
    assert len(json.loads(_table_file(lut).read_text())["entries"]) == 2 * len(entries)


def test_an_op_is_keyed_by_structure_not_weights_and_threads_are_restored(tmp_path: Path) -> None:
    block = InvertedResidual(in_channels=24, out_channels=32, stride=2, kernel=5, expansion=6)
    inputs = (torch.zeros(1, 24, 32, 32),)
    one = _quick(tmp_path)
    first = one.measure(block, inputs).total
    same = InvertedResidual(in_channels=24, out_channels=32, stride=2, kernel=5, expansion=6)
    torch.nn.init.normal_(same.conv[0][0].weight)  # other weights, same op
    assert one.measure(same, inputs).total == first and one.measured == 1
    one.measure(InvertedResidual(in_channels=24, out_channels=32, stride=1, kernel=5, expansion=6), inputs)
    assert one.measured == 2  # another stride: another op

    before = torch.get_num_threads()
    two = _quick(tmp_path, threads=before + 1)
    two.measure(block, inputs)
    assert two.measured == 1 and torch.get_num_threads() == before  # the thread count keys the table and is restored
    devices = {json.loads(path.read_text())["device"].rsplit(", ", 1)[1] for path in tmp_path.glob("*.json")}
    assert devices == {"1 thread", f"{before + 1} threads"}  # the default (1 thread) whatever torch's own count is


class InvertedResidualCopy(InvertedResidual):
    """Another class (its own forward could differ) that torch prints as its base's ``InvertedResidual``."""


InvertedResidualCopy.__name__ = InvertedResidualCopy.__qualname__ = "InvertedResidual"


def test_other_timing_settings_another_class_or_plugin_version_measure_anew(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"in_channels": 24, "out_channels": 32, "stride": 2, "kernel": 3, "expansion": 3}
    block, inputs = InvertedResidual(**settings), (torch.zeros(1, 24, 16, 16),)
    _quick(tmp_path).measure(block, inputs)
    more = _quick(tmp_path, repeats=4)
    more.measure(block, inputs)
    assert more.measured == 1  # timed with other settings: not reused
    (entry,) = json.loads(_table_file(tmp_path).read_text())["entries"].values()
    assert (entry["warmup"], entry["repeats"], entry["plugin_version"]) == (1, 4, "0.1.0")
    again = _quick(tmp_path, repeats=4)
    again.measure(block, inputs)
    assert again.measured == 0

    other = _quick(tmp_path, repeats=4)
    other.measure(InvertedResidualCopy(**settings), inputs)
    assert other.measured == 1  # same type name and hyper-parameters, another class: another op
    monkeypatch.setattr("netadapt_latency.model.__version__", "0.2.0")
    newer = _quick(tmp_path, repeats=4)
    newer.measure(block, inputs)
    assert newer.measured == 1  # another version of this plugin may time differently


def test_a_table_from_elsewhere_is_read_without_measuring(supernet, tmp_path: Path) -> None:
    here = _quick(tmp_path / "here")
    measured = build_cost_table(supernet, input_size=64, cost_model=here)
    data = json.loads(_table_file(tmp_path / "here").read_text())
    phone = tmp_path / "phone.json"
    data["device"] = "phone: Snapdragon 8 Gen 2, 1 thread"
    data["entries"] = {key: entry | {"ms": 10 * entry["ms"]} for key, entry in data["entries"].items()}
    phone.write_text(json.dumps(data))

    config = SearchConfig(cost_model="latency", cost_table=str(phone), cost_options={"repeats": 3})
    model = cost_model_for(config)
    table = build_cost_table(supernet, input_size=64, cost_model=model)
    assert model.measured == 0 and not model.measures and "Snapdragon" in model.describe()
    assert [10 * cost for layer in measured.costs for cost in layer.values()] == pytest.approx([cost for layer in table.costs for cost in layer.values()])

    data["entries"].pop(next(iter(data["entries"])))
    phone.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as error:
        build_cost_table(supernet, input_size=64, cost_model=cost_model_for(config))
    message = str(error.value)
    assert message.startswith(f"{phone}: no latency for op InvertedResidual(conv 1×1 ") and "\n" not in message
    with pytest.raises(ConfigError, match="search.cost_options.thread: not a setting of cost model 'latency'"):
        cost_model_for(SearchConfig(cost_model="latency", cost_options={"thread": 2}))


# The search with the latency model, as users run it.


def _search_args(data: Path, out: Path, space: Path, *extra: str) -> list[str]:
    return ["search", "--data", str(data), "--weights", "none", "--out", str(out), "--quiet", "--space", str(space), "--cost", "latency", *extra]


@pytest.fixture(scope="module")
def latency_runs(tiny_data: Path, space_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A large λ measured here (a real ``netadapt`` process), then λ = 0 (in process) on a copy of that
    look-up table passed as a table measured elsewhere; each with a cache folder of its own."""
    root = tmp_path_factory.mktemp("runs")
    cheap = run_netadapt(*_search_args(tiny_data, root / "cheap", space_yaml, *_flags(cost_lambda=LARGE_LAMBDA)),
                         env={"NETADAPT_CACHE": str(root / "cache-here")})
    assert cheap.returncode == 0, cheap.stderr
    board = json.loads(_table_file(root / "cache-here" / "latency").read_text()) | {"device": "an edge board"}
    (root / "board.json").write_text(json.dumps(board))
    free = CliRunner().invoke(
        app, _search_args(tiny_data, root / "free", space_yaml, *_flags(cost_lambda=0.0), "--cost-table", str(root / "board.json"), "--json"),
        env={"NETADAPT_CACHE": str(root / "cache-elsewhere")},
    )
    assert free.exit_code == 0, free.output
    return {"root": root, "cheap": cheap, "free": free, "board": board}


@pytest.mark.slow  # over 10 s: the default run must stay under 10 min on 2 cores
def test_the_cli_search_writes_its_outputs_and_predicted_and_measured_latency(latency_runs: dict) -> None:
    run = latency_runs["root"] / "cheap"
    for name in ("genotype.yaml", "cost.json", "alpha_history.csv", "alpha_history.png", "supernet.pth", "log.jsonl", "split.json"):
        assert (run / name).is_file(), name
    cost = json.loads((run / "cost.json").read_text())
    assert (cost["model"], cost["unit"]) == ("latency", "ms") and cost["predicted"] > 0 and cost["measured"] > 0
    assert "stages 2, 3, 4, 5, 6" in cost["scope"] and "96×96" in cost["scope"] and "1 thread" in cost["source"]
    out = " ".join(latency_runs["cheap"].stdout.split())
    assert f"predicted {cost['predicted']:.3g} ms" in out and f"measured {cost['measured']:.3g} ms" in out

    report = AdaptReport("mobilenetv2", "ssdlite", "demo", 96, "cpu", 1, "none", hours={"search": 0.0, "final training": 0.0, "total": 0.0}, search_cost=cost)
    markdown = report.to_markdown()
    assert f"predicted **{cost['predicted']:.3g} ms**" in markdown and f"measured **{cost['measured']:.3g} ms**" in markdown
    assert report.to_dict()["search_cost"] == cost


@pytest.mark.slow  # shares the CLI searches of latency_runs (11 s): the default run must stay under 10 min
def test_a_table_from_elsewhere_is_used_by_the_search_without_measuring(latency_runs: dict) -> None:
    summary = json.loads(latency_runs["free"].stdout)
    assert summary["cost_model"] == "latency" and summary["measured_cost"] is None and summary["derived_cost"] > 0
    assert not (latency_runs["root"] / "cache-elsewhere" / "latency").exists()  # nothing was measured
    cost = json.loads((latency_runs["root"] / "free" / "cost.json").read_text())
    assert "an edge board" in cost["source"] and cost["measured_how"].startswith("not measured")


@pytest.mark.slow  # shares the CLI searches of latency_runs (11 s): the default run must stay under 10 min
def test_a_missing_op_in_a_given_table_is_one_error_line(latency_runs: dict, tiny_data: Path, space_yaml: Path, tmp_path: Path) -> None:
    board = latency_runs["board"]
    key = next(key for key, entry in board["entries"].items() if entry["op"].startswith("InvertedResidual"))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(board | {"entries": {k: v for k, v in board["entries"].items() if k != key}}))
    result = CliRunner().invoke(app, _search_args(tiny_data, tmp_path / "run", space_yaml, "--cost-table", str(broken), *_flags()))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(broken) in lines[0] and f"no latency for op {board['entries'][key]['op']}" in lines[0], result.output


@pytest.mark.slow  # shares the CLI searches of latency_runs (11 s): the default run must stay under 10 min
def test_a_large_cost_weight_derives_a_network_of_lower_latency(latency_runs: dict, space_yaml: Path) -> None:
    root = latency_runs["root"]
    cheap, free = (json.loads((root / name / "cost.json").read_text()) for name in ("cheap", "free"))
    assert cheap["predicted"] < 0.8 * free["predicted"], (cheap, free)  # entries of the same table (copied to the board file)
    # Measured: both derived networks' searched layers, timed in turns so that load on the machine hits
    # both alike, by this thread's CPU time (one thread: the work is all here), which time spent
    # pre-empted by the machine's other jobs does not count, as wall-clock time would.
    base, space = plugins.bases().get("mobilenetv2"), load_search_space(space_yaml)
    chains = {name: searched_chains(base.build(load_genotype(root / name / "genotype.yaml")), space, 96) for name in ("cheap", "free")}
    times: dict[str, list[float]] = {"cheap": [], "free": []}
    for _ in range(7):
        for name, layers in chains.items():
            times[name].append(_cpu_ms(layers, runs=5))
    assert statistics.median(times["cheap"]) < statistics.median(times["free"]), times


def _cpu_ms(layers: list, *, runs: int) -> float:
    """CPU milliseconds of this thread per forward pass of all ``layers`` (one warm-up pass first)."""
    inputs = [(chain.eval(), torch.zeros(shape)) for chain, shape in layers]
    with torch.no_grad(), cpu_threads(1):
        for chain, x in inputs:
            chain(x)
        start = time.thread_time()
        for _ in range(runs):
            for chain, x in inputs:
                chain(x)
        return 1e3 * (time.thread_time() - start) / runs
