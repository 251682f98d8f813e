"""One search, a whole family (DESIGN §1.6): the accuracy-vs-cost front of a finished search.

For each target the exact constrained derive (:func:`~netadapt.search.derive.choose_ops`: Σ log
softmax(α) maximised subject to Σ table cost ≤ target) picks one op per searched layer. Each
architecture is then scored with the super network's own weights, inherited and not retrained, as
SPOS and OFA score sub-networks:

1. the super network runs that path alone (one-hot op weights: each :class:`MixedOp` runs one candidate);
2. BatchNorm statistics, which the search accumulated under the mixture of paths, are re-estimated
   for that path on training images of the weight half (``split.json``);
3. COCOeval scores the detector on the α half of the training set — images the weights never trained
   on — or on the val split (``evaluate_on="val"``); the detector's training loss on the same images is
   kept too (``proxy_loss``): a super network trained briefly (the demo's search) scores every path near
   mAP 0, where the loss still tells them apart. Optionally (``finetune_steps``) each path is first trained
   alone for a few steps on the weight half (undone before the next path).

This *proxy* is cheap (a few forward passes per point) but is only a proxy:
``benchmarks/front_proxy.py`` measures how well it ranks architectures against stand-alone training.

A finished search directory holds what is needed: ``supernet.pth`` (base, detector, space, skeleton,
α, cost table, the detector's weights), ``split.json`` (the two halves' image ids) and the search's
config (``supernet.pth`` or the final ``last.pth``). The dataset is not recorded: pass the one the
search ran on (a mismatch of image ids or classes is an error).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netadapt import plugins
from netadapt.config import SearchConfig, section_config
from netadapt.cost import cost_model_for, format_cost
from netadapt.data.sources import DataSplit
from netadapt.files import (
    atomic_path, check_output_dir, load_torch_file, remove_outputs, write_json_atomic, write_text_atomic,
)
from netadapt.engine.train import DetectorOnBatch
from netadapt.errors import ConfigError, DataError, NetadaptWarning, PluginError, WeightsError
from netadapt.genotype import Genotype, genotype_from_data, save_genotype
from netadapt.search.budget import base_ops, check_target, cost_range, resolve_target
from netadapt.search.cost_table import CostTable, derived_cost
from netadapt.search.derive import choose_ops, derive_genotype
from netadapt.search.space import SearchSpace
from netadapt.search.supernet import ArchitectureParameters, SearchedLayer

DEFAULT_POINTS = 6
MAX_POINTS = 100  # each point re-estimates BatchNorm and evaluates the super network: more is a typo, not a front
EVALUATE_ON = ("alpha", "val")
CSV_FIELDS = ("name", "target_given", "target", "predicted", "measured", "params", "proxy_map", "proxy_map50", "proxy_loss", "genotype", "ops")


@dataclass
class FinishedSearch:
    """What a finished ``netadapt search`` directory holds, decoded."""

    directory: Path
    base: str
    detector: str
    space: SearchSpace
    skeleton: Genotype
    layers: list[SearchedLayer]  # paths empty: enough to derive (build_supernet gives the real ones)
    arch: ArchitectureParameters
    table: CostTable
    config: SearchConfig
    detector_state: dict[str, torch.Tensor]
    weight_image_ids: list[int]
    alpha_image_ids: list[int]
    base_ops: list[str] | None  # the ops that make the super network the base network (None: not in the space)
    base_cost: float | None  # the base network's searched layers (the search's record, else from base_ops; None: unknown)

    def genotype(self, ops: list[str]) -> Genotype:
        """The derived architecture of ``ops`` (one per searched layer), at the search's input size."""
        genotype = derive_genotype(self.skeleton, self.layers, ops, space_name=self.space.name)
        return Genotype(**{**genotype.__dict__, "input_size": self.config.input_size})


