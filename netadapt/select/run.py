"""The selection stage (``netadapt select``; DESIGN §1.6, "Selection that wins").

Between search and training: under the target, a pool of candidates (:mod:`netadapt.select.pool`: the baselines a
user would try by hand, the search's derived network, solutions of the exact constrained choice on the remap-aware
score) goes through **successive halving** (Jamieson & Talwalkar 2016; Li & Talwalkar's random search with early
stopping is its control): every candidate trains briefly from weights remapped from the base, through the one
training loop, and is scored by COCO mAP on *held-out training images* (never the val split that reports the
result); the best share (``keep_fraction``) goes on to a longer rung. Ranking at every rung prefers, among the
candidates within ``noise`` mAP of the best, the one that changes fewest layers of the base.

``OUT/`` holds ``data/`` (the held-out split as a COCO-format dataset over the training images), ``scores.json``,
``pool/NAME.yaml``, ``rungs/R-NAME/`` (each a training run: ``result.json`` when finished), ``selection.json`` and
the winner's ``genotype.yaml``. A stopped selection continues with ``resume``: finished trainings are kept, an
unfinished one continues from its ``last.pth``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from netadapt.config import RemapConfig, SelectConfig, TrainConfig
from netadapt.cost import format_cost
from netadapt.errors import ConfigError, RunError
from netadapt.files import record_output, write_json_atomic
from netadapt.genotype import Genotype, save_genotype
from netadapt.search.budget import base_ops, resolve_target
from netadapt.search.derive import derive_genotype
from netadapt.select.pool import Candidate, build_pool, random_pool
from netadapt.select.score import ScoreTable, remap_aware_scores, score_key

Announce = Callable[[str], None]
TrainCandidate = Callable[["RungJob"], Any]  # a job's training: its result has ``metrics``, ``seconds``, ``iterations``


@dataclass
class Space:
    """What a selection chooses in: the super network's skeleton and searched layers, the cost table, the target,
    and (with a search) α's log-probabilities and the search's derived ops."""

    base_name: str
    base_genotype: Genotype
    skeleton: Genotype
    layers: list
    space_name: str
    fingerprint: str
    table: Any  # CostTable
    target: float
    alpha_rows: list[list[float]] | None = None
    searched: list[str] | None = None

    @property
    def names(self) -> list[list[str]]:
        return [[op.name for op in layer.candidates] for layer in self.layers]

    @property
    def costs(self) -> list[list[float]]:
        return [[layer_costs[name] for name in row] for layer_costs, row in zip(self.table.costs, self.names)]

    def genotype(self, ops: list[str]) -> Genotype:
        return derive_genotype(self.skeleton, self.layers, ops, space_name=self.space_name)


@dataclass
class SelectResult:
    out_dir: Path
    winner: Candidate
    genotype: Genotype
    winner_is_baseline: bool
    pool: list[Candidate]
    seconds: float
    unit: str


def resolve_select_target(value: str | float | int | None, *, space_table, base_ops_: list[str] | None, search_target: float | None) -> float:
    """``select.target`` in the cost's unit (``0.7x``: of the base's searched layers in the table), else the search's."""
    if value is None:
        if search_target is None:
            raise ConfigError("select: no target: pass --target (e.g. 0.7x) or select a search that had one")
        return search_target
    base_cost = space_table.cost_of(base_ops_) if base_ops_ is not None else None
    return resolve_target(value, base_cost)


