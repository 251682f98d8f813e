"""benchmarks/search_step.py's pure logic: round order, per-round ratios, their spread and the targets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "search_step.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("search_step_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_configuration_leads_once_per_cycle(bench):
    configs = ["a", "b", "c"]
    orders = [bench.rotation(configs, index) for index in range(4)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


def test_ratios_are_per_round_and_their_spread_is_over_rounds(bench):
    # Round 2 runs everything twice as slow (the load rose): its ratios are those of round 1.
    one = {"base": 1.0, "candidate:x": 1.0, "candidate:y": 2.0, "darts": 3.3, "sampled": 1.2, "sampled:path": 1.0, "fna": 1.1, "fna:path": 1.0}
    two = {name: 2 * value for name, value in one.items()}
    three = one | {"darts": 3.9}
    rounds = [bench.round_ratios(times, ["x", "y"], "time") for times in (one, two, three)]
    assert rounds[0]["darts_time_vs_candidates_sum"] == pytest.approx(1.1)
    assert rounds[1] == pytest.approx(rounds[0])
    summary = bench.summarise(rounds)
    darts = summary["darts_time_vs_candidates_sum"]
    assert (darts["median"], darts["min"], darts["max"]) == pytest.approx((1.1, 1.1, 1.3))
    assert darts["per_round"] == pytest.approx([1.1, 1.1, 1.3])
    verdicts = bench.verdicts(summary | {name: bench.spread([None]) for name in bench.TARGETS if "memory" in name})
    assert verdicts["darts_time_vs_candidates_sum"]["pass"] is True
    assert verdicts["sampled_time_vs_path"]["pass"] is False  # 1.2 > 1.1
    assert verdicts["fna_time_vs_path"]["pass"] is True
    assert verdicts["sampled_memory_vs_base"]["pass"] is None  # memory unavailable


def test_memory_has_no_candidate_sum_and_a_missing_value_gives_none(bench):
    ratios = bench.round_ratios({"base": 100, "darts": 300, "sampled": 120, "sampled:path": None, "fna": 110, "fna:path": 100}, ["x"], "memory")
    assert "darts_memory_vs_candidates_sum" not in ratios
    assert ratios["sampled_memory_vs_base"] == pytest.approx(1.2)
    assert ratios["sampled_memory_vs_path"] is None
    assert bench.spread([1.0, None]) == {"median": None, "min": None, "max": None}


def test_cpu_time_ratios_are_judged_against_the_time_targets(bench):
    times = {"base": 1.0, "candidate:x": 2.0, "darts": 2.5, "sampled": 1.0, "sampled:path": 1.0, "fna": 1.0, "fna:path": 1.0}
    rounds = [bench.round_ratios(times, ["x"], "time") | bench.round_ratios(times, ["x"], "cpu_time")]
    verdicts = bench.verdicts(bench.summarise(rounds) | {name: bench.spread([None]) for name in bench.TARGETS if "memory" in name})
    assert verdicts["darts_cpu_time_vs_candidates_sum"] == {"target": 1.15, "median": 1.25, "max": 1.25, "pass": False}
    assert "sampled_cpu_memory_vs_base" not in verdicts
