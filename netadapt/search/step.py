"""The search's step (DESIGN §1.3, step 2): a weight step and, on the strategy's cadence, an α step (Eq. 3).

:class:`SearchStep` is what :func:`~netadapt.search.loop.run_search` hands the one loop
(:class:`~netadapt.engine.loop.Loop`); the α step's loss is ``L_task + λ · log_τ(cost(α))`` (Eq. 3), or with
``search.target`` the term of :mod:`~netadapt.search.cost_term`; α's softmax is taken at the temperature of
:func:`alpha_temperature`. The training set is split once into a weight half and an α half (:func:`split_halves`);
each half has its own resumable loader.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset

from netadapt import plugins
from netadapt.config import SearchConfig
from netadapt.contracts import optional
from netadapt.cost import format_cost
from netadapt.data.coco import collate_detection
from netadapt.engine import distributed
from netadapt.engine.loop import Position, make_optimizer, make_schedule, wrap_ddp
from netadapt.engine.precision import Precision
from netadapt.engine.resume import check_finite_loss
from netadapt.engine.sampling import ResumableBatchSampler, SeededSamples
from netadapt.engine.throughput import loader_options
from netadapt.engine.train import batch_to_device
from netadapt.errors import ConfigError
from netadapt.search.cost_table import expected_cost
from netadapt.search.cost_term import CostTerm
from netadapt.search.supernet import ArchitectureParameters, SuperNetwork

def split_halves(size: int, *, alpha_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Disjoint (weight half, α half) index lists, fixed by ``seed``."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()
    alpha_count = max(1, min(size - 1, round(alpha_fraction * size)))
    return sorted(order[alpha_count:]), sorted(order[:alpha_count])


class SearchData:
    """The search's batches: an epoch is ``repeat`` passes over the weight half (mmdet's RepeatDataset), each with its
    resumable sampler; the α half's batches follow the α steps' cadence (one per ``alpha_every`` weight steps)."""

    def __init__(
        self, dataset, *, weight_half: list[int], alpha_half: list[int], config: SearchConfig, context: distributed.Context, alpha_every: int,
    ) -> None:
        self.alpha_every = alpha_every
        weight_epoch = weight_half * config.repeat
        self.weight_sampler = ResumableBatchSampler(
            len(weight_epoch), batch_size=config.batch_size, seed=config.seed, rank=context.rank, world_size=context.world_size
        )
        self.alpha_sampler = ResumableBatchSampler(
            len(alpha_half), batch_size=config.batch_size, seed=config.seed + 1, rank=context.rank, world_size=context.world_size
        )
        self.weight_loader = _loader(dataset, weight_epoch, self.weight_sampler, config, context.device)
        self.alpha_loader = _loader(dataset, alpha_half, self.alpha_sampler, config, context.device)
        self.iterations_per_epoch = self.weight_sampler.batches_per_epoch
        self.alpha_batches = iter(())

    def batches(self, epoch: int, first: int) -> DataLoader:
        """The weight half's batches of ``epoch`` from ``first``; the α half's from the α step that position had reached."""
        self.weight_sampler.set_position(epoch, first)
        self.alpha_batches = _cycle(self.alpha_loader, self.alpha_sampler, epoch, -(-first // self.alpha_every))
        return self.weight_loader

    def next_alpha(self):
        return next(self.alpha_batches)


class SearchStep:
    """One search iteration (DESIGN §1.3, step 2), run by the one loop (:class:`~netadapt.engine.loop.Loop`): a weight
    step on a weight-half batch with the op weights the strategy gives (detached from α), then, from
    ``alpha_start_epoch`` on and once per ``weight_steps_per_alpha_step`` of the strategy from each epoch's first
    iteration (FNA's workflow ``[('arch', 1), ('train', 5)]``), an α step on the next α-half batch of ``data``.

    It owns what a search iteration changes and its checkpoint holds: the detector's weights and their optimiser
    and schedule, α and its optimiser, the strategy's random generator, and the history of softmax(α) per epoch.
    ``netadapt estimate`` times :meth:`weight_step` and :meth:`alpha_step` of this same object on synthetic batches.
    """

    def __init__(
        self, *, detector: nn.Module, supernet: SuperNetwork, arch: ArchitectureParameters, strategy, config: SearchConfig,
        context: distributed.Context, precision: Precision, costs: list[torch.Tensor], cost_term: CostTerm, unit: str,
        iterations_per_epoch: int, data: SearchData | None = None,
    ) -> None:
        self.detector, self.supernet, self.arch, self.strategy = detector, supernet, arch, strategy
        self.config, self.context, self.precision = config, context, precision
        self.costs, self.cost_term, self.unit, self.data = costs, cost_term, unit, data
        self.alpha_every = alpha_every(strategy)
        self.model = wrap_ddp(detector, context, find_unused_parameters=not optional(strategy, "uses_all_parameters", False))
        self.iterations_per_epoch = iterations_per_epoch
        self.total = config.epochs * iterations_per_epoch
        self.optimizer = make_optimizer(detector.parameters(), config)
        self.schedule = make_schedule(self.optimizer, config, total=self.total, iterations_per_epoch=iterations_per_epoch)
        self.alpha_optimizer = torch.optim.Adam(
            arch.parameters(), lr=config.alpha_lr, betas=tuple(config.alpha_betas), weight_decay=config.alpha_weight_decay
        )
        self.generator = torch.Generator().manual_seed(config.seed + context.rank)
        self.history: list[list] = []
        self.cost_now = _expected_cost_now(arch, costs, self.temperature(0))

    def temperature(self, iteration: int) -> float:
        return alpha_temperature(self.config, iteration=iteration, total=self.total, iterations_per_epoch=self.iterations_per_epoch)

    def __call__(self, batch, at: Position) -> dict[str, Any]:
        record = self.weight_step(batch, at)
        temperature = self.temperature(at.iteration)
        if at.epoch + 1 >= self.config.alpha_start_epoch and at.batch % self.alpha_every == 0:
            record |= self.alpha_step(self.data.next_alpha(), temperature)
        self.cost_now = _expected_cost_now(self.arch, self.costs, temperature)
        record["expected_cost"] = self.cost_now
        return record

    def weight_step(self, batch, at: Position) -> dict[str, Any]:
        """The weights' step on a weight-half batch, with the op weights the strategy gives (detached from α)."""
        images, targets = batch
        self.detector.train()
        temperature = self.temperature(at.iteration)
        self.supernet.set_op_weights(self.strategy.weight_step_weights(self.arch, temperature=temperature, generator=self.generator))
        with self.precision.autocast():
            task_loss = _task_loss(self.model, images, targets, self.context.device)
        check_finite_loss(float(task_loss.detach()), iteration=at.iteration + 1)
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.backward(task_loss)
        self.precision.step(self.optimizer, clip_parameters=self.detector.parameters(), clip=self.config.grad_clip)
        self.schedule.step()
        return {"lr": self.schedule.get_last_lr()[0], "loss": float(task_loss.detach())}

    def alpha_step(self, batch, temperature: float) -> dict[str, float]:
        """α's step on an α-half batch (:func:`_alpha_step`)."""
        return _alpha_step(
            self.detector, self.supernet, self.arch, self.strategy, self.alpha_optimizer, batch, self.costs,
            self.cost_term, self.config, self.context, self.generator, self.precision, temperature,
        )

    def shown(self, record: dict[str, Any], at: Position) -> dict[str, Any]:
        return {"epoch": at.epoch + 1, "loss": record["loss"], "cost": format_cost(self.cost_now, self.unit), "arch": _short(self.arch.best_ops())}

    def end_of_epoch(self, epoch: int) -> None:
        self.history += _history_rows(epoch, self.supernet, self.arch, self.config)

    def state_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector.state_dict(), "alpha": self.arch.state_dict(), "optimizer": self.optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(), "history": self.history, "precision": self.precision.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Everything :meth:`state_dict` gives, at the checkpoint's ``iteration``."""
        self.detector.load_state_dict(state["detector"])
        self.arch.load_state_dict(state["alpha"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        self.history = state["history"]
        self.precision.load_state_dict(state.get("precision", {}))
        self.cost_now = _expected_cost_now(self.arch, self.costs, self.temperature(state["iteration"]))  # a run resumed at its end runs no step


def alpha_every(strategy) -> int:
    """Weight steps per α step (1; ``fna``: 5, FNA's workflow)."""
    return optional(strategy, "weight_steps_per_alpha_step", 1)


def strategy_for(config: SearchConfig):
    """The strategy ``search.strategy`` names, configured by its ``for_config`` (sampled: ``search.sample_k``,
    fna: ``search.strategy_options``); a strategy without one takes no ``strategy_options``."""
    strategy = plugins.strategies().get(config.strategy)
    for_config = optional(strategy, "for_config", None)
    if for_config is not None:
        return for_config(config)
    if config.strategy_options:
        raise ConfigError(f"search.strategy_options: strategy {config.strategy!r} takes no options")
    return strategy


def _alpha_step(
    detector, supernet: SuperNetwork, arch: ArchitectureParameters, strategy, alpha_optimizer, batch, costs, cost_term: CostTerm,
    config: SearchConfig, context, generator, precision: Precision, temperature: float,
) -> dict[str, float]:
    """One α step: L_task + the cost term on an α-half batch (Eq. 3: λ · log_τ(cost(α)); with a target
    the constrained form of :mod:`netadapt.search.cost_term`); α gradients averaged over ranks, then
    clipped at ``search.alpha_grad_clip`` (FNA's code: 35).

    Only α's gradient is computed (``torch.autograd.grad``): the weights' gradients, which the α step
    does not use, are never formed. The detector runs outside its DDP wrapper here, so DDP's
    gradient reduction stays with the weight step; α is all-reduced by hand.
    """
    images, targets = batch
    op_weights = strategy.alpha_step_weights(arch, temperature=temperature, generator=generator)
    supernet.set_op_weights(op_weights)
    with precision.autocast():  # op_weights (softmax of α) were computed outside it, in float32, as is the cost term
        task_loss = _task_loss(detector, images, targets, context.device)
    cost = expected_cost(op_weights, costs)
    cost_loss = cost_term.loss(cost)
    alphas = list(arch.parameters())
    for alpha, grad in zip(alphas, precision.grad(task_loss + cost_loss, alphas)):
        alpha.grad = grad
    if context.distributed:
        for alpha in arch.parameters():
            dist.all_reduce(alpha.grad)
            alpha.grad /= context.world_size
    if config.alpha_grad_clip > 0:
        nn.utils.clip_grad_norm_(alphas, config.alpha_grad_clip)
    if not precision.overflowed(alpha.grad for alpha in alphas):  # fp16: an overflow on any rank reached all in the all-reduce
        alpha_optimizer.step()
    return {"alpha_task_loss": float(task_loss.detach()), "cost_loss": float(cost_loss.detach()), "temperature": temperature}


def alpha_temperature(config: SearchConfig, *, iteration: int, total: int, iterations_per_epoch: int) -> float:
    """T of softmax(α / T) at ``iteration`` (0-based): ``alpha_temperature`` until α updates start, then
    annealed geometrically to ``alpha_temperature_end`` at the last iteration (FBNet, Wu et al. 2019, §3.3;
    GDAS, Dong & Yang 2019, anneal it too). As T falls, softmax(α / T) nears the one-hot derived architecture,
    so the expected cost that the cost term steers becomes the cost of the architecture that will be derived."""
    start, end = config.alpha_temperature, config.alpha_temperature_end
    first = (config.alpha_start_epoch - 1) * iterations_per_epoch
    if end is None or iteration <= first or total <= first + 1:
        return start
    progress = min(1.0, (iteration - first) / (total - 1 - first))
    return start * (end / start) ** progress


@torch.no_grad()
def _expected_cost_now(arch: ArchitectureParameters, costs: list[torch.Tensor], temperature: float) -> float:
    return float(expected_cost(arch.probabilities(temperature=temperature), costs))


def _task_loss(model: nn.Module, images, targets, device: torch.device) -> torch.Tensor:
    return sum(model(*batch_to_device(images, targets, device)).values())


def _loader(dataset, indices: list[int], sampler: ResumableBatchSampler, config: SearchConfig, device: torch.device) -> DataLoader:
    return DataLoader(
        SeededSamples(Subset(dataset, indices), seed=config.seed), batch_sampler=sampler, collate_fn=collate_detection,
        **loader_options(config, device),
    )


def _cycle(loader: DataLoader, sampler: ResumableBatchSampler, epoch: int, batch: int):
    """α-half batches for one epoch of weight steps, from the position matching ``batch``; restarts when exhausted."""
    sampler.set_position(epoch, batch % sampler.batches_per_epoch)
    while True:
        yield from loader
        sampler.set_position(epoch, 0)


def _history_rows(epoch: int, supernet: SuperNetwork, arch: ArchitectureParameters, config: SearchConfig) -> list[list]:
    probabilities = arch.probabilities(temperature=config.alpha_temperature)
    rows = []
    for number, (layer, layer_probabilities) in enumerate(zip(supernet.layers, probabilities), start=1):
        for op, probability in zip(layer.candidates, layer_probabilities.tolist()):
            rows.append([epoch, number, layer.stage + 1, layer.layer + 1, op.name, round(probability, 6)])
    return rows


def _short(ops: list[str]) -> str:
    return " ".join(op.replace("_", "") for op in ops)