def held_out_split(annotations: Path, images: Path, out: Path, *, fraction: float, seed: int) -> tuple[Path, list[int], list[int]]:
    """``out`` as a COCO-format dataset over the training images: ``train.json`` (the images the rungs train on) and
    ``val.json`` (``fraction`` of them held out, fixed by ``seed``), both image folders links to ``images``; the two
    id lists."""
    data = json.loads(Path(annotations).read_text())
    ids = sorted(image["id"] for image in data["images"])
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed)).tolist()
    count = max(1, min(len(ids) - 1, round(fraction * len(ids))))
    held = sorted(ids[i] for i in order[:count])
    kept = sorted(ids[i] for i in order[count:])
    (out / "images").mkdir(parents=True, exist_ok=True)
    for split, chosen in (("train", kept), ("val", held)):
        wanted = set(chosen)
        subset = {
            **{key: value for key, value in data.items() if key not in ("images", "annotations")},
            "images": [image for image in data["images"] if image["id"] in wanted],
            "annotations": [a for a in data.get("annotations", []) if a["image_id"] in wanted],
        }
        write_json_atomic(out / f"{split}.json", subset)
        link = out / "images" / split
        if link.is_symlink() and Path(os.readlink(link)) != Path(images).resolve():
            link.unlink()
        if not link.exists():
            record_output(link)  # netadapt's link: listed, so that --force removes the link, never what it points to
            link.symlink_to(Path(images).resolve(), target_is_directory=True)
    return out, kept, held


def ranked(candidates: Sequence[Candidate], scores: dict[str, float], *, noise: float) -> list[Candidate]:
    """Best first: repeatedly, among the remaining candidates within ``noise`` of the best score, the one that changes
    fewest layers (then the higher score, then the earlier in the pool)."""
    remaining = list(candidates)
    order: list[Candidate] = []
    while remaining:
        best = max(scores[c.name] for c in remaining)
        close = [c for c in remaining if scores[c.name] >= best - noise]
        pick = min(close, key=lambda c: (c.changed, -scores[c.name], remaining.index(c)))
        order.append(pick)
        remaining.remove(pick)
    return order


@dataclass(frozen=True)
class RungJob:
    """One training of a rung, in a worker process or in this one."""

    name: str
    genotype: dict
    detector: str
    out_dir: str
    data_root: str
    weights: str
    train_config: dict
    remap_mode: str
    resume: bool
    threads: int | None


def train_rung(job: RungJob, train_candidate: TrainCandidate) -> dict[str, Any]:
    """Train one candidate of a rung with ``train_candidate`` (``OUT/rungs/R-NAME/result.json`` when finished: kept, not
    trained again)."""
    out = Path(job.out_dir)
    done = out / "result.json"
    trained = {"genotype": job.genotype, "train_config": job.train_config, "remap_mode": job.remap_mode, "weights": job.weights}
    if done.is_file():
        record = json.loads(done.read_text())
        _check_same_training(record.get("trained", trained), trained, done)
        return record
    if job.threads is not None:
        torch.set_num_threads(job.threads)
    result = train_candidate(job)
    metrics = result.metrics or {}
    record = {"name": job.name, "map": 100 * metrics.get("AP", float("nan")), "map50": 100 * metrics.get("AP50", float("nan")),
              "seconds": round(result.seconds, 1), "iterations": result.iterations, "trained": trained}
    if not math.isfinite(record["map"]):
        raise RunError(f"{out}: the rung's training gave no held-out mAP")
    write_json_atomic(done, record)
    return record


def _check_same_training(recorded: dict, wanted: dict, path: Path) -> None:
    """A kept rung result stands only for the training it recorded: a resumed selection whose rung would train otherwise
    (another ``select.rung_epochs``, ``train:`` setting, remap mode or base weights) is refused, naming the first change."""
    for key in ("genotype", "remap_mode", "weights"):
        if recorded.get(key) != wanted[key]:
            raise RunError(f"{path}: trained with another {key.replace('_', ' ')} than this selection's: start over with --force")
    before, now = recorded.get("train_config", {}), wanted["train_config"]
    changed = next((name for name in now if before.get(name) != now[name]), None)
    if changed is not None:
        raise RunError(f"{path}: trained with train.{changed} {before.get(changed)!r}, this selection's rung uses {now[changed]!r}: "
                       "start over with --force")


