"""The front's proxy (DESIGN §1.6): one path of the super network scored with its inherited weights, not retrained,
as SPOS and OFA score sub-networks (steps 1–3 of :mod:`netadapt.search.front`'s docstring): that path alone, BatchNorm
statistics re-estimated on the weight half, COCOeval and the training loss on the α half or the val split.
"""

from __future__ import annotations

import contextlib
import io

import torch
from torch import nn

from netadapt import plugins
from netadapt.data.sources import DataSplit
from netadapt.engine.train import DetectorOnBatch
from netadapt.errors import ConfigError, DataError
from netadapt.search.front_plan import FinishedSearch

EVALUATE_ON = ("alpha", "val")


class InheritedScorer:
    """COCO mAP of one path of the super network with its inherited weights (module docstring, steps 1–3)."""

    def __init__(
        self, search: FinishedSearch, splits: dict[str, DataSplit], *, evaluate_on: str = "alpha", bn_images: int = 256,
        batch_size: int = 16, device: torch.device | str = "cpu", finetune_steps: int = 0,
    ) -> None:
        from netadapt.detectors.model import build_detector_on, options_from_config
        from netadapt.search.supernet import build_supernet

        if evaluate_on not in EVALUATE_ON:
            raise ConfigError(f"--evaluate-on must be one of {', '.join(EVALUATE_ON)}, got {evaluate_on!r}")
        if bn_images < 1 or finetune_steps < 0:
            raise ConfigError(f"--bn-images must be positive and --finetune-steps not negative, got {bn_images} and {finetune_steps}")
        config, self.device, self.batch_size = search.config, torch.device(device), batch_size
        self.config, self.finetune_steps = config, finetune_steps
        if finetune_steps:
            self.finetune_set = splits["train"].open(train=True, input_size=config.input_size)
        train_set = splits["train"].open(train=False, input_size=config.input_size)
        self.bn_indices = _indices_of(train_set, search.weight_image_ids, splits["train"])[:bn_images]
        self.bn_set = train_set
        if evaluate_on == "alpha":
            self.eval_set, self.eval_indices = train_set, _indices_of(train_set, search.alpha_image_ids, splits["train"])
            self.evaluated_on = (
                f"the α half of the training split ({len(self.eval_indices)} images of {splits['train'].annotations} "
                "that the super network's weights never trained on)"
            )
        else:
            self.eval_set = splits["val"].open(train=False, input_size=config.input_size)
            self.eval_indices = list(range(len(self.eval_set)))
            self.evaluated_on = f"the val split ({len(self.eval_indices)} images of {splits['val'].annotations})"
        base = plugins.bases().get(search.base)
        # The skeleton is its own source genotype (skeleton_genotype leaves it as it is); every weight is then
        # replaced by the search's, so the source's own (random) weights do not matter.
        self.supernet = build_supernet(search.base, search.space, base.build(search.skeleton), search.skeleton)
        self.detector = build_detector_on(
            self.supernet, search.detector, num_classes=train_set.num_classes, input_size=config.input_size,
            options=options_from_config(search.detector, config),
        )
        try:
            self.detector.load_state_dict(search.detector_state)
        except RuntimeError:
            raise DataError(
                f"{search.directory / 'supernet.pth'}: its detector does not fit {train_set.num_classes - 1} classes of "
                f"{splits['train'].annotations}: pass the dataset the search ran on (--data)"
            ) from None
        self.detector.to(self.device)
        self.candidates = search.arch.candidate_names
        self.ground_truth = _coco_subset(self.eval_set.coco, [self.eval_set.image_ids[i] for i in self.eval_indices])

    def set_path(self, ops: list[str]) -> None:
        """One-hot op weights: every mixed op runs its chosen candidate alone (no gradient, weight exactly 1)."""
        weights = []
        for names, op in zip(self.candidates, ops, strict=True):
            one_hot = torch.zeros(len(names), device=self.device)
            one_hot[names.index(op)] = 1.0
            weights.append(one_hot)
        self.supernet.set_op_weights(weights)

    def score(self, ops: list[str]) -> dict[str, float]:
        """Proxy metrics of the path ``ops``; a fine-tune (``finetune_steps``) is undone afterwards."""
        self.set_path(ops)
        inherited = {key: value.clone() for key, value in self.detector.state_dict().items()} if self.finetune_steps else None
        try:
            return self._score_path()
        finally:
            if inherited is not None:
                self.detector.load_state_dict(inherited)

    def _score_path(self) -> dict[str, float]:
        from torch.utils.data import DataLoader, Subset

        from netadapt.data.coco import collate_detection
        from netadapt.engine.batchnorm import reestimate_batchnorm
        from netadapt.engine.evaluate import evaluate_coco, run_evaluation

        if self.finetune_steps:
            self._finetune()
        bn_loader = DataLoader(Subset(self.bn_set, self.bn_indices), batch_size=self.batch_size, collate_fn=collate_detection)
        reestimate_batchnorm(DetectorOnBatch(self.detector, self.device), bn_loader)
        eval_loader = DataLoader(Subset(self.eval_set, self.eval_indices), batch_size=self.batch_size, collate_fn=collate_detection)
        results = run_evaluation(self.detector, eval_loader, device=self.device, label_to_category_id=self.eval_set.label_to_category_id)
        return evaluate_coco(self.ground_truth, results) | {"loss": _mean_loss(self.detector, eval_loader, self.device)}

    def _finetune(self) -> None:
        """``finetune_steps`` steps of the search's optimizer (its ``lr`` held constant, its gradient clipping) on the path
        alone, on weight-half batches with the training augmentation, in a fixed order (seeded by the search's seed):
        the detector's own training step (:class:`~netadapt.engine.train.DetectorTrainStep`) in full precision."""
        import dataclasses

        from torch.utils.data import DataLoader, Subset

        from netadapt.data.coco import collate_detection
        from netadapt.engine.loop import Loop
        from netadapt.engine.precision import Precision
        from netadapt.engine.sampling import SeededSamples
        from netadapt.engine.train import DetectorTrainStep

        samples = SeededSamples(Subset(self.finetune_set, self.bn_indices), seed=self.config.seed)
        generator = torch.Generator().manual_seed(self.config.seed)
        loader = DataLoader(samples, batch_size=self.config.batch_size, shuffle=True, generator=generator, collate_fn=collate_detection, drop_last=True)
        constant = dataclasses.replace(self.config, warmup_iterations=0, lr_schedule="step", lr_milestones=[])  # lr as it is, no schedule
        step = DetectorTrainStep(self.detector, constant, total=self.finetune_steps, iterations_per_epoch=len(loader), device=self.device,
                                 precision=Precision("off", self.device))
        Loop(total=self.finetune_steps, iterations_per_epoch=len(loader), batches=lambda epoch, first: loader, progress=False).run(step)


