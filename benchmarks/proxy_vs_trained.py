"""Does the front's proxy rank architectures of one budget as training them does? (the trained architectures of
``benchmarks/search_vs_random.py``, scored with a search's inherited weights)

``benchmarks/front_proxy.py`` checks the proxy across budgets (a front's points, whose costs differ); this checks it
where a search has to decide: among architectures of the same budget. It takes a finished
``search_vs_random.py`` run (``SVR_DIR``): its searched and random architectures under the target, each trained
stand-alone with the same budget and evaluated on the val split (``train-*/result.json``), and the base network. Each
one is scored as ``netadapt front`` scores a point (:class:`netadapt.search.front.InheritedScorer`): the super network
of one of its searches (``--search``, default ``search-0``) with that path alone, BatchNorm re-estimated on up to 256
weight-half images, COCO mAP and the loss on the α half. The random architectures' per-layer ops (skips in place) are
drawn again exactly as ``search_vs_random.py`` drew them (same cost table, target and seed) and checked against their
genotype files. It prints and writes (``SVR_DIR/proxy_vs_trained.json``) per architecture its proxy and trained mAP,
and Kendall's τ-b and Spearman's ρ between proxy (mAP, and minus the loss) and trained mAP.

    python benchmarks/proxy_vs_trained.py runs/search_vs_random
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

if not __package__:  # run as ``python benchmarks/proxy_vs_trained.py``: the repository root on sys.path for benchmarks.common
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import DEMO_CONFIG, kendall_tau, spearman_rho  # noqa: E402

from netadapt import jobs  # noqa: E402
from netadapt.config import SearchConfig, SelectConfig, load_run_config  # noqa: E402
from netadapt.genotype import load_genotype  # noqa: E402
from netadapt.search.front import InheritedScorer, load_search  # noqa: E402
from netadapt.select.pool import random_under  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("svr_dir", type=Path, help="a finished benchmarks/search_vs_random.py run")
    parser.add_argument("--search", default="search-0", help="the search whose super network scores every architecture")
    parser.add_argument("--target", default="0.7x", help="search_vs_random.py's --target")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="search_vs_random.py's --config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="search_vs_random.py's --set")
    args = parser.parse_args(argv)

    search = load_search(args.svr_dir / args.search)
    paths = _searched_ops(args.svr_dir)
    paths |= _random_ops(args, search)
    if search.base_ops is not None:
        paths["base"] = search.base_ops
    trained = {result["name"]: result for result in (json.loads(p.read_text()) for p in sorted(args.svr_dir.glob("train-*/result.json")))}
    scorer = InheritedScorer(search, jobs.Data(root=args.svr_dir / "data").splits(), bn_images=256, batch_size=search.config.batch_size)
    rows = []
    for name, ops in paths.items():
        if name not in trained:
            continue
        metrics = scorer.score(ops)
        rows.append({"name": name, "ops": ops, "proxy_map": 100 * metrics["AP"], "proxy_loss": metrics["loss"],
                     "trained_map": trained[name]["map"], "madds": trained[name]["madds"]})
        print(f"{name:<12} proxy mAP {rows[-1]['proxy_map']:5.2f}  proxy loss {metrics['loss']:7.3f}  trained mAP {rows[-1]['trained_map']:5.2f}", flush=True)
    budgeted = [row for row in rows if row["name"] != "base"]
    results = {"scored_with": str(args.svr_dir / args.search), "evaluated_on": scorer.evaluated_on, "rows": rows}
    for label, subset in (("budgeted", budgeted), ("with_base", rows)):
        trained_map = [row["trained_map"] for row in subset]
        results[label] = {
            "count": len(subset),
            "kendall_tau_map": kendall_tau([row["proxy_map"] for row in subset], trained_map),
            "spearman_rho_map": spearman_rho([row["proxy_map"] for row in subset], trained_map),
            "kendall_tau_loss": kendall_tau([-row["proxy_loss"] for row in subset], trained_map),
            "spearman_rho_loss": spearman_rho([-row["proxy_loss"] for row in subset], trained_map),
        }
        r = results[label]
        print(f"{label} ({r['count']} architectures): proxy mAP τ-b {r['kendall_tau_map']:+.2f} ρ {r['spearman_rho_map']:+.2f}; "
              f"−proxy loss τ-b {r['kendall_tau_loss']:+.2f} ρ {r['spearman_rho_loss']:+.2f}")
    (args.svr_dir / "proxy_vs_trained.json").write_text(json.dumps(results, indent=2))
    return 0


def _searched_ops(svr_dir: Path) -> dict[str, list[str]]:
    return {f"searched-{p.parent.name.split('-')[1]}": json.loads(p.read_text())["ops"] for p in sorted(svr_dir.glob("search-*/result.json"))}


def _random_ops(args, search) -> dict[str, list[str]]:
    """The uniform draws of search_vs_random.py, drawn again (same table, target, seed, order), checked against the files."""
    config = load_run_config(SearchConfig, "search", config_file=args.config, overrides=args.overrides, flags={"target": args.target}, demo=True)
    space = jobs.selection_space(None, base="mobilenetv2", config=SelectConfig(target=args.target), search_config=config)
    rng, drawn = random.Random(0), {}
    for number in range(len(list(args.svr_dir.glob("random-*.yaml")))):
        ops = random_under(space.names, space.costs, space.target, rng)
        if search.genotype(ops).stages != load_genotype(args.svr_dir / f"random-{number}.yaml").stages:
            raise SystemExit(f"random-{number}: drawn again, its ops do not give {args.svr_dir / f'random-{number}.yaml'}")
        drawn[f"random-{number}"] = ops
    return drawn


if __name__ == "__main__":
    sys.exit(main())
