"""The cost job (``netadapt cost``): parameters and MAdds of a genotype's network, or of a detector on its backbone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netadapt.config import TrainConfig, check_input_size, load_run_config
from netadapt.cost.breakdown import CostBreakdown, genotype_cost
from netadapt.detectors.cost import detector_cost
from netadapt.detectors.model import DetectorSpec, build_detector, check_detector_memory, options_from_config
from netadapt.errors import ConfigError
from netadapt.genotype import Genotype, load_genotype

DETECTOR_INPUT_SIZE, DETECTOR_CLASSES, CLASSIFIER_CLASSES = 320, 81, 1000


@dataclass(frozen=True)
class CostReport:
    """A genotype's cost: its classifier network's per stage (``breakdown``), or a detector's per part (``detector``)."""

    genotype_file: Path
    genotype: Genotype
    num_classes: int
    breakdown: CostBreakdown | None = None
    detector: str | None = None
    detector_cost: dict[str, Any] | None = None
    input_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.detector is None:
            return {"genotype": str(self.genotype_file)} | self.breakdown.to_dict()
        return {"genotype": str(self.genotype_file), "detector": self.detector, "num_classes": self.num_classes} | self.detector_cost


def cost(
    genotype_file: Path, *, input_size: int | None = None, num_classes: int | None = None, detector: str | None = None,
    config_file: Path | None = None, overrides: Sequence[str] = (),
) -> CostReport:
    """Count the parameters and multiply-adds (fvcore) of the network of ``genotype_file``: its classifier
    (``num_classes``, default 1000; ``input_size``, default the genotype's), or detector plugin ``detector`` on its
    backbone (default 81 classes with the background, input 320) built with the options ``train.detector_options`` of
    ``config_file`` and ``overrides`` gives it (``--set train.detector_options={anchors: torchvision}``: what ``netadapt
    train`` would build; the paper's defaults without them)."""
    genotype = load_genotype(genotype_file)
    if input_size is not None:  # 0 must not mean "the default"
        check_input_size(input_size, "--input-size")
    if num_classes is not None and num_classes < 1:
        raise ConfigError(f"--num-classes must be at least 1, got {num_classes}")
    if detector is None:
        num_classes = num_classes or CLASSIFIER_CLASSES
        breakdown = genotype_cost(genotype, input_size=input_size, num_classes=num_classes, where=str(genotype_file))
        return CostReport(genotype_file, genotype, num_classes, breakdown=breakdown, input_size=breakdown.input_size)
    input_size, num_classes = input_size or DETECTOR_INPUT_SIZE, num_classes or DETECTOR_CLASSES
    check_detector_memory(genotype, input_size=input_size, num_classes=num_classes, where=str(genotype_file))  # before the class list
    train_config = load_run_config(TrainConfig, "train", config_file=config_file, overrides=overrides, demo=False)
    spec = DetectorSpec(
        detector=detector, base=genotype.base, genotype=genotype, class_names=["__background__"] + [str(i) for i in range(1, num_classes)],
        input_size=input_size, options=options_from_config(detector, train_config),
    )
    counted = detector_cost(build_detector(spec), input_size=input_size)
    return CostReport(genotype_file, genotype, num_classes, detector=detector, detector_cost=counted, input_size=input_size)