@dataclass
class FrontPoint:
    name: str  # point-1, ..., or base
    target_given: str | None  # as the user wrote it (0.7x, 250M); None for the base network
    target: float | None  # in the cost model's unit
    ops: list[str]
    genotype: Genotype
    predicted: float = math.nan  # Σ of the chosen ops' table entries
    measured: float | None = None  # the cost model run on the derived network's searched layers
    params: int = 0  # the derived detector's parameters (backbone, extras, head; the search's classes)
    metrics: dict[str, float] = field(default_factory=dict)  # COCOeval of the inherited-weights path, and its "loss"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "target_given": self.target_given, "target": self.target, "predicted": self.predicted,
            "measured": self.measured, "params": self.params, "proxy_map": 100 * self.metrics["AP"],
            "proxy_map50": 100 * self.metrics["AP50"], "proxy_loss": self.metrics["loss"], "genotype": f"{self.name}/genotype.yaml", "ops": self.ops,
            "stages": [stage.to_list() for stage in self.genotype.stages],
        }


@dataclass
class Front:
    search: FinishedSearch
    points: list[FrontPoint]
    base: FrontPoint | None
    evaluated_on: str  # a sentence: which images the proxy mAP counts
    bn_images: int
    scope: str  # which layers the costs count
    finetune_steps: int = 0  # optimizer steps on each path alone before it is scored (0: the inherited weights as they are)

    def to_dict(self) -> dict[str, Any]:
        table = self.search.table
        tuned = f", after {self.finetune_steps} fine-tuning steps on that path alone (weight half; undone before the next)" if self.finetune_steps else ""
        return {
            "search": str(self.search.directory), "base_network": self.search.base, "detector": self.search.detector,
            "space": self.search.space.name, "cost_model": table.model, "unit": table.unit, "cost_scope": self.scope,
            "proxy": {
                "how": f"the super network's inherited weights, that path alone (one-hot op weights){tuned}, BatchNorm statistics "
                f"re-estimated on {self.bn_images} training images of the weight half; COCO mAP × 100, and the detector's "
                "training loss per image (proxy_loss, lower is better; BatchNorm statistics kept)",
                "evaluated_on": self.evaluated_on,
            },
            "base": self.base.to_dict() if self.base is not None else None,
            "points": [point.to_dict() for point in self.points],
        }


