"""How much of the base's function does each remapping keep? (issue 21, build item 1: measured, not assumed)

On the demo-pretrained MobileNetV2, for a few genotypes that change the base in one way each — only inserted layers,
only narrower layers (the base pruned by width at 0.7x), and the base pruned by depth — the relative error of the
detector taps against the base, ‖f − f_base‖ / ‖f_base‖ (the head conv's tap, stride 32; the stride-16 tap where its
shape is kept), on demo training images, eval mode, for ``remap.mode: fna`` and ``preserve``; as remapped, and with
both the network and the base re-estimating their BatchNorm statistics on other training images (as the remap-aware
score compares them).

    python benchmarks/remap_preserve.py [--images 64] [--input-size 160]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from netadapt import jobs
from netadapt.config import SearchConfig, SelectConfig, load_run_config
from netadapt.engine.batchnorm import reestimate_batchnorm
from netadapt.remap.base import remap_base
from netadapt.search.budget import base_ops
from netadapt.select.pool import pruned_by_depth, pruned_by_width
from netadapt.select.score import IMAGE_MEAN, IMAGE_STD, Taps
from netadapt.weights import read_weights


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=160)
    parser.add_argument("--data", type=Path, default=None, help="a COCO-format folder (default: the demo)")
    parser.add_argument("--weights", default=None, help="base weights: a file or 'imagenet' (default: the demo-pretrained base)")
    parser.add_argument("--json", type=Path, default=None, help="also write the errors here")
    args = parser.parse_args(argv)
    data = jobs.Data(root=args.data)
    dataset = data.splits()["train"].open(train=False, input_size=args.input_size)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).tolist()
    images = torch.stack([dataset[i][0] for i in order[: 2 * args.images]])
    images = (images - IMAGE_MEAN) / IMAGE_STD
    bn_images, eval_images = images[: args.images].split(32), images[args.images:].split(32)

    search_config = load_run_config(SearchConfig, "search", config_file=None, demo=True, flags={"target": "0.7x"})
    space = jobs.selection_space(None, base="mobilenetv2", config=SelectConfig(target="0.7x"), search_config=search_config)
    names, costs, base = space.names, space.costs, base_ops(space.base_genotype, space.layers)
    deeper = [name if name != "skip" else "k3_e6" for name in base]  # every stage at the super network's depth, base ops
    genotypes = {
        "inserted only (every stage at depth 4, k3_e6)": deeper,
        "narrower only (base pruned by width, 0.7x)": pruned_by_width(names, base, costs, space.target),
        "dropped only (base pruned by depth, 0.7x)": pruned_by_depth(names, base, costs, space.target),
    }
    weights = read_weights(args.weights or jobs.pretrain("mobilenetv2", progress=False, announce=None), base_name="mobilenetv2")
    base_network = remap_base(space.base_genotype, base_name="mobilenetv2", weights=weights).network
    reference = _taps(base_network, eval_images)
    reestimate_batchnorm(Taps(base_network, 0), bn_images)
    reference_reestimated = _taps(base_network, eval_images)  # what a re-estimated network is compared with
    print(f"relative tap error against the base ({args.images} images, {args.input_size}²): stride32 [stride16]")
    results = {"images": args.images, "input_size": args.input_size, "weights": weights.source, "errors": {}}
    for label, ops in genotypes.items():
        genotype = space.genotype(ops)
        row = []
        for mode in ("fna", "preserve"):
            network = remap_base(genotype, base_name="mobilenetv2", weights=weights, mode=mode).network
            raw = _errors(_taps(network, eval_images), reference)
            reestimate_batchnorm(Taps(network, 0), bn_images)
            reestimated = _errors(_taps(network, eval_images), reference_reestimated)
            results["errors"][f"{label}, {mode}"] = {"as_remapped": raw, "both_reestimated": reestimated}
            row.append(f"{mode}: {_text(raw)}; both re-estimated {_text(reestimated)}")
        print(f"{label}\n  " + "\n  ".join(row))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


@torch.no_grad()
def _taps(network, batches) -> dict[str, torch.Tensor]:
    network.eval()
    outputs = [network.forward_taps(batch) for batch in batches]
    return {name: torch.cat([o[name] for o in outputs]) for name in outputs[0]}


def _errors(taps: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> dict[str, float | None]:
    """‖f − f_base‖ / ‖f_base‖ per tap; ``None`` where the tap's shape differs from the base's."""
    return {n: float((taps[n] - r).norm() / r.norm()) if taps[n].shape == r.shape else None for n, r in reference.items()}


def _text(errors: dict[str, float | None]) -> str:
    values = [f"{value:.3f}" if value is not None else "—" for value in errors.values()]
    return f"{values[-1]} [{values[0]}]"


if __name__ == "__main__":
    sys.exit(main())
