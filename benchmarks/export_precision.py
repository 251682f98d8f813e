"""How far exported detectors (ONNX, TorchScript) lie from PyTorch, against float32's own rounding.

For each detector (default: ``ssdlite`` and, when its plugin is installed, ``retinanet``), on the
paper's SSDLite genotype (``examples/genotypes/paper_ssdlite.yaml``) at ``--input-size`` (320)
with 81 classes, it builds a detector whose activations have a trained network's scale: random
weights, BatchNorm statistics of one batch of noise images (with the initial statistics, mean 0
and variance 1, the activations shrink layer after layer and every difference looks tiny), and —
for RetinaNet, whose head has no normalisation — head convolutions of std 0.03 instead of
torchvision's 0.01 (which keeps every logit at its prior). It then runs
:func:`netadapt.export.export_detector` on the first validation image of the demo dataset and
prints, per format and output, the largest absolute difference to PyTorch, PyTorch's own float32
rounding error (against a float64 run), their ratio and what the check allows.

    python benchmarks/export_precision.py
    python benchmarks/export_precision.py --detector ssdlite --formats onnx --json precision.json

A ratio near 1–1.5 says that the exported model differs from PyTorch by what float32 rounding
gives anyway: the export is right, and a fixed tolerance alone (1e-4) would refuse it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from netadapt import export, plugins
from netadapt.data.demo import demo_image
from netadapt.data.images import read_rgb
from netadapt.detectors.cost import CoreForward
from netadapt.detectors.model import DetectorSpec, build_detector
from netadapt.engine.batchnorm import reestimate_batchnorm
from netadapt.genotype import load_genotype

GENOTYPE = Path(__file__).resolve().parents[1] / "examples" / "genotypes" / "paper_ssdlite.yaml"
CLASSES = ["__background__"] + [f"class{index}" for index in range(1, 81)]


def scaled_detector(detector: str, *, input_size: int, seed: int) -> tuple[torch.nn.Module, DetectorSpec]:
    """The detector described in the module docstring, in eval mode."""
    spec = DetectorSpec(detector, "mobilenetv2", load_genotype(GENOTYPE), CLASSES, input_size, {})
    torch.manual_seed(seed)
    model = build_detector(spec)
    reestimate_batchnorm(CoreForward(model), [torch.randn(4, 3, input_size, input_size)])
    with torch.no_grad():
        if detector != "ssdlite":
            for module in model.head.modules():
                if isinstance(module, torch.nn.Conv2d):
                    torch.nn.init.normal_(module.weight, std=0.03)
                    torch.nn.init.zeros_(module.bias)
    return model.eval(), spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    known = [name for name in ("ssdlite", "retinanet") if name in plugins.detectors().names()]
    parser.add_argument("--detector", nargs="+", default=known, help=f"detector plugins (default: {' '.join(known)})")
    parser.add_argument("--formats", nargs="+", default=list(export.FORMATS), choices=export.FORMATS)
    parser.add_argument("--input-size", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write every measurement to this file")
    args = parser.parse_args(argv)

    image = read_rgb(demo_image())
    rows = []
    print(f"{'detector':<10} {'format':<12} {'output':<16} {'max |export - torch|':>21} {'float32 rounding':>17} {'ratio':>6} {'allowed':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for detector in args.detector:
            model, spec = scaled_detector(detector, input_size=args.input_size, seed=args.seed)
            for format in args.formats:
                report = export.export_detector(model, spec, Path(folder) / f"{detector}.{format}", format=format, image=image)
                for output, difference in report["max_abs_diff"].items():
                    rounding = report["float32_rounding"][output]
                    ratio = difference / rounding if rounding else float("nan")
                    rows.append({"detector": detector, "format": format, "output": output, "max_abs_diff": difference,
                                 "float32_rounding": rounding, "ratio": ratio, "allowed": report["allowed"][output]})
                    print(f"{detector:<10} {format:<12} {output:<16} {difference:>21.2e} {rounding:>17.2e} {ratio:>6.2f} {report['allowed'][output]:>9.2e}")
    if args.json:
        args.json.write_text(json.dumps({"input_size": args.input_size, "seed": args.seed, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
