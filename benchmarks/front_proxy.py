"""Does the front's proxy rank architectures as training them does? (DESIGN §1.6: check it, do not assume it)

From one finished search (``SEARCH_DIR``, on the demo by default):

1. ``netadapt front SEARCH_DIR --targets ...`` derives one architecture per target with the exact
   constrained derive and scores it with the super network's inherited weights (proxy mAP: the path
   alone, BatchNorm re-estimated, COCO mAP on the α half of the training split);
2. every distinct architecture of the front, and the base network, is trained stand-alone with one
   budget (``netadapt train`` with the config's ``train:`` section — the demo's by default — its backbone
   remapped from the demo-pretrained base) and evaluated on the val split;
3. Kendall's τ-b and Spearman's ρ between each proxy (mAP, and minus the loss) and trained mAP, over those
   architectures (scipy is not needed: both are a few lines here, checked against scipy's documented examples).

Every step is a real ``netadapt`` subprocess; finished steps are kept (``OUT/front/front.json``,
``OUT/train-*/result.json``) and an interrupted training resumes, so a stopped run continues where
it was. A point whose architecture another point already has is trained once.

    python benchmarks/front_proxy.py runs/search                           # the demo's budget: 224², 12 epochs
    python benchmarks/front_proxy.py runs/search --set train.epochs=6 --set train.input_size=160 --parallel 2

It prints and writes (``OUT/results.json``, and ``--json``) per architecture its target, cost,
params, proxy mAP and loss, trained mAP, and the rank correlations.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if not __package__:  # run as ``python benchmarks/front_proxy.py``: the repository root on sys.path for benchmarks.common
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import DEMO_CONFIG, NETADAPT, base_weights, kendall_tau, one_thread, run_netadapt, set_flags, spearman_rho  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("search_dir", type=Path, help="a finished netadapt search")
    parser.add_argument("--points", type=int, default=5, help="netadapt front --points (from the cheapest network to the argmax)")
    parser.add_argument("--targets", default=None, help="netadapt front --targets instead of --points")
    parser.add_argument("--evaluate-on", default="alpha", choices=("alpha", "val"), help="the proxy's images")
    parser.add_argument("--data", type=Path, default=None, help="the search's dataset [default: the demo]")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="its train: section is the training budget")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="passed to netadapt train (train.epochs=6)")
    parser.add_argument("--parallel", type=int, default=1, help="trainings side by side, 1 thread each")
    parser.add_argument("--weights", default=None, help="base weights of the trainings: a file, 'imagenet' or 'none' (default: the demo-pretrained base)")
    parser.add_argument("--out", type=Path, default=Path("runs/front_proxy"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    env = one_thread()
    data = ["--data", str(args.data)] if args.data else []

    front_file = args.out / "front" / "front.json"
    if not front_file.is_file():
        budgets = ["--targets", args.targets] if args.targets else ["--points", str(args.points)]
        run_netadapt([NETADAPT, "front", str(args.search_dir), *budgets, "--evaluate-on", args.evaluate_on, *data,
              "--out", str(args.out / "front"), "--json"], args.out / "front.log", env)
    front = json.loads(front_file.read_text())

    weights = base_weights(args.weights, front["base_network"])
    architectures: dict[tuple[str, ...], dict] = {}  # ops → the first point that has them, and its targets
    for point in ([front["base"]] if front["base"] else []) + front["points"]:
        entry = architectures.setdefault(tuple(point["ops"]), point | {"targets": []})
        entry["targets"].append(point["target_given"] or "base")
    common = ["--config", str(args.config), *data, *set_flags(args.overrides), "--quiet"]
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        trained = list(pool.map(lambda point: _train(point, args, common, weights, env), architectures.values()))

    real = [row["trained_map"] for row in trained]
    correlations = {
        f"{statistic.__name__}_{proxy}": statistic([sign * row[proxy] for row in trained], real)
        for statistic in (kendall_tau, spearman_rho) for proxy, sign in (("proxy_map", 1), ("proxy_loss", -1))
    }
    results = {
        "search": str(args.search_dir), "front": str(front_file), "proxy": front["proxy"], "unit": front["unit"],
        "training": {"config": str(args.config), "overrides": args.overrides, "weights": weights, "evaluated_on": "the val split"},
        "architectures": trained,
        "correlations_with_trained_map": correlations,  # proxy_loss: of minus the loss (lower loss, better)
        "seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(results, indent=2)
    (args.out / "results.json").write_text(text)
    if args.json:
        args.json.write_text(text)
    _print(results)
    return 0


def _train(point: dict, args, common: list[str], weights: str, env: dict) -> dict:
    """Train one architecture (resumed if interrupted); its val metrics are the run's ``metrics.json``, which
    ``netadapt train`` writes once, at the end (its ``--json`` stdout also holds the "Backbone: ... remapped" line)."""
    out = args.out / f"train-{point['name']}"
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    genotype = args.out / "front" / point["genotype"]
    started = time.perf_counter()
    if not (out / "metrics.json").is_file():
        resume = ["--resume"] if (out / "last.pth").is_file() else []
        if out.exists() and not resume:
            shutil.rmtree(out)
        command = [NETADAPT, "train", str(genotype), "--weights", weights, "--out", str(out), *resume, *common]
        with (args.out / f"train-{point['name']}.log").open("w") as log:
            finished = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        if finished.returncode != 0:
            raise RuntimeError(f"netadapt train {genotype} failed ({finished.returncode}): see {log.name}")
    metrics = json.loads((out / "metrics.json").read_text())
    result = {
        "name": point["name"], "targets": point["targets"], "target": point["target"], "predicted": point["predicted"],
        "measured": point["measured"], "params": point["params"], "proxy_map": point["proxy_map"], "proxy_map50": point["proxy_map50"],
        "proxy_loss": point["proxy_loss"], "trained_map": 100 * metrics["AP"], "trained_map50": 100 * metrics["AP50"],
        "train_seconds": round(time.perf_counter() - started, 1), "genotype": str(genotype), "ops": point["ops"],
    }
    done.write_text(json.dumps(result))
    return result


def _print(results: dict) -> None:
    scale = 1e6 if results["unit"] == "MAdds" else 1.0
    print(f"{'architecture':<12} {'targets':<28} {'cost':>9} {'params':>8} {'proxy mAP':>10} {'proxy loss':>11} {'trained mAP':>12} {'(mAP@0.5)':>10}")
    for row in sorted(results["architectures"], key=lambda r: r["predicted"]):
        print(f"{row['name']:<12} {','.join(row['targets']):<28} {row['predicted'] / scale:>8.2f}M {row['params'] / 1e6:>7.2f}M "
              f"{row['proxy_map']:>10.2f} {row['proxy_loss']:>11.3f} {row['trained_map']:>12.2f} {row['trained_map50']:>10.2f}")
    c = results["correlations_with_trained_map"]
    print(f"Against trained mAP over {len(results['architectures'])} architectures: proxy mAP τ-b {c['kendall_tau_proxy_map']:.3f}, "
          f"ρ {c['spearman_rho_proxy_map']:.3f}; proxy loss (lower better) τ-b {c['kendall_tau_proxy_loss']:.3f}, ρ {c['spearman_rho_proxy_loss']:.3f}. "
          f"Proxy on {results['proxy']['evaluated_on']}; {results['seconds']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
