"""Speed not bought with worse answers: ``darts`` and ``sampled`` searched with the same wall-clock budget.

Per seed, each strategy searches on the demo dataset (or ``--data``) within ``--budget-s``
seconds, its architecture is derived, and the derived detector gets the same final training
(backbone remapped from the base weights, Section 2.1) and evaluation: ``jobs.search`` and ``jobs.train``,
what ``netadapt search`` and ``netadapt train`` run. Prints, per strategy and seed, the search's epochs, iterations and seconds, the
derived architecture, its MAdds (whole detector, fvcore) and its val mAP; then the mean and
standard deviation of mAP over the seeds and the difference of the means.

    python benchmarks/search_quality.py                      # defaults: 2 seeds, ~20 min on 2 CPU cores
    python benchmarks/search_quality.py --seeds 0 1 2 3 --budget-s 900 --train-epochs 12 --json quality.json

**Same budget.** A search's schedule is fixed by its epochs (α updates from the middle epoch on,
cosine learning rate), so the budget is given in epochs: before the runs, each strategy's seconds
per iteration are measured on the real data with ``run_search`` itself, the search loop ``jobs.search`` runs
(weight-only iterations, and iterations with an α step; the set-up time of a run measured apart: the loop's
``stop_after`` interrupts it, which no job offers). ``darts`` gets the
number of epochs whose estimated time is closest to ``--budget-s`` (at least one: on 2 cores
one ``darts`` epoch is the coarse unit), and ``sampled`` the number of epochs whose estimate is
closest to that of ``darts``. The searches' own seconds are printed beside the results: compare
them, not only the budget.

Without ``--weights`` the base is the demo's classification-pretrained network
(``netadapt.jobs.pretrain``, cached; about 3 min the first time); ``--weights none`` starts from
random initialisation.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from netadapt import jobs
from netadapt.cache import cache_root
from netadapt.config import SearchConfig, TrainConfig
from netadapt.detectors.cost import detector_cost
from netadapt.detectors.model import load_detector
from netadapt.genotype import Genotype
from netadapt.search.loop import run_search, split_halves

BASE, DETECTOR = "mobilenetv2", "ssdlite"
STRATEGIES = ("darts", "sampled")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="COCO-format folder (default: the demo dataset)")
    parser.add_argument("--weights", default=None, help="base weights: a file, 'imagenet' or 'none' (default: the demo's pretrained base)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budget-s", type=float, default=150.0, help="wall-clock seconds of darts's search per seed (sampled gets what darts takes)")
    parser.add_argument("--max-epochs", type=int, default=40, help="the most search epochs a strategy gets (1: no calibration)")
    parser.add_argument("--search-input-size", type=int, default=128)
    parser.add_argument("--search-batch-size", type=int, default=8)
    parser.add_argument("--sample-k", type=int, default=1, help="sampled's paths per step (search.strategy_options.k)")
    parser.add_argument("--train-input-size", type=int, default=128)
    parser.add_argument("--train-batch-size", type=int, default=16)
    parser.add_argument("--train-epochs", type=int, default=8)
    parser.add_argument("--train-lr", type=float, default=0.002, help="AdamW learning rate of the final training")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/search_quality"))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    data = jobs.Data(root=args.data)
    weights = jobs.base_weights(args.weights or str(jobs.pretrain(BASE, progress=False, announce=None)), base=BASE, data=data)
    splits = data.splits()
    search = SearchConfig(
        input_size=args.search_input_size, batch_size=args.search_batch_size, warmup_iterations=10, lr=0.03, lr_schedule="cosine",
        lr_milestones=[], alpha_lr=0.003, workers=args.workers, checkpoint_every=10_000, log_every=5,
    )  # the demo config's values of 2026-11-26, cosine so that the schedule follows the epochs
    options = {"darts": {}, "sampled": {"k": args.sample_k}}  # each strategy's strategy_options
    train = TrainConfig(
        input_size=args.train_input_size, batch_size=args.train_batch_size, epochs=args.train_epochs, optimizer="adamw",
        lr=args.train_lr, weight_decay=0.01, warmup_iterations=20, workers=args.workers, checkpoint_every=10_000, log_every=10,
    )  # AdamW: a few epochs on 2 cores reach a measurable mAP (RMSProp at lr 0.02 stays near 0 in 200 iterations)
    train_images = len(splits["train"].open(train=True, input_size=train.input_size))
    weight_half, _ = split_halves(train_images, alpha_fraction=search.alpha_fraction, seed=search.split_seed)
    iterations_per_epoch = math.ceil(len(weight_half) / search.batch_size)
    started = time.perf_counter()

    epochs, budget = {}, args.budget_s
    for strategy in STRATEGIES:  # darts first: its epochs are the coarse unit, sampled gets the time they take
        if args.max_epochs == 1:  # one epoch each whatever the budget: nothing to calibrate
            epochs[strategy] = 1
            print(f"{strategy}: 1 epoch of {iterations_per_epoch} iterations (--max-epochs 1: not calibrated)", flush=True)
            continue
        timing = calibrate(replace(search, strategy=strategy, strategy_options=options[strategy]), weights, splits["train"])
        epochs[strategy] = epochs_for(budget, timing, iterations_per_epoch, args.max_epochs)
        planned = estimate(epochs[strategy], timing, iterations_per_epoch)
        print(
            f"{strategy}: {timing['weight_s']:.2f} s per weight-only iteration, {timing['alpha_s']:.2f} s with an α step, "
            f"{timing['setup_s']:.0f} s set-up → {epochs[strategy]} epochs of {iterations_per_epoch} iterations "
            f"(estimate {planned:.0f} s for a budget of {budget:.0f} s)",
            flush=True,
        )
        budget = planned

    runs: dict[str, list[dict]] = {strategy: [] for strategy in STRATEGIES}
    for seed in args.seeds:
        for strategy in STRATEGIES:
            count = epochs[strategy]
            config = replace(search, strategy=strategy, strategy_options=options[strategy], seed=seed, epochs=count, alpha_start_epoch=count // 2 + 1)
            run_dir = args.out / f"{strategy}-seed{seed}"
            search_started = time.perf_counter()
            result = jobs.search(base=BASE, detector=DETECTOR, weights=weights or "none", data=data, config=config, out_dir=run_dir / "search",
                                 force=True, progress=False, announce=_quiet)
            search_seconds = time.perf_counter() - search_started
            genotype = Genotype(**{**result.genotype.__dict__, "input_size": train.input_size})
            trained = jobs.train(genotype, detector=DETECTOR, weights=weights or "none", data=data, config=replace(train, seed=seed),
                                 out_dir=run_dir / "train", force=True, progress=False, announce=_quiet)
            model, _ = load_detector(trained.out_dir / "model.pth")
            cost = detector_cost(model, input_size=train.input_size)
            row = {
                "seed": seed, "epochs": count, "iterations": result.iterations, "search_s": round(search_seconds, 1),
                "search_loop_s": round(result.seconds, 1), "stages": [stage.to_list() for stage in genotype.stages],
                "searched_layers_cost": result.derived_cost, "madds": cost["madds"], "params": cost["params"],
                "AP": trained.metrics["AP"], "AP50": trained.metrics["AP50"],
            }
            runs[strategy].append(row)
            print(
                f"seed {seed} {strategy:8s} {count:3d} epochs {result.iterations:4d} it {search_seconds:6.0f} s | "
                f"{cost['madds'] / 1e6:6.1f}M MAdds {cost['params'] / 1e6:5.2f}M params | mAP {100 * row['AP']:5.1f} "
                f"mAP@0.5 {100 * row['AP50']:5.1f}\n    {_ops(genotype)}",
                flush=True,
            )

    summary = summarise(runs)
    summary |= {"settings": vars(args) | {"out": str(args.out), "json": str(args.json), "data": str(args.data)},
                "weights": weights.source if weights else "random initialisation", "epochs": epochs,
                "seconds": round(time.perf_counter() - started), "runs": runs}
    print(f"\n{'strategy':10s} {'mAP mean ± sd':>15s} {'mAP@0.5 mean ± sd':>19s} {'MAdds mean':>11s} {'search s':>9s}")
    for strategy in STRATEGIES:
        print(
            f"{strategy:10s} {summary[f'{strategy}_AP_mean']:8.2f} ± {summary[f'{strategy}_AP_sd']:4.2f} "
            f"{summary[f'{strategy}_AP50_mean']:11.2f} ± {summary[f'{strategy}_AP50_sd']:4.2f} "
            f"{summary[f'{strategy}_madds_mean'] / 1e6:10.1f}M {summary[f'{strategy}_search_s_mean']:9.0f}"
        )
    print(
        f"sampled − darts mAP: {summary['sampled_minus_darts_AP']:+.2f} points; seed spread (sd) darts {summary['darts_AP_sd']:.2f}, "
        f"sampled {summary['sampled_AP_sd']:.2f}; 2 standard errors of the difference {summary['two_standard_errors_AP']:.2f}\n"
        f"within noise (|difference| ≤ 2 SE): {summary['within_noise']}; sampled not worse (difference ≥ −2 SE): {summary['sampled_not_worse']}"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def calibrate(config: SearchConfig, weights, train_split, *, iterations: int = 3) -> dict[str, float]:
    """Seconds per weight-only iteration, per iteration with an α step, and of a run's set-up,
    measured with ``run_search`` on the real data (a resumed run that stops at once is the set-up)."""
    seconds = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, alpha_start in (("weight_s", 2), ("alpha_s", 1)):
            calibration = replace(config, epochs=2, alpha_start_epoch=alpha_start)
            out = Path(scratch) / name

            def run(stop_after: int, *, resume: bool) -> float:
                begun = time.perf_counter()
                run_search(
                    base_name=BASE, detector_name=DETECTOR, weights=weights, config=calibration, train_split=train_split,
                    out_dir=out, resume=resume, progress=False, cache_dir=cache_root() / "cost_tables", stop_after=stop_after,
                )
                return time.perf_counter() - begun

            run(1, resume=False)  # warm-up, and the checkpoint the next runs resume from
            setup = run(1, resume=True)
            seconds[name] = (run(1 + iterations, resume=True) - setup) / iterations
            seconds["setup_s"] = setup
    return seconds


def estimate(epochs: int, timing: dict[str, float], iterations_per_epoch: int) -> float:
    """Seconds of a search of ``epochs`` epochs with α updates from epoch ``epochs // 2 + 1``."""
    weight_only = epochs // 2
    return timing["setup_s"] + iterations_per_epoch * (weight_only * timing["weight_s"] + (epochs - weight_only) * timing["alpha_s"])


