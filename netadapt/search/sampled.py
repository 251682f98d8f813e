"""The ``sampled`` strategy: one sampled path per layer and step, so a search step costs one network.

``darts`` runs every candidate of every layer (Eq. 3), about six networks' compute and memory.
Here each step samples ``k`` candidates per layer (``search.strategy_options: {k: K}``, default 1) from
softmax(α / T) and the super network runs those alone (:class:`~netadapt.search.supernet.MixedOp`
skips candidates whose weight is exactly zero). Both steps draw from the search's per-rank
generator (saved in the checkpoint, so a resumed run samples what the uninterrupted one did).
Sampling uses the Gumbel-top-k trick: with G_o i.i.d. Gumbel(0, 1), the ``k`` largest of
α_o / T + G_o are a sample of ``k`` distinct candidates from softmax(α / T).

**Weight step** — the chosen candidates get weight 1/k, the others 0, with no gradient to α.
For k = 1 this is FNA's single-path weight step (DESIGN §1.5); α stays near its initial zero
until α updates start, so the first epochs sample nearly uniformly, as FNA's code does.

**α step: straight-through Gumbel-softmax, GDAS-style** (Dong & Yang, CVPR 2019). With the same
perturbed logits, soft = softmax(α / T + G) and hard the k-hot (1/k on the chosen) vector; the op
weights are ``hard - soft.detach() + soft``: numerically ``hard`` (so the forward pass, and the
cost term, see the sampled architecture alone) and differentiable as ``soft``. Unsampled
candidates are not run, so the task loss reaches α only through the chosen candidates' weights:
for k = 1 and chosen op s, with g = ∂L/∂(layer output),

    ∂L_task/∂α_j = ⟨g, o_s(x)⟩ · soft_s (δ_sj − soft_j) / T,

so α_s rises when the chosen path lowers the loss, and every unsampled α_j moves the other way in
proportion to soft_j (the softmax couples them). The cost term Σ_o w_o · cost_o has the full
straight-through gradient Σ_o cost_o · ∂soft_o/∂α_j for every candidate, sampled or not.

Why this and not ProxylessNAS's binary gates: the gates' estimator needs ∂L/∂g_o = ⟨g, o(x)⟩
for every candidate o it updates, i.e. the outputs of unsampled candidates (ProxylessNAS reruns
two sampled paths in the backward pass, which also updates their BN statistics a second time);
the full straight-through Gumbel estimator needs the same outputs. GDAS's estimator needs only
the sampled path, so the α step too costs one network, and DDP sees a plain autograd graph.
It is biased, as every straight-through estimator is; ``darts`` remains the exact Eq. 3.
"""

from __future__ import annotations

import torch

from netadapt.errors import ConfigError
from netadapt.hookspecs import hookimpl
from netadapt.search.supernet import ArchitectureParameters


class SampledStrategy:
    name = "sampled"
    options = {"k": 1}  # search.strategy_options: candidates sampled per layer and step
    # DistributedDataParallel: unsampled candidates take no part in a step (find_unused_parameters).
    uses_all_parameters = False

    def __init__(self, sample_k: int = 1) -> None:
        if sample_k < 1:
            raise ValueError(f"sample_k must be at least 1, got {sample_k}")
        self.sample_k = sample_k

    def for_config(self, config) -> SampledStrategy:
        """This strategy with the run's ``search.strategy_options: {k: K}`` (default 1)."""
        options = dict(config.strategy_options)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ConfigError(f"search.strategy_options.{unknown[0]}: unknown option of strategy 'sampled' (known: k)")
        k = options.get("k", self.options["k"])
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"search.strategy_options.k must be a positive integer, got {k!r}")
        return SampledStrategy(k)

    def weight_step_weights(self, arch: ArchitectureParameters, *, temperature: float, generator: torch.Generator) -> list[torch.Tensor]:
        with torch.no_grad():
            return [self._hard(logits) for logits in _perturbed_logits(arch, temperature, generator)]

    def alpha_step_weights(self, arch: ArchitectureParameters, *, temperature: float, generator: torch.Generator) -> list[torch.Tensor]:
        weights = []
        for logits in _perturbed_logits(arch, temperature, generator):
            soft = torch.softmax(logits, dim=0)
            weights.append(self._hard(logits.detach()) - soft.detach() + soft)  # straight-through
        return weights

    def _hard(self, logits: torch.Tensor) -> torch.Tensor:
        """1/k on the k largest perturbed logits (k at least the candidates: all of them), 0 elsewhere."""
        k = min(self.sample_k, logits.numel())
        chosen = logits.topk(k).indices
        return torch.zeros_like(logits).index_fill_(0, chosen, 1.0 / k)


def _perturbed_logits(arch: ArchitectureParameters, temperature: float, generator: torch.Generator) -> list[torch.Tensor]:
    """α / T + G per layer, G i.i.d. Gumbel(0, 1) drawn from ``generator`` (on its device, then moved)."""
    sizes = [alpha.numel() for alpha in arch.alphas]
    uniform = torch.rand(sum(sizes), generator=generator, device=generator.device)
    gumbel = -torch.log(-torch.log(uniform.clamp_min(torch.finfo(uniform.dtype).tiny)))
    return [alpha / temperature + noise.to(alpha.device) for alpha, noise in zip(arch.alphas, gumbel.split(sizes))]


@hookimpl
def register_strategies(register) -> None:
    register(SampledStrategy.name, SampledStrategy())