@torch.no_grad()
def _mean_loss(detector: nn.Module, loader, device: torch.device) -> float:
    """The detector's training loss (the sum of its losses) per image over ``loader``, BatchNorm in eval mode (its
    statistics kept). Unlike mAP, which a barely trained detector scores near 0 whatever its path, it still ranks."""
    from netadapt.engine.batchnorm import BATCH_NORMS

    was_training = detector.training
    detector.train()  # a torchvision detector gives its losses in train mode only
    for module in detector.modules():
        if isinstance(module, BATCH_NORMS):
            module.eval()
    total, count = 0.0, 0
    try:
        for images, targets in loader:
            losses = DetectorOnBatch(detector, device)((images, targets))
            total += float(sum(losses.values())) * len(images)
            count += len(images)
    finally:
        detector.train(was_training)
    return total / count


def _indices_of(dataset, image_ids: list[int], split: DataSplit) -> list[int]:
    position = {image_id: index for index, image_id in enumerate(dataset.image_ids)}
    missing = [image_id for image_id in image_ids if image_id not in position]
    if missing:
        raise DataError(
            f"{split.annotations} lacks image id {missing[0]} of the search's split.json ({len(missing)} missing): "
            "pass the dataset the search ran on (--data)"
        )
    return [position[image_id] for image_id in image_ids]


def _coco_subset(coco, image_ids: list[int]):
    """A pycocotools COCO of ``image_ids`` alone: COCOeval counts every ground-truth image it is given."""
    from pycocotools.coco import COCO

    keep = set(image_ids)
    subset = COCO()
    subset.dataset = {
        **{key: value for key, value in coco.dataset.items() if key not in ("images", "annotations")},
        "images": [image for image in coco.dataset["images"] if image["id"] in keep],
        "annotations": [annotation for annotation in coco.dataset["annotations"] if annotation["image_id"] in keep],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints "creating index..."
        subset.createIndex()
    return subset

