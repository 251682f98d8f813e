"""What predicts a network's trained mAP on the demo? Rank correlations with its structure (issue 11's cause).

Reads the trained networks of finished benchmark runs — ``search_vs_random.py`` (``OUT/train-*/result.json``),
``front_proxy.py`` (``OUT/train-point-*/result.json``) and ``training_budget.py`` (``OUT/train-*epochs/result.json``,
one budget at a time: ``--epochs``) — and compares each genotype with the base network's, stage by stage, as
remapping sees it (DESIGN §1.2: layer i of a stage is remapped from base layer min(i, l)):

- ``width``: layers at a base position with another expansion (a narrower one takes the first channels),
- ``kernel``: layers at a base position with another kernel (a 3×3 kernel centred in zeros),
- ``inserted`` / ``removed``: layers beyond the base's depth of the stage (copies of its last layer) / missing,
- ``layers``, ``e6`` (layers at expansion 6), ``params`` (the backbone's, classifier left out) and ``madds``
  (the detector's, ``netadapt cost`` at 224², where the run recorded it).

A training found in two folders (a benchmark run that reused another's finished trainings) counts once.

It prints, over the networks that are not the base, Spearman's ρ and Kendall's τ-b of each against trained
mAP, and writes them with the per-network rows to ``--json``:

    python benchmarks/trained_vs_structure.py runs/search_vs_random runs/front_proxy --json structure.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if not __package__:  # run as ``python benchmarks/trained_vs_structure.py``: the repository root on sys.path for benchmarks.common
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import kendall_tau, spearman_rho  # noqa: E402

from netadapt import plugins
from netadapt.genotype import Genotype, load_genotype

FEATURES = ("width", "kernel", "inserted", "removed", "layers", "e6", "params", "madds")


def structure(genotype: Genotype, base: Genotype) -> dict[str, int]:
    """How ``genotype`` differs from ``base``, counted as remapping maps its layers (module docstring)."""
    counts = dict.fromkeys(("width", "kernel", "inserted", "removed", "layers", "e6"), 0)
    for stage, base_stage in zip(genotype.stages, base.stages):
        ops = [op for op in stage.ops if not op.is_skip]
        base_ops = [op for op in base_stage.ops if not op.is_skip]
        counts["layers"] += len(ops)
        counts["e6"] += sum(op.expansion == 6 for op in ops)
        counts["inserted"] += max(0, len(ops) - len(base_ops))
        counts["removed"] += max(0, len(base_ops) - len(ops))
        for op, base_op in zip(ops, base_ops):
            counts["width"] += op.expansion != base_op.expansion
            counts["kernel"] += op.kernel != base_op.kernel
    return counts


def trained_networks(runs: list[Path], epochs: int | None) -> list[dict]:
    """Name, genotype, trained mAP and MAdds of every finished training under ``runs``, each training once."""
    rows: dict[tuple, dict] = {}
    for run in runs:
        for result in sorted(run.glob("*/result.json")):
            data = json.loads(result.read_text())
            if "map" in data and "genotype" in data and data.get("epochs", epochs) == epochs:  # search_vs_random, training_budget
                row = {"name": f"{run.name}/{data['name']}", "genotype": data["genotype"], "map": data["map"], "madds": data.get("madds")}
            elif "trained_map" in data:  # front_proxy (its cost column is the searched layers')
                row = {"name": f"{run.name}/{data['name']}", "genotype": data["genotype"], "map": data["trained_map"], "madds": None}
            else:
                continue
            ops = tuple(tuple(op.name for op in stage.ops if not op.is_skip) for stage in load_genotype(row["genotype"]).stages)
            rows.setdefault((ops, round(row["map"], 6)), row)
    return list(rows.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="output folders of search_vs_random.py, front_proxy.py, training_budget.py")
    parser.add_argument("--epochs", type=int, default=None, help="training_budget.py's runs at this budget (default: none of them)")
    parser.add_argument("--base", default="mobilenetv2")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    base_plugin = plugins.bases().get(args.base)
    base = base_plugin.base_genotype()
    rows = []
    for row in trained_networks(args.runs, args.epochs):
        genotype = load_genotype(row["genotype"])
        network = base_plugin.build(genotype, num_classes=1)
        classifier = network.get_submodule(network.part_paths["classifier"])
        row["params"] = sum(p.numel() for p in network.parameters()) - sum(p.numel() for p in classifier.parameters())
        rows.append(row | structure(genotype, base))
    modified = [row for row in rows if any(row[key] for key in ("width", "kernel", "inserted", "removed"))]
    correlations = {}
    for feature in FEATURES:
        present = [row for row in modified if row.get(feature) is not None]
        x, y = [row[feature] for row in present], [row["map"] for row in present]
        correlations[feature] = {"networks": len(present), "spearman_rho": spearman_rho(x, y), "kendall_tau": kendall_tau(x, y)}
    print(f"{'network':<34} {'mAP':>6} " + " ".join(f"{f:>8}" for f in FEATURES))
    for row in sorted(rows, key=lambda r: -r["map"]):
        cells = " ".join(f"{row[f] / 1e6:>7.2f}M" if f in ("params", "madds") and row[f] else f"{row[f] if row[f] is not None else '-':>8}" for f in FEATURES)
        print(f"{row['name']:<34} {row['map']:>6.2f} {cells}")
    print(f"Against trained mAP over the {len(modified)} networks that are not the base:")
    for feature, c in correlations.items():
        print(f"  {feature:<9} ρ {c['spearman_rho']:+.2f}  τ-b {c['kendall_tau']:+.2f}  ({c['networks']} networks)")
    if args.json:
        args.json.write_text(json.dumps({"networks": rows, "correlations_with_trained_map": correlations}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
