"""The paper's central claim, measured on the embedded demo: parameter remapping beats random init.

Trains the same detector (a derived architecture, by default the paper's Fig. 4 genotype) twice
per seed with the same budget: once with its backbone remapped from the classification-pretrained
base network (Section 2.1), once from random initialisation. Prints the val mAP of both over the
seeds, their means and standard deviations, and the ratio — all measured in this one run.

    python benchmarks/remap_vs_random.py                       # defaults: 3 seeds, demo data
    python benchmarks/remap_vs_random.py --genotype runs/search/genotype.yaml --epochs 12 --json out.json

Without ``--weights`` the base is the demo's pretrained classifier (``netadapt.jobs.pretrain``,
cached); ``--weights imagenet`` or a file uses those instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

if not __package__:  # run as ``python benchmarks/remap_vs_random.py``: the repository root on sys.path for benchmarks.common
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, base_weights  # noqa: E402

from netadapt import jobs  # noqa: E402
from netadapt.config import TrainConfig  # noqa: E402
from netadapt.genotype import load_genotype  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genotype", type=Path, default=ROOT / "examples" / "genotypes" / "paper_ssdlite.yaml")
    parser.add_argument("--weights", default=None, help="base weights (default: the demo's pretrained base)")
    parser.add_argument("--data", type=Path, default=None, help="COCO-format folder (default: the demo dataset)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.002, help="AdamW learning rate (TrainConfig's default optimiser)")
    parser.add_argument("--workers", type=int, default=None, help="loader processes per training (default: train.workers' auto)")
    parser.add_argument("--out", type=Path, default=Path("runs/remap_vs_random"))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    weights = base_weights(args.weights)
    data = jobs.Data(root=args.data)
    genotype = load_genotype(args.genotype)
    results: dict[str, list[dict[str, float]]] = {"remapped": [], "random": []}
    started = time.perf_counter()
    for seed in args.seeds:
        config = TrainConfig(
            input_size=args.input_size, batch_size=args.batch_size, epochs=args.epochs, lr=args.lr, seed=seed,
            warmup_iterations=50, checkpoint_every=10_000, log_every=10, **({"workers": args.workers} if args.workers is not None else {}),
        )  # the anchors: SSDLite's default, FNA's
        for name in ("remapped", "random"):
            result = jobs.train(genotype, weights=weights if name == "remapped" else "none", data=data, config=config,
                                out_dir=args.out / f"{name}-seed{seed}", progress=False)
            results[name].append({"seed": seed, "AP": result.metrics["AP"], "AP50": result.metrics["AP50"], "final_loss": result.final_loss})
            print(f"seed {seed} {name:9s} mAP {100 * result.metrics['AP']:5.1f}  mAP@0.5 {100 * result.metrics['AP50']:5.1f}  loss {result.final_loss:.3f}", flush=True)

    summary = {"genotype": str(args.genotype), "weights": weights, "epochs": args.epochs, "input_size": args.input_size,
               "seconds": round(time.perf_counter() - started), "runs": results}
    print(f"\n{'init':10s} {'mAP mean ± sd':>16s} {'mAP@0.5 mean ± sd':>20s}")
    for name, runs in results.items():
        for metric in ("AP", "AP50"):
            values = [100 * run[metric] for run in runs]
            summary[f"{name}_{metric}_mean"] = statistics.mean(values)
            summary[f"{name}_{metric}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{name:10s} {summary[f'{name}_AP_mean']:9.1f} ± {summary[f'{name}_AP_sd']:4.1f} {summary[f'{name}_AP50_mean']:13.1f} ± {summary[f'{name}_AP50_sd']:4.1f}")
    random_ap = summary["random_AP_mean"]
    summary["remapped_vs_random_AP"] = summary["remapped_AP_mean"] / random_ap if random_ap > 0 else float("inf")
    print(f"remapped / random mAP: {summary['remapped_vs_random_AP']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
