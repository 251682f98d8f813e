"""The training job (``netadapt train``): a detector whose backbone is remapped from base weights, trained and evaluated."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from netadapt import plugins
from netadapt.detectors.model import DetectorSpec, check_training_memory, options_from_config
from netadapt.engine.rundir import check_resumable
from netadapt.engine.train import TrainResult, train_detector
from netadapt.errors import ConfigError, DataError
from netadapt.genotype import Genotype, load_genotype
from netadapt.jobs.common import Announce, Data, RemapConfig, TrainConfig, base_weights, check_memory, distributed_run, started_batch
from netadapt.remap.base import remap_base
from netadapt.weights import Weights, load_state_dict_strict, read_weights


def train(
    genotype: Genotype | str | Path | None = None,
    *,
    base: str = "mobilenetv2",
    detector: str = "ssdlite",
    weights: str | Weights | None = None,
    checkpoint: str | Path | None = None,
    data: Data = Data(),
    config: TrainConfig | None = None,
    remap: RemapConfig | None = None,
    out_dir: str | Path = "runs/train",
    resume: bool = False,
    force: bool = False,
    device: str | None = None,
    progress: bool = True,
    announce: Announce = print,
    max_memory: str | int | None = None,
    auto_batch: bool = False,
    force_option: str | None = "--force",
) -> TrainResult:
    """Train a detector on ``genotype`` (or a genotype file; default: the base network's) and evaluate it on the val split.

    The backbone starts from ``weights`` (:func:`~netadapt.jobs.common.base_weights`) remapped as ``remap`` says
    (``remap.mode``), or from a detector ``checkpoint`` (its genotype and weights: continue training another run's
    detector). ``resume`` continues ``out_dir/last.pth``, which must exist; ``force`` starts over a resumable run there
    (``force_option`` names the caller's way to do so in the refusal; ``None``: it has none). The training step's
    projected peak memory is checked first (:func:`~netadapt.jobs.common.check_memory`: ``max_memory``, ``auto_batch``).
    """
    remap = remap or data.config(RemapConfig, "remap")
    if isinstance(genotype, (str, Path)):
        genotype = load_genotype(genotype)
    if checkpoint is not None and (genotype is not None or weights is not None):
        raise ConfigError("--checkpoint carries its genotype and weights: give no GENOTYPE and no --weights with it")
    config = config or data.config(TrainConfig, "train")
    if checkpoint is not None:
        source = read_weights(checkpoint, base_name=base)
        genotype = source.genotype or plugins.bases().get(base).base_genotype()
    else:
        base = genotype.base if genotype is not None else base
        genotype = genotype or plugins.bases().get(base).base_genotype()
        check_training_memory(genotype, config, section="train")  # a lower bound, before anything is measured or pretrained
    splits = data.splits()
    config = check_memory(
        "train", started_batch(config, out_dir, resume=resume and auto_batch), base=base, detector=detector, splits=splits, genotype=genotype,
        device=device, max_memory=max_memory, auto_batch=auto_batch, announce=announce,
    )
    if checkpoint is None:
        source = base_weights(weights, base=base, data=data, progress=progress, announce=announce)
    out_dir = Path(out_dir)
    if resume:
        check_resumable(out_dir)
    with distributed_run(device) as context:
        train_set = splits["train"].open(train=True, input_size=config.input_size)
        val_set = splits["val"].open(train=False, input_size=config.input_size)
        if val_set.class_names != train_set.class_names:
            raise DataError(
                f"{splits['val'].annotations}: classes {val_set.class_names[1:]} differ from those of the training split "
                f"{splits['train'].annotations} ({train_set.class_names[1:]})"
            )
        spec = DetectorSpec(detector, base, genotype, train_set.class_names, config.input_size, options_from_config(detector, config))

        def init(model) -> None:
            if source is not None:
                layers = init_backbone(model, spec, source, mode=remap.mode)
                if context.is_main:
                    announce(f"Backbone: {layers} layers remapped from {source.source}" + (f" ({remap.mode})" if remap.mode != "fna" else ""))

        return train_detector(
            spec, config, train_set=train_set, val_set=val_set, out_dir=out_dir, init=init,
            resume=resume, force=force, context=context, progress=progress, force_option=force_option,
        )


def init_backbone(model: nn.Module, spec: DetectorSpec, weights: Weights, *, mode: str = "fna") -> int:
    """Remap base ``weights`` into the detector's backbone (Section 2.1; ``mode``: ``fna`` or ``preserve``); returns
    the layers remapped.

    The base's classifier is not part of a detector, so its keys are left out.
    """
    result = remap_base(spec.genotype, base_name=spec.base, weights=weights, mode=mode)
    body = model.backbone.body
    wanted = body.state_dict()
    state = {key: value for key, value in result.network.state_dict().items() if key in wanted}
    load_state_dict_strict(body, state, source=weights.source)
    return len(result.report.copied)
