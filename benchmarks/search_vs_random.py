"""Does the search beat random architectures of the same cost? (Li & Talwalkar 2019; Yu et al., ICLR 2020)

On the demo, at one hard target (default ``0.7x``: 0.7 times the base network's searched-layer MAdds):

- 3 searches (``netadapt search --target``, seeds 0, 1, 2) with the demo's search config;
- ``--random`` architectures drawn uniformly from the same space under the same target (rejection
  sampling: one op per searched layer uniformly, kept when the cost table says it meets the target);
- the base network (MobileNetV2) and, to measure the noise of training itself, one architecture (the
  base) trained with a second seed;
- a baseline without any search, the base **pruned by depth**: the base's op kept in every layer it has, the
  fewest layers dropped (``skip``) that meet the target, another op only where no skip can (the first layer of a
  stage). The same exact constrained choice (``search.budget.constrained_choice``) with scores base op 0,
  ``skip`` −1, any other op −100 (``--no-pruned`` leaves it out).

Every architecture is trained with the same budget (the demo's ``train:`` section: 224², 12 epochs,
the budget at which the README's base reaches its mAP), its backbone remapped from the same
demo-pretrained base, and evaluated with COCOeval on a validation split larger than the demo's
(``--num-val``, default 400 images). Every step is a real ``netadapt`` subprocess; finished steps are
kept (``OUT/*/result.json``), so a stopped run continues where it was.

    python benchmarks/search_vs_random.py                           # everything, 2 jobs side by side
    python benchmarks/search_vs_random.py --random 6 --parallel 2 --json results.json

It prints and writes (``OUT/results.json``, and ``--json``) per architecture its MAdds, params, mAP and
mAP@0.5, mean ± std per group, and the per-layer agreement of the searched genotypes (chance: the mean
of 1 / candidates over the layers).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from netadapt.cache import cache_root
from netadapt.config import SearchConfig, load_run_config
from netadapt.data.demo import generate_demo_dataset
from netadapt.genotype import Genotype, genotype_from_data, save_genotype
from netadapt.jobs.pretrain import pretrained_demo_base
from netadapt.search.budget import base_ops, constrained_choice
from netadapt.search.cost_table import CostTable
from netadapt.search.derive import choose_ops, derive_genotype
from netadapt.search.front import load_search
from netadapt.search.loop import SearchBudget, search_budget
from netadapt.search.space import SearchSpace, default_space_name
from netadapt.search.supernet import SearchedLayer

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "netadapt" / "configs" / "demo.yaml"
NETADAPT = shutil.which("netadapt") or "netadapt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="0.7x")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="search seeds (none: train the random architectures and the base only)")
    parser.add_argument("--random", type=int, default=6, help="random architectures under the target")
    parser.add_argument("--num-val", type=int, default=400, help="validation images (the demo has 100)")
    parser.add_argument("--parallel", type=int, default=2, help="netadapt processes side by side, 1 thread each")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="search: and train: sections")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="passed to every netadapt command")
    parser.add_argument("--input-size", type=int, default=224, help="the train: section's input size (for the cost column)")
    parser.add_argument("--out", type=Path, default=Path("runs/search_vs_random"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--summary", action="store_true", help="only summarise the steps finished so far")
    parser.add_argument("--no-pruned", dest="pruned", action="store_false", help="leave out the base pruned by depth (no search)")
    args = parser.parse_args(argv)
    if args.summary:
        return _summary_of_finished(args)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    data = args.out / "data"
    if not (data / "val.json").is_file():
        generate_demo_dataset(data, num_train=400, num_val=args.num_val, seed=0)
    weights = pretrained_demo_base("mobilenetv2")
    common = ["--data", str(data), "--config", str(args.config), "--quiet", "--json", *itertools.chain(*(("--set", o) for o in args.overrides))]
    env = os.environ | {"OMP_NUM_THREADS": "1"}

    # The space, the cost table and the target come from the untrained super network (as the search's own
    # preflight does), so the random architectures and the base train while the searches run.
    config = load_run_config(SearchConfig, "search", config_file=args.config, overrides=args.overrides, flags={"target": args.target}, demo=True)
    budget = search_budget("mobilenetv2", config, cache_dir=cache_root() / "cost_tables")
    layers, table, target = budget.layers, budget.table, budget.target
    space_name = config.space or default_space_name("mobilenetv2")
    rng = random.Random(0)
    randoms: list[tuple[str, str, Path, int]] = []
    for number in range(args.random):
        path = args.out / f"random-{number}.yaml"
        ops = _uniform_under(table, layers, target, rng)  # drawn even when kept, so that draw n is the same in every run
        if not path.is_file():
            save_genotype(derive_genotype(budget.skeleton, layers, ops, space_name=space_name), path)
        randoms.append((f"random-{number}", "random", path, 0))
    base = ROOT / "examples" / "genotypes" / "mobilenetv2.yaml"
    pruned = args.out / "base-pruned.yaml"
    if args.pruned and not pruned.is_file():
        save_genotype(derive_genotype(budget.skeleton, layers, _pruned_base(budget), space_name=space_name), pruned)

    def search_then_train(seed: int) -> tuple[dict, dict]:
        search = _search(seed, args, common, weights, env)
        return search, _train(f"searched-{seed}", "searched", args.out / f"search-{seed}" / "genotype.yaml", 0,
                              args=args, common=common, weights=weights, env=env)

    def train(run: tuple[str, str, Path, int]) -> dict:
        return _train(*run, args=args, common=common, weights=weights, env=env)

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        # Base first, then searches and random architectures alternately, so that a run stopped early
        # compares like with like; the base's second seed (the noise of training itself) last.
        jobs: list[tuple[str, Future]] = [("base", pool.submit(train, ("base", "base", base, 0)))]
        for seed, pair in itertools.zip_longest(args.seeds, _pairs(randoms)):
            if seed is not None:
                jobs.append(("search", pool.submit(search_then_train, seed)))
            for run in pair or ():
                jobs.append(("train", pool.submit(train, run)))
        if args.pruned:
            jobs.append(("train", pool.submit(train, ("base-pruned", "base pruned by depth", pruned, 0))))
        jobs.append(("train", pool.submit(train, ("base-seed1", "base (seed 1)", base, 1))))
        searches, trained = [], []
        for kind, job in jobs:
            if kind == "search":
                search, result = job.result()
                searches.append(search)
                trained.append(result)
            else:
                trained.append(job.result())

    results = _results(args, searches, trained, layers, table, target, started)
    _write(results, args)
    return 0


def _write(results: dict, args) -> None:
    text = json.dumps(results, indent=2)
    (args.out / "results.json").write_text(text)
    if args.json:
        args.json.write_text(text)
    _print(results)


def _results(args, searches: list[dict], trained: list[dict], layers: list[SearchedLayer], table: CostTable, target: float, started: float) -> dict:
    agreement, chance = _agreement([s["ops"] for s in searches], layers)
    names = {r["name"] for r in trained}
    return {
        "target": args.target, "target_value": target, "cost_unit": table.unit, "num_val": args.num_val,
        "searches": searches, "trained": trained, "groups": _groups(trained),
        "searched_layer_agreement": agreement, "agreement_by_chance": chance,
        "base_seed_spread_map": abs(_by_name(trained, "base")["map"] - _by_name(trained, "base-seed1")["map"])
        if {"base", "base-seed1"} <= names else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _pairs(runs: list) -> list[list]:
    """``runs`` two by two: the random architectures trained between two searches."""
    return [runs[i:i + 2] for i in range(0, len(runs), 2)]


def _summary_of_finished(args) -> int:
    """``--summary``: the results of the steps finished so far (a run still going, or stopped)."""
    searches = [json.loads(p.read_text()) for p in sorted(args.out.glob("search-*/result.json"))]
    trained = [json.loads(p.read_text()) for p in sorted(args.out.glob("train-*/result.json"))]
    first = torch.load(sorted(args.out.glob("search-*/supernet.pth"))[0], weights_only=True)
    space, skeleton, table = SearchSpace(**first["space"]), genotype_from_data(first["skeleton"]), CostTable(**first["cost_table"])
    target = json.loads(sorted(args.out.glob("search-*/cost.json"))[0].read_text())["target"]
    results = _results(args, searches, trained, _layers(skeleton, space), table, target, time.perf_counter())
    results["seconds"] = None
    results["partial"] = True
    _write(results, args)
    return 0


def _layers(skeleton: Genotype, space: SearchSpace) -> list[SearchedLayer]:
    return [
        SearchedLayer(s, i, "", space.layer_candidates(s, i))
        for s, stage in enumerate(skeleton.stages) if space.is_searched(s) for i in range(len(stage.ops))
    ]


def _pruned_base(budget: SearchBudget) -> list[str]:
    """The base pruned by depth to the budget's target: its op kept wherever it has the layer, the fewest layers
    dropped, another op only where no skip can meet the target (module docstring)."""
    keep = base_ops(budget.base_genotype, budget.layers)
    names = [[op.name for op in layer.candidates] for layer in budget.layers]
    scores = [[0.0 if name == kept else -1.0 if name == "skip" else -100.0 for name in row] for row, kept in zip(names, keep)]
    costs = [[layer_costs[name] for name in row] for layer_costs, row in zip(budget.table.costs, names)]
    return [row[i] for row, i in zip(names, constrained_choice(scores, costs, budget.target))]


def _uniform_under(table: CostTable, layers: list[SearchedLayer], target: float, rng: random.Random) -> list[str]:
    """One op per layer, uniformly, until the table's cost meets the target (uniform over the feasible set)."""
    for _ in range(1_000_000):
        ops = [rng.choice([op.name for op in layer.candidates]) for layer in layers]
        if table.cost_of(ops) <= target:
            return ops
    raise RuntimeError(f"no uniform draw met the target {target} in a million tries")


