"""Built-in cost models: ``madds`` and ``params``, both counted with fvcore (DESIGN §1.4).

fvcore counts one fused multiply-add as one flop, so its conv and linear counts are MAdds. We
count what the papers count — convolutions and fully connected layers (MobileNetV2: 300M MAdds
at 224×224) — and report the rest as left out: fvcore's batch-norm count (BN folds into the
preceding conv at deployment), pooling, and the operators fvcore has no handler for (ReLU6's
``aten::hardtanh``, the residual ``aten::add``), which are elementwise and cost little.
"""

from __future__ import annotations

import warnings
from collections import Counter

import torch
from torch import nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # fvcore uses torch.jit.script at import
    from fvcore.nn import FlopCountAnalysis, parameter_count

from netadapt.cost import Cost
from netadapt.hookspecs import hookimpl

COUNTED_OPERATORS = frozenset({"conv", "linear", "matmul", "bmm", "einsum", "addmm"})


class MAddsModel:
    """Multiply-adds of conv and linear layers for one forward pass (fvcore's jit tracing)."""

    name = "madds"
    unit = "MAdds"

    def measure(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Cost:
        was_training = module.training
        module.eval()
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # torch.jit's deprecation notice inside fvcore
                analysis = FlopCountAnalysis(module, inputs)
                analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
                per_module = analysis.by_module_and_operator()
                by_operator = analysis.by_operator()
                unsupported = analysis.unsupported_ops()
        finally:
            module.train(was_training)
        by_module = {
            path: float(sum(flops for operator, flops in operators.items() if operator in COUNTED_OPERATORS))
            for path, operators in per_module.items()
        }
        left_out = {
            operator: f"{flops / 1e6:.2f}M flops by fvcore's count"
            for operator, flops in sorted(by_operator.items())
            if operator not in COUNTED_OPERATORS and flops
        }
        left_out.update({operator: f"{count}× (no fvcore handler)" for operator, count in sorted(unsupported.items())})
        return Cost(total=by_module.get("", 0.0), by_module=by_module, left_out=left_out)


class ParamsModel:
    """Number of parameters (fvcore's ``parameter_count``); the input is not used."""

    name = "params"
    unit = "params"

    def measure(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Cost:
        counts: Counter = parameter_count(module)
        return Cost(total=float(counts[""]), by_module={path: float(count) for path, count in counts.items()})


@hookimpl
def register_cost_models(register) -> None:
    register(MAddsModel.name, MAddsModel())
    register(ParamsModel.name, ParamsModel())
