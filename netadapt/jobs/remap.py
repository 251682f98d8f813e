"""The remap job (``netadapt remap``): base weights into another architecture (parameter remapping, Section 2.1)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from netadapt.errors import GenotypeError, NetadaptWarning
from netadapt.files import check_output_file
from netadapt.genotype import load_genotype
from netadapt.remap.base import remap_base
from netadapt.remap.preserve import check_mode
from netadapt.weights import read_weights, save_model_checkpoint


def remap(
    genotype_file: Path, *, base: str | None = None, weights: str | None = None, out: Path | None = None, mode: str = "fna",
) -> dict[str, Any]:
    """Remap a base network's ``weights`` (a torchvision-format .pth, a netadapt checkpoint, ``imagenet``; none: a
    randomly initialised base, with a warning) into the genotype of ``genotype_file`` and write a netadapt checkpoint
    (``out``, by default ``<genotype>_remapped.pth``); what was done, as the command's ``--json`` prints it."""
    genotype = load_genotype(genotype_file)
    if base is not None and base != genotype.base:
        raise GenotypeError(f"{genotype_file}: field 'base' is {genotype.base!r} but --base is {base!r}")
    base = genotype.base
    check_mode(mode)
    weights_file = Path(weights) if weights not in (None, "imagenet") else None
    out = check_output_file(out or Path(f"{genotype_file.stem}_remapped.pth"), inputs=[genotype_file, weights_file])
    if weights is None:
        warnings.warn(
            f"no --weights given: remapping a RANDOMLY INITIALISED {base}. The result is no better than random "
            "initialisation; pass --weights FILE (or 'imagenet' when online) to adapt pretrained weights.", NetadaptWarning, stacklevel=2,
        )
    source = read_weights(weights, base_name=base) if weights is not None else None
    result = remap_base(genotype, base_name=base, weights=source, mode=mode)
    save_model_checkpoint(out, base_name=base, genotype=genotype, network=result.network, num_classes=result.num_classes)
    return {
        "genotype": str(genotype_file),
        "base": base,
        "weights": source.source if source else None,
        "layers_remapped": len(result.report.copied),
        "layers_ignored": len(result.report.ignored),
        "mode": mode,
        "layers_inserted_as_identity": len(result.report.identity),
        "out": str(out),
    }