def run_select(
    *,
    space: Space,
    detector: str = "ssdlite",
    weights_path: str,
    weights,
    train_annotations: Path,
    train_images: Path,
    config: SelectConfig,
    train_config: TrainConfig,
    remap: RemapConfig,
    out_dir: Path,
    parallel: int = 1,
    resume: bool = False,
    cache_dir: Path | None = None,
    announce: Announce = print,
    train_candidate: TrainCandidate,
) -> SelectResult:
    """The selection (module docstring) into ``out_dir``; ``train_candidate(job)`` trains a rung's candidate (the train
    job's, :func:`netadapt.jobs.select.train_candidate`): a module's function, which the rungs' worker processes receive
    by name."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    data_root, kept_ids, held_ids = held_out_split(
        train_annotations, train_images, out_dir / "data", fraction=config.held_out_fraction, seed=config.seed
    )
    announce(f"Held out {len(held_ids)} of {len(held_ids) + len(kept_ids)} training images to score candidates (never the val split)")
    scores = score_table(space, weights, data_root, config, remap, cache_dir, out_dir, announce)
    names = space.names
    base = base_ops(space.base_genotype, space.layers)
    if config.random_pool:
        pool = random_pool(names=names, base=base, costs=space.costs, target=space.target, count=config.random_pool, seed=config.seed)
    else:
        pool = build_pool(
            names=names, base=base, costs=space.costs, target=space.target, score_rows=scores.scores(names),
            alpha_rows=space.alpha_rows, searched=space.searched, change_penalties=config.change_penalties, alpha_weight=config.alpha_weight,
        )
    for candidate in pool:
        candidate.scores["remap_score"] = scores.score_of(candidate.ops)
        save_genotype(space.genotype(candidate.ops), out_dir / "pool" / f"{candidate.name}.yaml")
    announce(f"Pool of {len(pool)} under {format_cost(space.target, space.table.unit)}: "
             + ", ".join(f"{c.name} ({c.changed} changed)" for c in pool))
    rungs: dict[str, list[dict]] = {c.name: [] for c in pool}
    alive = list(pool)
    for number, epochs in enumerate(config.rung_epochs):
        # A rung is a whole short training (its schedule ends with it); its warm-up is at most a quarter of it.
        iterations = epochs * max(1, len(kept_ids) // train_config.batch_size)
        warmup = min(train_config.warmup_iterations, max(1, iterations // 4))
        rung_config = dataclasses.asdict(dataclasses.replace(train_config, epochs=epochs, seed=config.seed, warmup_iterations=warmup))
        jobs_ = [
            RungJob(c.name, space.genotype(c.ops).to_dict(), detector, str(out_dir / "rungs" / f"{number}-{c.name}"), str(data_root),
                    weights_path, rung_config, remap.mode, resume, 1 if parallel > 1 else None)
            for c in alive
        ]
        announce(f"Rung {number + 1}/{len(config.rung_epochs)}: {len(jobs_)} candidates × {epochs} epochs")
        records = _run_all(jobs_, parallel, train_candidate)
        rung_scores = {}
        for candidate, record in zip(alive, records):
            rungs[candidate.name].append({"rung": number, "epochs": epochs, **{k: record[k] for k in ("map", "map50", "seconds")}})
            rung_scores[candidate.name] = record["map"]
        order = ranked(alive, rung_scores, noise=config.noise)
        announce("  " + ", ".join(f"{c.name} {rung_scores[c.name]:.1f}" for c in order))
        if number + 1 < len(config.rung_epochs):
            alive = order[: max(1, math.ceil(config.keep_fraction * len(order)))]  # a third of 4 or 6 keeps 2, of 9 keeps 3
        else:
            alive = order
    winner = alive[0]
    genotype = space.genotype(winner.ops)
    # Whether the winner scored below the base pruned by depth at the last rung both trained in (the tie rule may have
    # let a candidate with fewer changes past it): adapt's report says so.
    pruned = next((c for c in pool if c.name == "base-pruned-depth"), None)
    below_pruned = False
    if pruned is not None and winner is not pruned and rungs[pruned.name]:
        last = len(rungs[pruned.name]) - 1
        below_pruned = rungs[winner.name][last]["map"] < rungs[pruned.name][last]["map"]
    selection = {
        "target": space.target, "unit": space.table.unit, "remap_mode": remap.mode, "config": dataclasses.asdict(config),
        "held_out_images": len(held_ids), "rung_training_images": len(kept_ids),
        "pool": [
            {"name": c.name, "origin": c.origin, "cost": c.cost, "changed_layers": c.changed, "scores": c.scores,
             "rungs": rungs[c.name], "genotype": f"pool/{c.name}.yaml", "ops": c.ops}
            for c in pool
        ],
        "winner": winner.name, "winner_is_baseline": winner.origin == "baseline",
        "winner_below_pruned_base": bool(below_pruned),
        "seconds": round(time.perf_counter() - started, 1),
    }
    save_genotype(genotype, out_dir / "genotype.yaml")
    write_json_atomic(out_dir / "selection.json", selection)
    return SelectResult(out_dir, winner, genotype, winner.origin == "baseline", pool, selection["seconds"], space.table.unit)


def score_table(space: Space, weights, data_root: Path, config: SelectConfig, remap: RemapConfig,
            cache_dir: Path | None, out_dir: Path, announce: Announce) -> ScoreTable:
    """The remap-aware score table on images of the rung split (BatchNorm) and the held-out split (taps), at the cost
    table's input size (the search's: 160² on the demo, where the forward passes of ~115 one-change networks take
    minutes on 2 CPU cores rather than the quarter hour they take at the training's 224²)."""
    from netadapt.data.sources import DataSplit

    def images(split: str, count: int) -> tuple[torch.Tensor, list[str]]:
        dataset = DataSplit(data_root / "images" / split, data_root / f"{split}.json").open(train=False, input_size=space.table.input_size)
        chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(config.seed))[:count].tolist()
        files = [dataset.coco.imgs[dataset.image_ids[i]]["file_name"] for i in chosen]
        return torch.stack([dataset[i][0] for i in chosen]), files

    bn_images, bn_files = images("train", config.score_bn_images)
    eval_images, eval_files = images("val", config.score_images)
    key = score_key(weights, fingerprint=space.fingerprint, mode=remap.mode,
                    images=[str(space.table.input_size), *bn_files, "|", *eval_files])
    announce(f"Remap-aware score of every candidate op ({remap.mode}; BatchNorm on {len(bn_files)} images, taps on {len(eval_files)})")
    table = remap_aware_scores(
        base_name=space.base_name, weights=weights, base_genotype=space.base_genotype, skeleton=space.skeleton,
        layers=space.layers, space_name=space.space_name, mode=remap.mode, bn_images=bn_images, eval_images=eval_images,
        key=key, cache_dir=cache_dir,
    )
    write_json_atomic(out_dir / "scores.json", {
        "how": "distortion of the detector taps against the base, one change at a time, remapped from the base weights, BatchNorm re-estimated",
        **table.to_dict(),
    })
    return table


