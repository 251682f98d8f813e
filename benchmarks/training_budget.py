"""Does a longer stand-alone training change which architecture trains best? (the cause of search vs random, issue 11)

At the demo's budget (224², 12 epochs from the demo-pretrained base) the networks of
``search_vs_random.py`` and ``front_proxy.py`` rank against their capacity: the cheapest point of a front
(33M MAdds in its searched layers) trained to a higher mAP than every network at 0.7x (84M). This trains the
given architectures again with ``--epochs`` (each a real ``netadapt train``, backbone remapped from the same
demo-pretrained base, evaluated on the val split), so the two budgets can be compared architecture by
architecture:

    python benchmarks/training_budget.py --data runs/search_vs_random/data --epochs 36 \\
        cheap=runs/front_proxy/front/point-1/genotype.yaml searched=runs/search_vs_random/search-0/genotype.yaml

Finished trainings are kept (``OUT/train-NAME-EEPOCHS/result.json``, as ``search_vs_random.py`` keeps its own). It prints and writes ``OUT/results.json``:
per architecture its MAdds, params, mAP and mAP@0.5 at each budget.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if not __package__:  # run as ``python benchmarks/training_budget.py``: the repository root on sys.path for benchmarks.common
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import DEMO_CONFIG, base_weights, one_thread, set_flags, train_step  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("architectures", nargs="+", help="NAME=GENOTYPE.yaml")
    parser.add_argument("--epochs", type=int, nargs="+", default=[36], help="training budgets (train.epochs)")
    parser.add_argument("--data", type=Path, required=True, help="the dataset (the benchmark's, with its larger val split)")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="its train: section, epochs replaced")
    parser.add_argument("--input-size", type=int, default=224, help="for the cost column")
    parser.add_argument("--parallel", type=int, default=1, help="trainings side by side, 1 thread each")
    parser.add_argument("--weights", default=None, help="base weights: a file, 'imagenet' or 'none' (default: the demo-pretrained base)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="passed to every netadapt train (train.input_size=160)")
    parser.add_argument("--out", type=Path, default=Path("runs/training_budget"))
    args = parser.parse_args(argv)
    architectures = []
    for given in args.architectures:
        name, sep, path = given.partition("=")
        if not sep or not Path(path).is_file():
            parser.error(f"{given!r}: expected NAME=GENOTYPE.yaml with an existing file")
        architectures.append((name, Path(path)))
    args.out.mkdir(parents=True, exist_ok=True)
    weights = base_weights(args.weights)
    env = one_thread()
    started = time.perf_counter()

    def train(job: tuple[tuple[str, Path], int]) -> dict:
        (name, genotype), epochs = job
        common = ["--data", str(args.data), "--config", str(args.config), *set_flags([*args.overrides, f"train.epochs={epochs}"]), "--quiet", "--json"]
        return train_step(args.out, f"{name}-{epochs}epochs", f"{epochs} epochs", genotype, 0, common=common, weights=weights, env=env,
                          input_size=args.input_size, record={"epochs": epochs})

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        results = list(pool.map(train, itertools.product(architectures, args.epochs)))
    (args.out / "results.json").write_text(json.dumps({"results": results, "seconds": round(time.perf_counter() - started, 1)}, indent=2))
    print(f"{'architecture':<14} {'epochs':>6} {'MAdds':>9} {'params':>8} {'mAP':>6} {'mAP@0.5':>8}")
    for row in results:
        print(f"{row['name']:<14} {row['epochs']:>6} {row['madds'] / 1e6:>8.1f}M {row['params'] / 1e6:>7.2f}M {row['map']:>6.2f} {row['map50']:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