def _run(command: list[str], log: Path, env: dict) -> dict:
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    log.write_text(result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed ({result.returncode}): {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout)


def _fresh_run(out: Path, command: list[str], log: Path, env: dict) -> dict | None:
    """``None`` when ``out`` holds a finished step (its ``result.json``); else the step run anew into ``out``."""
    if (out / "result.json").is_file():
        return None
    if out.exists():
        shutil.rmtree(out)
    return _run([*command, "--out", str(out)], log, env)


def _search(seed: int, args, common: list[str], weights: Path, env: dict) -> dict:
    out = args.out / f"search-{seed}"
    summary = _fresh_run(out, [
        NETADAPT, "search", "--base", "mobilenetv2", "--detector", "ssdlite", "--weights", str(weights), "--target", args.target,
        "--set", f"search.seed={seed}", *common], args.out / f"search-{seed}.log", env,
    )
    if summary is None:
        return json.loads((out / "result.json").read_text())
    state = torch.load(out / "supernet.pth", weights_only=True)
    alphas = [state["alpha"][f"alphas.{i}"] for i in range(len(state["candidates"]))]
    summary["ops"] = _chosen(out)
    summary["alpha_top1_by_layer"] = [float(torch.softmax(a, 0).max()) for a in alphas]
    (out / "result.json").write_text(json.dumps(summary))
    return summary


def _chosen(search_dir: Path) -> list[str]:
    """The derived op of every searched layer, skips included, as the search derived it (its α, table and target)."""
    search = load_search(search_dir)
    return choose_ops(search.arch, search.table, json.loads((search_dir / "cost.json").read_text())["target"])


def _train(name: str, group: str, genotype: Path, seed: int, *, args, common: list[str], weights: Path, env: dict,
           record: dict | None = None) -> dict:
    """Train ``genotype`` into ``OUT/train-NAME`` unless finished there; its result (``record`` added), kept in ``result.json``."""
    out = args.out / f"train-{name}"
    summary = _fresh_run(out, [NETADAPT, "train", str(genotype), "--weights", str(weights), "--set", f"train.seed={seed}", *common],
                         args.out / f"train-{name}.log", env)
    if summary is None:
        return json.loads((out / "result.json").read_text())
    cost = _run([NETADAPT, "cost", str(genotype), "--detector", "ssdlite", "--input-size", str(args.input_size), "--num-classes", "7", "--json"],
                args.out / f"cost-{name}.log", env)
    result = {
        "name": name, "group": group, "genotype": str(genotype), "seed": seed,
        "map": 100 * summary["metrics"]["AP"], "map50": 100 * summary["metrics"]["AP50"],
        "params": cost.get("params"), "madds": cost.get("madds"), "seconds": summary.get("seconds"), **(record or {}),
    }
    (out / "result.json").write_text(json.dumps(result))
    return result


def _agreement(choices: list[list[str]], layers: list[SearchedLayer]) -> tuple[float, float]:
    """Mean over searched layers and pairs of searches of [same op]; chance: mean of 1 / candidates."""
    pairs = list(itertools.combinations(choices, 2))
    same = [a[i] == b[i] for a, b in pairs for i in range(len(layers))]
    return (sum(same) / len(same) if same else float("nan")), statistics.fmean(1 / len(layer.candidates) for layer in layers)


def _groups(trained: list[dict]) -> dict[str, dict[str, float]]:
    groups: dict[str, dict[str, float]] = {}
    for group in dict.fromkeys(r["group"] for r in trained):
        rows = [r for r in trained if r["group"] == group]
        summary = {"count": len(rows)}
        for key in ("map", "map50", "madds", "params"):
            values = [r[key] for r in rows if r.get(key) is not None]
            if values:
                summary[f"{key}_mean"] = statistics.fmean(values)
                summary[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        groups[group] = summary
    return groups


def _by_name(trained: list[dict], name: str) -> dict:
    return next(r for r in trained if r["name"] == name)


def _print(results: dict) -> None:
    took = f"{results['seconds'] / 60:.0f} min" if results["seconds"] is not None else "partial: the steps finished so far"
    print(f"target {results['target']} = {results['target_value'] / 1e6:.2f}M {results['cost_unit']} (searched layers), "
          f"val images {results['num_val']}, {took}")
    print(f"{'architecture':<14} {'MAdds':>9} {'params':>8} {'mAP':>6} {'mAP@0.5':>8}")
    for r in results["trained"]:
        madds = f"{r['madds'] / 1e6:.1f}M" if r.get("madds") else "-"
        params = f"{r['params'] / 1e6:.2f}M" if r.get("params") else "-"
        print(f"{r['name']:<14} {madds:>9} {params:>8} {r['map']:>6.1f} {r['map50']:>8.1f}")
    for group, g in results["groups"].items():
        print(f"{group:<14} mAP {g['map_mean']:.1f} ± {g['map_std']:.1f}, mAP@0.5 {g['map50_mean']:.1f} ± {g['map50_std']:.1f} (n={g['count']})")
    spread = results["base_seed_spread_map"]
    print(f"per-layer agreement of the searched genotypes {results['searched_layer_agreement']:.2f} "
          f"(chance {results['agreement_by_chance']:.2f}); base trained with 2 seeds differs by "
          + (f"{spread:.1f} mAP" if spread is not None else "(not measured yet)"))


if __name__ == "__main__":
    sys.exit(main())
