"""Does the remap-aware score rank networks as training does? (issue 21, build item 2: checked before building on it)

The networks are those whose stand-alone trained mAP ``search_vs_random.py`` measured on 2026-12-02 (README, Numbers:
224², 12 epochs from the demo-pretrained base, ``remap.mode: fna``, 400 val images): the 6 random architectures under
0.7x (drawn again here exactly as that script draws them: ``random.Random(0)``, rejection sampling under the target),
the base pruned by depth, and the base. Their genotypes are regenerated, not stored; their trained mAP is the
recorded one (``TRAINED`` below, copied from that run's results). The 3 searched networks and the front's points are
left out: regenerating them needs their searches' α, which are not on this machine.

For each network: the remap-aware score (Σ over searched layers of −distortion, :mod:`netadapt.select.score`) computed
on the training split of the benchmark's data (``generate_demo_dataset(num_train=400, num_val=400, seed=0)``) in the
remap mode given, and the plain count of layers that differ from the base. Printed: Kendall τ-b and Spearman ρ of each
with trained mAP, with the exact one-sided permutation p of τ (all 8! orders).

    python benchmarks/score_vs_trained.py [--mode fna|preserve] [--data runs/select_vs_baselines/data]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from netadapt import jobs
from netadapt.cache import cache_root
from netadapt.config import RemapConfig, SearchConfig, SelectConfig, load_run_config
from netadapt.data.demo import generate_demo_dataset
from netadapt.search.budget import base_ops
from netadapt.select.pool import changed_layers, pruned_by_depth, random_under
from netadapt.select.run import held_out_split, score_table
from netadapt.weights import read_weights

if not __package__:  # run as ``python benchmarks/score_vs_trained.py``: the repository root on sys.path for benchmarks.common
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import DEMO_CONFIG, base_weights, kendall_tau, permutation_p, spearman_rho  # noqa: E402

# Trained mAP (× 100) of search_vs_random.py's run of 2026-12-02 (README, Numbers), in the order drawn.
TRAINED = {"random-0": 5.3, "random-1": 5.0, "random-2": 7.4, "random-3": 9.4, "random-4": 8.8, "random-5": 6.4,
           "base-pruned-depth": 13.9, "base": 18.1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default="fna", choices=("fna", "preserve"))
    parser.add_argument("--data", type=Path, default=Path("runs/select_vs_baselines/data"))
    parser.add_argument("--out", type=Path, default=Path("runs/score_vs_trained"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--weights", default=None, help="base weights: a file or 'imagenet' (default: the demo-pretrained base)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="select.* and search.* settings (select.score_images=8)")
    args = parser.parse_args(argv)
    if not (args.data / "val.json").is_file():
        generate_demo_dataset(args.data, num_train=400, num_val=400, seed=0)
    data = jobs.Data(root=args.data)
    select_config = load_run_config(SelectConfig, "select", config_file=DEMO_CONFIG, overrides=args.overrides, demo=True)
    search_config = load_run_config(SearchConfig, "search", config_file=DEMO_CONFIG, overrides=args.overrides, demo=True, flags={"target": "0.7x"})
    space = jobs.selection_space(None, base="mobilenetv2", config=SelectConfig(target="0.7x"), search_config=search_config)
    weights = read_weights(base_weights(args.weights), base_name="mobilenetv2")
    split = data.splits()["train"]
    args.out.mkdir(parents=True, exist_ok=True)
    root, _, _ = held_out_split(split.annotations, split.images, args.out / "data", fraction=select_config.held_out_fraction, seed=select_config.seed)
    table = score_table(space, weights, root, select_config, RemapConfig(mode=args.mode), cache_root() / "remap_scores", args.out, print)

    names, costs, base = space.names, space.costs, base_ops(space.base_genotype, space.layers)
    rng = random.Random(0)
    networks = {f"random-{n}": random_under(names, costs, space.target, rng) for n in range(6)}
    networks["base-pruned-depth"] = pruned_by_depth(names, base, costs, space.target)
    networks["base"] = list(base)
    rows = [{"name": name, "trained_map": TRAINED[name], "score": table.score_of(ops), "changed_layers": changed_layers(ops, base), "ops": ops}
            for name, ops in networks.items()]
    trained = [r["trained_map"] for r in rows]
    result = {"mode": args.mode, "networks": rows}
    budgeted = [i for i, r in enumerate(rows) if r["name"] != "base"]  # the 0.7x networks alone (the base is 1.0x)
    for key, sign in (("score", 1), ("changed_layers", -1)):
        values = [sign * r[key] for r in rows]
        result[key] = {"kendall_tau_b": kendall_tau(values, trained), "spearman_rho": spearman_rho(values, trained),
                       "p_one_sided": permutation_p(values, trained)}
        x, y = [values[i] for i in budgeted], [trained[i] for i in budgeted]
        result[key] |= {"budgeted_kendall_tau_b": kendall_tau(x, y), "budgeted_spearman_rho": spearman_rho(x, y), "budgeted_p_one_sided": permutation_p(x, y)}
    print(f"{'network':<18} {'trained mAP':>11} {'score':>9} {'changed':>8}")
    for r in rows:
        print(f"{r['name']:<18} {r['trained_map']:>11.1f} {r['score']:>9.3f} {r['changed_layers']:>8}")
    for key, label in (("score", "remap-aware score"), ("changed_layers", "−(changed layers)")):
        s = result[key]
        print(f"{label:<20} vs trained mAP: τ-b {s['kendall_tau_b']:+.2f} (one-sided exact p {s['p_one_sided']:.4f}), ρ {s['spearman_rho']:+.2f}; "
              f"the 7 at 0.7x alone: τ-b {s['budgeted_kendall_tau_b']:+.2f} (p {s['budgeted_p_one_sided']:.4f}), ρ {s['budgeted_spearman_rho']:+.2f}")
    text = json.dumps(result, indent=2)
    (args.out / f"result-{args.mode}.json").write_text(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