def _run_all(jobs_: list[RungJob], parallel: int, train_candidate: TrainCandidate) -> list[dict]:
    """Every job's record, in order: in this process, or in ``parallel`` worker processes of one thread each, each
    holding one GPU of its own when this machine has several (:func:`claim_device`)."""
    train = functools.partial(train_rung, train_candidate=train_candidate)
    if parallel <= 1 or len(jobs_) <= 1:
        return [train(job) for job in jobs_]
    workers = min(parallel, len(jobs_))
    context = get_context("spawn")
    devices = context.Queue()
    for index in worker_devices(workers):
        devices.put(index)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=claim_device, initargs=(devices,)) as executor:
        return list(executor.map(train, jobs_))


def worker_devices(workers: int) -> list[str | None]:
    """The GPU each of ``workers`` side-by-side trainings holds: one each, round robin over this machine's visible GPUs
    (``CUDA_VISIBLE_DEVICES`` honoured), none on a CPU machine."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    count = torch.cuda.device_count()
    if count == 0:
        return [None] * workers
    names = [name.strip() for name in visible.split(",")][:count] if visible else [str(index) for index in range(count)]
    return [names[worker % len(names)] for worker in range(workers)]


def claim_device(devices) -> None:
    """A rung worker's initializer: take the next GPU of ``devices`` and see only it (``cuda`` is then that one), before
    torch initialises CUDA in this process."""
    device = devices.get()
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device