def epochs_for(budget_s: float, timing: dict[str, float], iterations_per_epoch: int, max_epochs: int) -> int:
    """The number of epochs whose estimated time is closest to the budget (an epoch is a coarse unit)."""
    return min(range(1, max_epochs + 1), key=lambda e: abs(estimate(e, timing, iterations_per_epoch) - budget_s))


def summarise(runs: dict[str, list[dict]]) -> dict:
    summary: dict = {}
    for strategy, rows in runs.items():
        for key, scale in (("AP", 100), ("AP50", 100), ("madds", 1), ("search_s", 1)):
            values = [scale * row[key] for row in rows]
            summary[f"{strategy}_{key}_mean"] = statistics.mean(values)
            summary[f"{strategy}_{key}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
    difference = summary["sampled_AP_mean"] - summary["darts_AP_mean"]
    standard_error = math.sqrt(sum(summary[f"{s}_AP_sd"] ** 2 / len(runs[s]) for s in STRATEGIES))
    summary["sampled_minus_darts_AP"] = difference
    summary["two_standard_errors_AP"] = 2 * standard_error
    # With one seed there is no spread to compare with: None.
    summary["within_noise"] = abs(difference) <= 2 * standard_error if standard_error > 0 else None
    summary["sampled_not_worse"] = difference >= -2 * standard_error if standard_error > 0 else None
    return summary


def _quiet(line: str) -> None:
    """The jobs' announcements (backbone remapped, memory checked) left out of the benchmark's table."""


def _ops(genotype: Genotype) -> str:
    return " | ".join(" ".join(op.name for op in stage.ops) for stage in genotype.stages)


if __name__ == "__main__":
    sys.exit(main())