def load_search(search_dir: str | Path) -> FinishedSearch:
    """Decode a finished search directory; one :class:`ConfigError` (or ``WeightsError``) line when it is not one."""
    directory = Path(search_dir)
    supernet_file, split_file = directory / "supernet.pth", directory / "split.json"
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such search directory")
    if not supernet_file.is_file() or not split_file.is_file():
        missing = "supernet.pth" if not supernet_file.is_file() else "split.json"
        raise ConfigError(f"{directory}: not a finished search (no {missing}): run `netadapt search --out {directory}` to its end first")
    state = load_torch_file(supernet_file, what="search result (supernet.pth)")
    needed = ("base", "detector", "space", "skeleton", "alpha", "candidates", "cost_table", "detector_state")
    missing_keys = [key for key in needed if not isinstance(state, dict) or key not in state]
    if missing_keys:
        raise WeightsError(f"{supernet_file}: not a netadapt search result (it lacks {', '.join(missing_keys)})")
    try:
        split = json.loads(split_file.read_text())
        weight_ids, alpha_ids = [int(i) for i in split["weight_image_ids"]], [int(i) for i in split["alpha_image_ids"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{split_file}: not a search's split (weight_image_ids and alpha_image_ids)") from None
    space = _search_space(state["space"], source=str(supernet_file))
    skeleton = genotype_from_data(state["skeleton"], source=f"{supernet_file} (skeleton)")
    layers = [
        SearchedLayer(s, i, "", space.layer_candidates(s, i))
        for s, stage in enumerate(skeleton.stages) if space.is_searched(s) for i in range(len(stage.ops))
    ]
    if [[op.name for op in layer.candidates] for layer in layers] != state["candidates"]:
        raise ConfigError(f"{supernet_file}: search space {space.name!r} no longer gives the candidates the search had (a plugin changed?)")
    arch = ArchitectureParameters(layers)
    arch.load_state_dict(state["alpha"])
    table = CostTable(**state["cost_table"])
    base_genotype = plugins.bases().get(state["base"]).base_genotype()
    ops = base_ops(base_genotype, layers)
    base_cost = state.get("base_cost", table.cost_of(ops) if ops is not None else None)  # older searches did not record it
    return FinishedSearch(
        directory=directory, base=state["base"], detector=state["detector"], space=space, skeleton=skeleton, layers=layers,
        arch=arch, table=table, config=_search_config(state, directory), detector_state=state["detector_state"],
        weight_image_ids=weight_ids, alpha_image_ids=alpha_ids, base_ops=ops, base_cost=base_cost,
    )


def _search_space(data: dict[str, Any], *, source: str) -> SearchSpace:
    """The space as the search saved it (``asdict``), of the registered space's class when the name is registered
    (a plugin's space may compute its candidates, as ``fna-mobilenetv3``'s stage styles)."""
    try:
        kind = type(plugins.search_spaces().get(data["name"]))
    except PluginError:
        kind = SearchSpace  # a space YAML file
    try:
        return kind(**data)
    except TypeError as error:
        raise WeightsError(f"{source}: the saved search space does not fit {kind.__name__} ({error})") from None


def _search_config(state: dict[str, Any], directory: Path) -> SearchConfig:
    """The search's config: in ``supernet.pth`` if it holds one, else in the final ``last.pth`` (read lazily: mmap)."""
    values = state.get("config")
    if values is None and (directory / "last.pth").is_file():
        try:
            values = torch.load(directory / "last.pth", map_location="cpu", weights_only=True, mmap=True).get("config")
        except Exception:  # an unreadable last.pth is reported below as a missing config
            values = None
    if not isinstance(values, dict):
        raise ConfigError(f"{directory}: the search's config is in neither supernet.pth nor last.pth (was last.pth deleted?)")
    # A field another netadapt version had and this one lacks is left out: the front reads only the input size, the
    # detector's options, the cost model's settings, the batch size, the optimizer and the seed.
    known = {field.name for field in dataclasses.fields(SearchConfig)}
    values = {name: value for name, value in values.items() if name in known}
    return section_config(SearchConfig, {"search": values}, "search", source=f"{directory} (search config)")


def resolve_targets(search: FinishedSearch, targets: Sequence[str] | None = None, points: int | None = None) -> list[tuple[str, float]]:
    """``(as given, value)`` per target, in the cost model's unit, each checked to be feasible, cheapest first.

    ``targets``: costs as ``search.target`` takes them (``250M``, ``20``) or relative to the base network's
    searched layers (``0.7x``). ``points`` (default :data:`DEFAULT_POINTS` when neither is given): that many
    targets evenly spaced above the cheapest network of the space up to the cost of the unconstrained derive
    (the argmax of α), which is the last: every target above it gives that same architecture, and the cheapest
    network itself (one op fits it: skips wherever they may stand) is left out.
    """
    if targets and points is not None:
        raise ConfigError("--targets and --points: give one of them")
    costs = [[layer[name] for name in names] for layer, names in zip(search.table.costs, search.arch.candidate_names, strict=True)]
    if points is None and not targets:
        points = DEFAULT_POINTS
    if points is not None:
        if points < 1:
            raise ConfigError(f"--points must be positive, got {points}")
        if points > MAX_POINTS:
            raise ConfigError(f"--points must be at most {MAX_POINTS} (each point is an evaluation of the super network), got {points}")
        low, _ = cost_range(costs)
        high = search.table.cost_of(search.arch.best_ops())
        values = [low + (high - low) * i / points for i in range(1, points)] + [high]  # the last exactly the argmax's cost
        resolved = [(format_cost(value, search.table.unit), value) for value in values]
    else:
        if len(targets) > MAX_POINTS:
            raise ConfigError(f"--targets: at most {MAX_POINTS} budgets (each is an evaluation of the super network), got {len(targets)}")
        resolved = []
        for given in targets:
            try:
                value = resolve_target(given, search.base_cost)
            except ConfigError as error:
                raise ConfigError(str(error).replace("search.target", "--targets", 1)) from None
            resolved.append((str(given), value))
    for given, value in resolved:
        check_target(value, costs, unit=search.table.unit, where=f"--targets {given}")
    return sorted(resolved, key=lambda item: item[1])


def plan_front(search: FinishedSearch, targets: list[tuple[str, float]]) -> list[FrontPoint]:
    """The constrained derive at every target (no network is run)."""
    planned = []
    for number, (given, value) in enumerate(targets, start=1):
        try:
            ops = choose_ops(search.arch, search.table, value)
        except ValueError:  # check_target let it through; a float sum rounded the other way
            raise ConfigError(f"--targets {given}: no network of the search space meets {format_cost(value, search.table.unit)}") from None
        planned.append(FrontPoint(f"point-{number}", given, value, ops, search.genotype(ops)))
    return planned


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
        """``finetune_steps`` steps of the search's optimizer (its ``lr``, no schedule) on the path alone, on weight-half
        batches with the training augmentation, in a fixed order (seeded by the search's seed)."""
        from torch.utils.data import DataLoader, Subset

        from netadapt.data.coco import collate_detection
        from netadapt.engine.loop import Loop, Position, make_optimizer
        from netadapt.engine.sampling import SeededSamples

        samples = SeededSamples(Subset(self.finetune_set, self.bn_indices), seed=self.config.seed)
        generator = torch.Generator().manual_seed(self.config.seed)
        loader = DataLoader(samples, batch_size=self.config.batch_size, shuffle=True, generator=generator, collate_fn=collate_detection, drop_last=True)
        optimizer = make_optimizer([p for p in self.detector.parameters() if p.requires_grad], self.config)
        run = DetectorOnBatch(self.detector, self.device)

        def step(batch, at: Position) -> dict[str, float]:
            self.detector.train()
            loss = sum(run(batch).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return {"loss": float(loss.detach())}

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


def compute_front(
    search: FinishedSearch, targets: list[tuple[str, float]], splits: dict[str, DataSplit], *, evaluate_on: str = "alpha",
    bn_images: int = 256, device: torch.device | str = "cpu", finetune_steps: int = 0, announce: Callable[[FrontPoint], None] | None = None,
) -> Front:
    """Every target's architecture (and the base network's, when the space holds it): costs, parameters, proxy mAP.

    A choice of ops met at several targets is scored once.
    """
    from netadapt.detectors.model import DetectorSpec, build_detector, options_from_config

    points = plan_front(search, targets)
    base = None
    if search.base_ops is not None:
        base = FrontPoint("base", None, None, search.base_ops, search.genotype(search.base_ops))
    scorer = InheritedScorer(search, splits, evaluate_on=evaluate_on, bn_images=bn_images, batch_size=search.config.batch_size, device=device,
                            finetune_steps=finetune_steps)
    cost_model = cost_model_for(search.config)
    class_names = scorer.bn_set.class_names
    scores: dict[tuple[str, ...], dict[str, float]] = {}
    scope = ""
    for point in ([base] if base is not None else []) + points:
        cost = derived_cost(point.genotype, search.table, point.ops, space=search.space, cost_model=cost_model)
        point.predicted, point.measured, scope = cost.predicted, cost.measured, cost.scope
        spec = DetectorSpec(search.detector, search.base, point.genotype, class_names, search.config.input_size,
                            options_from_config(search.detector, search.config))
        point.params = sum(parameter.numel() for parameter in build_detector(spec).parameters())
        key = tuple(point.ops)
        if key not in scores:
            scores[key] = scorer.score(point.ops)
        point.metrics = scores[key]
        if announce is not None:
            announce(point)
    return Front(search, points, base, scorer.evaluated_on, len(scorer.bn_indices), scope, finetune_steps)


def front_outputs(out_dir: str | Path, points: int, *, base: bool) -> list[Path]:
    """The files :func:`write_front` writes for ``points`` points (and the base): checked before any point is computed."""
    out_dir = Path(out_dir)
    names = (["base"] if base else []) + [f"point-{number}" for number in range(1, points + 1)]
    return [out_dir / name for name in ("front.json", "front.csv", "front.png")] + [out_dir / name / "genotype.yaml" for name in names]


def write_front(front: Front, out_dir: str | Path) -> list[Path]:
    """``front.json``, ``front.csv``, ``front.png`` and ``<point>/genotype.yaml`` per point, each written atomically.
    The point folders of an earlier, larger front in ``out_dir`` are removed (only the files netadapt wrote there):
    a ``point-3/`` left beside a 2-point ``front.json`` would be trained as if it belonged to it."""
    out_dir = check_output_dir(out_dir)
    rows = ([front.base] if front.base is not None else []) + front.points
    for point in rows:
        save_genotype(point.genotype, out_dir / point.name / "genotype.yaml")
    _remove_stale_points(out_dir, keep={point.name for point in rows})
    data = front.to_dict()
    write_json_atomic(out_dir / "front.json", data)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in ([data["base"]] if data["base"] else []) + data["points"]:
        writer.writerow(row | {"ops": " ".join(row["ops"])})
    write_text_atomic(out_dir / "front.csv", buffer.getvalue())
    draw_front(data, out_dir / "front.png")
    return [out_dir / name for name in ("front.json", "front.csv", "front.png")] + [out_dir / p.name / "genotype.yaml" for p in rows]


def _remove_stale_points(out_dir: Path, *, keep: set[str]) -> None:
    for folder in sorted(out_dir.iterdir()):
        if folder.name in keep or not folder.is_dir() or not re.fullmatch(r"point-\d+|base", folder.name):
            continue
        if remove_outputs(folder):
            warnings.warn(f"{folder}: left in place, with files netadapt did not write; it is not part of this front", NetadaptWarning, stacklevel=3)


def draw_front(data: dict[str, Any], path: str | Path) -> None:
    """Above, proxy mAP against the cost of the searched layers: the derived architectures as a line through their
    points, each labelled with its target(s) (≤ budget) and proxy mAP (3 significant digits: an early super network's
    mAP is a few thousandths), hollow where another point is as cheap or cheaper and
    scores higher (dominated); the base network as a red star with a dotted line at its cost. Below, the same for
    the proxy loss (lower is better)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state (a notebook's stays as it was)
    from matplotlib.lines import Line2D

    scale, unit = (1e6, f"M {data['unit']}") if data["unit"] == "MAdds" else (1.0, data["unit"])
    figure = Figure(figsize=(7.0, 6.4))
    above, below = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    for axes, key, better, label in ((above, "proxy_map", 1, "proxy mAP (%)"), (below, "proxy_loss", -1, "proxy loss per image")):
        merged: dict[tuple[float, float], list[str]] = {}  # one marker per distinct architecture, its targets joined
        for p in sorted(data["points"], key=lambda p: (p["predicted"], p["target"])):
            merged.setdefault((p["predicted"] / scale, p[key]), []).append("≤" + p["target_given"].removesuffix(f" {data['unit']}"))
        xs, ys = zip(*merged)
        axes.plot(xs, ys, "-", color="#2a6fb0", linewidth=1.2, zorder=1)
        for (x, y), labels in merged.items():
            dominated = any(ox <= x and better * (oy - y) > 0 for ox, oy in merged)
            axes.scatter([x], [y], s=36, zorder=2, edgecolors="#2a6fb0", facecolors="white" if dominated else "#2a6fb0")
            axes.annotate(f"{', '.join(labels)}: {y:.3g}", (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7, color="#2a6fb0")
        if data["base"] is not None:
            base = data["base"]
            axes.axvline(base["predicted"] / scale, color="#c0392b", linestyle=":", linewidth=1)
            axes.scatter([base["predicted"] / scale], [base[key]], marker="*", s=200, color="#c0392b", zorder=3)
            axes.annotate(f"base: {base[key]:.3g}", (base["predicted"] / scale, base[key]), textcoords="offset points",
                          xytext=(-8, 8), ha="right", fontsize=7, color="#c0392b")
        axes.margins(y=0.18)  # room for the labels above the highest point
        axes.set_ylabel(label, fontsize=8)
        axes.grid(alpha=0.3)
    handles = [
        Line2D([], [], color="#2a6fb0", marker="o", label="derived at each target (constrained derive)"),
        Line2D([], [], color="#2a6fb0", marker="o", markerfacecolor="white", linestyle="", label="dominated (a cheaper point scores better)"),
    ]
    if data["base"] is not None:
        handles.append(Line2D([], [], color="#c0392b", marker="*", markersize=12, linestyle="", label=f"base network ({data['base_network']})"))
    model = "" if data["cost_model"].lower() == data["unit"].lower() else f", {data['cost_model']}"
    below.set_xlabel(f"cost of the searched layers ({unit}{model})")
    above.set_title(
        f"front of {Path(data['search']).name}: inherited weights, BN re-estimated, on {data['proxy']['evaluated_on'].split(' (')[0]}",
        fontsize=9, loc="left",
    )
    above.legend(handles=handles, fontsize=7, loc="best")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=130)
