"""Does the search beat random architectures of the same cost? (Li & Talwalkar 2019; Yu et al., ICLR 2020)

On the demo, at one hard target (default ``0.7x``: 0.7 times the base network's searched-layer MAdds):

- 3 searches (``netadapt search --target``, seeds 0, 1, 2) with the demo's search config;
- ``--random`` architectures drawn uniformly from the same space under the same target (rejection
  sampling: one op per searched layer uniformly, kept when the cost table says it meets the target);
- the base network (MobileNetV2) and, to measure the noise of training itself, one architecture (the
  base) trained with a second seed;
- a baseline without any search, the base **pruned by depth**: the base's op kept in every layer it has, the
  fewest layers dropped (``skip``) that meet the target, another op only where no skip can (the first layer of a
  stage): ``netadapt.select.pool.pruned_by_depth``, the exact constrained choice with scores base op 0, ``skip`` −1,
  any other op −100 (``--no-pruned`` leaves it out).

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
import random
import statistics
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

if not __package__:  # run as ``python benchmarks/search_vs_random.py``: the repository root on sys.path for benchmarks.common
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import BASE_GENOTYPE, DEMO_CONFIG, NETADAPT, base_weights, fresh_run, one_thread, set_flags, train_step  # noqa: E402

from netadapt import jobs  # noqa: E402
from netadapt.config import SearchConfig, SelectConfig, load_run_config  # noqa: E402
from netadapt.data.demo import generate_demo_dataset  # noqa: E402
from netadapt.genotype import save_genotype  # noqa: E402
from netadapt.search.budget import base_ops  # noqa: E402
from netadapt.search.derive import choose_ops  # noqa: E402
from netadapt.search.front import load_search  # noqa: E402
from netadapt.select.pool import pruned_by_depth, random_under  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="0.7x")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="search seeds (none: train the random architectures and the base only)")
    parser.add_argument("--random", type=int, default=6, help="random architectures under the target")
    parser.add_argument("--num-train", type=int, default=400, help="training images of the generated dataset")
    parser.add_argument("--num-val", type=int, default=400, help="validation images (the demo has 100)")
    parser.add_argument("--weights", default=None, help="base weights: a file, 'imagenet' or 'none' (default: the demo-pretrained base)")
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
        generate_demo_dataset(data, num_train=args.num_train, num_val=args.num_val, seed=0)
    weights = base_weights(args.weights)
    common = ["--data", str(data), "--config", str(args.config), "--quiet", "--json", *set_flags(args.overrides)]
    env = one_thread()

    # The space, the cost table and the target come from the untrained super network (as the search's own
    # preflight does), so the random architectures and the base train while the searches run.
    config = load_run_config(SearchConfig, "search", config_file=args.config, overrides=args.overrides, flags={"target": args.target}, demo=True)
    space = jobs.selection_space(None, base="mobilenetv2", config=SelectConfig(target=args.target), search_config=config)
    rng = random.Random(0)
    randoms: list[tuple[str, str, Path, int]] = []
    for number in range(args.random):
        path = args.out / f"random-{number}.yaml"
        ops = random_under(space.names, space.costs, space.target, rng)  # drawn even when kept, so that draw n is the same in every run
        if not path.is_file():
            save_genotype(space.genotype(ops), path)
        randoms.append((f"random-{number}", "random", path, 0))
    base = BASE_GENOTYPE
    pruned = args.out / "base-pruned.yaml"
    if args.pruned and not pruned.is_file():
        save_genotype(space.genotype(pruned_by_depth(space.names, base_ops(space.base_genotype, space.layers), space.costs, space.target)), pruned)

    def search_then_train(seed: int) -> tuple[dict, dict]:
        search = _search(seed, args, common, weights, env)
        return search, train((f"searched-{seed}", "searched", args.out / f"search-{seed}" / "genotype.yaml", 0))

    def train(run: tuple[str, str, Path, int]) -> dict:
        return train_step(args.out, *run, common=common, weights=weights, env=env, input_size=args.input_size)

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        # Base first, then searches and random architectures alternately, so that a run stopped early
        # compares like with like; the base's second seed (the noise of training itself) last.
        steps: list[tuple[str, Future]] = [("base", pool.submit(train, ("base", "base", base, 0)))]
        for seed, pair in itertools.zip_longest(args.seeds, _pairs(randoms)):
            if seed is not None:
                steps.append(("search", pool.submit(search_then_train, seed)))
            for run in pair or ():
                steps.append(("train", pool.submit(train, run)))
        if args.pruned:
            steps.append(("train", pool.submit(train, ("base-pruned", "base pruned by depth", pruned, 0))))
        steps.append(("train", pool.submit(train, ("base-seed1", "base (seed 1)", base, 1))))
        searches, trained = [], []
        for kind, job in steps:
            if kind == "search":
                search, result = job.result()
                searches.append(search)
                trained.append(result)
            else:
                trained.append(job.result())

    results = _results(args, searches, trained, space.layers, space.table, space.target, started)
    _write(results, args)
    return 0


def _write(results: dict, args) -> None:
    text = json.dumps(results, indent=2)
    (args.out / "results.json").write_text(text)
    if args.json:
        args.json.write_text(text)
    _print(results)


def _results(args, searches: list[dict], trained: list[dict], layers: list, table, target: float, started: float) -> dict:
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
    search = load_search(sorted(args.out.glob("search-*/supernet.pth"))[0].parent)
    target = json.loads(sorted(args.out.glob("search-*/cost.json"))[0].read_text())["target"]
    results = _results(args, searches, trained, search.layers, search.table, target, time.perf_counter())
    results["seconds"] = None
    results["partial"] = True
    _write(results, args)
    return 0


def _search(seed: int, args, common: list[str], weights: str, env: dict) -> dict:
    out = args.out / f"search-{seed}"
    summary = fresh_run(out, [
        NETADAPT, "search", "--base", "mobilenetv2", "--detector", "ssdlite", "--weights", weights, "--target", args.target,
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


def _agreement(choices: list[list[str]], layers: list) -> tuple[float, float]:
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
